"""Secrets over the real binaries: the shared secret, Firebase auth and the
GitHub token never appear in any log or stderr of the five services, the
config service never returns them in clear (GetConfig, WatchConfig; admin
included), the files the suite creates for secrets are 0600, and every
service warns at start when a config file holding a secret is readable by
other users (and does not when it is 0600).
"""
import glob
import os
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seclib as lib  # noqa: E402

MARKERS = {
    "security.shared_secret": "sharedSECRETmarker0123456789",
    "firebase.auth": "firebaseAUTHmarker0123456789",
    "github.token": "githubTOKENmarker0123456789",
}
CONFIG = """security:
  shared_secret: %s
firebase:
  auth: %s
github:
  token: %s
""" % (MARKERS["security.shared_secret"], MARKERS["firebase.auth"], MARKERS["github.token"])


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class SecretsTest(unittest.TestCase):
    def start(self, file_mode):
        # Admin and service credentials left unconfigured: the services
        # create <data_dir>/admin.token and service.token themselves.
        suite = lib.Suite({"CNET_SECURITY__ADMIN_TOKEN": None,
                           "CNET_SECURITY__SERVICE_CREDENTIAL": None,
                           "CNET_SECURITY__SHARED_SECRET": None}, services=[])
        path = os.path.join(suite.project, "config.yaml")
        with open(path, "w") as f:
            f.write(CONFIG)
        os.chmod(path, file_mode)
        for name in lib.SERVICES:
            suite.start(name)
        self.addCleanup(suite.stop)
        return suite, path

    def logs(self, suite):
        text = {}
        for path in glob.glob(os.path.join(suite.root, "*.log")) + \
                glob.glob(os.path.join(suite.root, "*.stderr.*")) + \
                glob.glob(os.path.join(suite.root, "logs", "*")):
            if os.path.isfile(path):
                with open(path, errors="replace") as f:
                    text[path] = f.read()
        return text

    def test_secrets_never_leave_in_clear_and_files_are_private(self):
        suite, config_path = self.start(0o644)
        pb = lib.pb()
        admin_file = os.path.join(suite.data, "admin.token")
        service_file = os.path.join(suite.data, "service.token")
        self.assertEqual(mode(admin_file), 0o600)
        self.assertEqual(mode(service_file), 0o600)
        with open(admin_file) as f:
            admin = f.read().strip()

        # The config service: redacted for everybody, admin included.
        for cred in ("", admin):
            with suite.channel("config") as ch:
                for prefix in ("security", "firebase", "github"):
                    resp = lib.call(ch, lib.GRPC_SERVICE["config"], "GetConfig",
                                    pb.config.GetConfigRequest(key_prefix=prefix), cred)
                    shown = str(resp)
                    for marker in MARKERS.values():
                        self.assertNotIn(marker, shown)
                    self.assertNotIn(admin, shown)
                code, first, _ = lib.call_code(ch, lib.GRPC_SERVICE["config"], "WatchConfig",
                                               pb.config.WatchConfigRequest(send_initial=True),
                                               cred)
                self.assertEqual(code.name, "OK")
                for marker in MARKERS.values():
                    self.assertNotIn(marker, str(first))
        # An override of a secret is stored 0600 and shown redacted.
        with suite.channel("config") as ch:
            lib.call(ch, lib.GRPC_SERVICE["config"], "SetOverride",
                     pb.config.SetOverrideRequest(key="github.token", value="overrideTOKENmarker",
                                                  reason="t"), admin)
            shown = str(lib.call(ch, lib.GRPC_SERVICE["config"], "GetConfig",
                                 pb.config.GetConfigRequest(key_prefix="github"), admin))
            self.assertNotIn("overrideTOKENmarker", shown)
        overrides = glob.glob(os.path.join(suite.data, "*override*"))
        self.assertTrue(overrides)
        for path in overrides:
            self.assertEqual(mode(path), 0o600, path)

        # The start-up warning, from every service, naming file and key.
        logs = self.logs(suite)
        for name in lib.SERVICES:
            own = "".join(t for p, t in logs.items() if os.path.basename(p).startswith(name))
            self.assertIn("readable by other users", own, name)
            self.assertIn(config_path, own, name)
            self.assertIn("chmod 600", own, name)
        suite.stop()
        # No secret in any log or stderr, ever (after a clean shutdown too).
        for path, text in self.logs(suite).items():
            for key, marker in list(MARKERS.items()) + [("override", "overrideTOKENmarker"),
                                                       ("admin", admin)]:
                self.assertNotIn(marker, text, "%s leaks %s" % (path, key))

    def test_no_warning_for_a_private_file(self):
        suite, _ = self.start(0o600)
        for path, text in self.logs(suite).items():
            self.assertNotIn("readable by other users", text, path)


if __name__ == "__main__":
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
