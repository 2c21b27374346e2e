#!/usr/bin/env bash
# Runs every test of Claude Network on a brand-new or an existing machine:
# installs missing Debian packages, builds, runs `bazel test //...`, and ends
# with one summary line "N passed, N failed" counting test cases (a test
# target that did not build or produced no report counts as one failure).
#
# Test results are not taken from the cache unless CNET_TEST_CACHE=1, so a
# green line means the tests really ran.
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh || { echo "0 passed, 1 failed (installing packages failed)"; exit 1; }

# The Node example client's dependencies (npm registry; package-lock.json
# pins them). Only when missing or out of date.
if [ ! -d examples/node/node_modules ] || [ examples/node/package-lock.json -nt examples/node/node_modules ]; then
  (cd examples/node && npm ci --no-fund --no-audit --loglevel=error) ||
    { echo "0 passed, 1 failed (npm ci in examples/node failed)"; exit 1; }
fi

cache_flag="--nocache_test_results"
if [ "${CNET_TEST_CACHE:-0}" = "1" ]; then cache_flag=""; fi

started=$(date +%s)
bazel test //... $cache_flag --test_summary=short "$@"
status=$?

fresh_after=0
if [ -n "$cache_flag" ]; then fresh_after=$started; fi
/usr/bin/python3 tools/test_summary.py "$(bazel info bazel-testlogs 2>/dev/null)" "$fresh_after" \
  $(bazel query 'tests(//...)' 2>/dev/null)
summary_status=$?

if [ $status -ne 0 ] || [ $summary_status -ne 0 ]; then exit 1; fi
exit 0
