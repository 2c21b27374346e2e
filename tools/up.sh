#!/usr/bin/env bash
# Starts Claude Network on this machine on its embedded defaults (SQLite
# under ~/.claude-network) and returns once every service is SERVING.
# On a brand-new machine it first installs the Debian packages and builds.
# Extra arguments go to `cnet up` (e.g. --json). Stop with tools/down.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bazel build --ui_event_filters=-info,-progress --noshow_progress \
  //services/... //tools/cnet >&2
exec bazel-bin/tools/cnet/cnet up "$@"
