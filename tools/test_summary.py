"""Counts test cases from Bazel's per-target test.xml reports.

Usage: test_summary.py TESTLOGS_DIR FRESH_AFTER //pkg:target...
FRESH_AFTER: Unix time; reports older than it are stale (0: accept any).
Prints a per-target line for failures and a final "N passed, N failed".
Exits 1 when anything failed. A target without a report (it did not build,
or crashed before writing one) counts as one failed case.
"""
import os
import sys
import xml.etree.ElementTree as ET


def count(xml_path):
    passed = failed = 0
    tree = ET.parse(xml_path)
    for case in tree.iter("testcase"):
        if case.get("status") == "notrun" or case.find("skipped") is not None:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
    return passed, failed


def main():
    logs = sys.argv[1]
    fresh_after = float(sys.argv[2])
    targets = sys.argv[3:]
    total_passed = total_failed = 0
    for target in targets:
        rel = target.lstrip("/").replace(":", "/")
        xml_path = os.path.join(logs, rel, "test.xml")
        if not os.path.exists(xml_path):
            print(f"FAILED {target}: no test report (build failure or crash)")
            total_failed += 1
            continue
        if os.path.getmtime(xml_path) < fresh_after:
            print(f"FAILED {target}: stale test report (the test did not run)")
            total_failed += 1
            continue
        try:
            p, f = count(xml_path)
        except ET.ParseError as e:
            print(f"FAILED {target}: unreadable test report: {e}")
            total_failed += 1
            continue
        if p == 0 and f == 0:
            # A report with no cases (e.g. a crashed binary): one failure.
            f = 1
        if f:
            print(f"FAILED {target}: {f} failed case(s)")
        total_passed += p
        total_failed += f
    print(f"{len(targets)} test targets")
    print(f"{total_passed} passed, {total_failed} failed")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
