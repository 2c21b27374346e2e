#!/usr/bin/env bash
# Runs a Python test file with Debian's interpreter (a python3 earlier on
# PATH may not see apt's modules) and turns unittest's result into the
# JUnit XML Bazel reads, so test cases are counted by tools/test.sh.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/../../tests/suite/py_junit.py" "$@"
