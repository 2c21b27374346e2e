"""The crash-safety driver in its short form (3 kills): lost = 0 and every
store passes integrity_check. Longer runs: tests/security/crash_driver.py
--kills N (docs/security.md)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crash_driver  # noqa: E402


class CrashTest(unittest.TestCase):
    def test_kill_random_services_under_load_loses_nothing(self):
        kills = int(os.environ.get("CNET_CRASH_KILLS", "3"))
        report = crash_driver.run(kills=kills, seed=int(os.environ.get("CNET_CRASH_SEED", "1")))
        self.assertEqual(report["kills"], kills)
        self.assertEqual(sum(report["lost"].values()), 0, report["lost_detail"])
        self.assertTrue(report["integrity"])
        for db, result in report["integrity"].items():
            self.assertEqual(result, "ok", db)
        # The load really ran through the kills.
        for op in ("register", "send", "create", "claim", "run"):
            self.assertGreater(report["acknowledged"][op], 0, op)


if __name__ == "__main__":
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
