"""Runs one Python unittest file and writes JUnit XML to $XML_OUTPUT_FILE."""
import importlib.util
import os
import sys
import time
import unittest
import xml.etree.ElementTree as ET


class Recorder(unittest.TextTestResult):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.cases = []
        self._start = 0.0

    def startTest(self, test):
        self._start = time.time()
        super().startTest(test)

    def _add(self, test, kind, detail=""):
        self.cases.append((test.id(), kind, detail, time.time() - self._start))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._add(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._add(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._add(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._add(test, "skipped", reason)


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", sys.argv[1])
    spec = importlib.util.spec_from_file_location("test_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=Recorder)
    result = runner.run(suite)
    out = os.environ.get("XML_OUTPUT_FILE")
    if out:
        root = ET.Element("testsuites")
        ts = ET.SubElement(root, "testsuite", name=sys.argv[1], tests=str(len(result.cases)))
        for name, kind, detail, secs in result.cases:
            case = ET.SubElement(ts, "testcase", name=name, time="%.3f" % secs)
            if kind in ("failure", "error"):
                ET.SubElement(case, kind, message=detail.splitlines()[-1] if detail else "").text = detail
            elif kind == "skipped":
                ET.SubElement(case, "skipped", message=detail)
        ET.ElementTree(root).write(out)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
