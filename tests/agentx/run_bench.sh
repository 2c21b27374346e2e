#!/usr/bin/env bash
# Runs agentx_bench.py with Debian's interpreter from the runfiles tree.
set -euo pipefail
RUNFILES_DIR="${RUNFILES_DIR:-$0.runfiles}"
export RUNFILES_DIR
exec /usr/bin/python3 "$RUNFILES_DIR/claudenet/tests/agentx/agentx_bench.py" "$@"
