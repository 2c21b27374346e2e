#!/usr/bin/env bash
# Stops the services started by tools/up.sh (SIGTERM, then SIGKILL after 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bazel-bin/tools/cnet/cnet down "$@"
