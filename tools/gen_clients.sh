#!/usr/bin/env bash
# Generates client code for Claude Network from proto/ into OUT_DIR:
#   OUT_DIR/python/proto/claudenet/v1/*_pb2.py, *_pb2_grpc.py  (Debian's protoc
#                                                   and grpc_python_plugin)
#   OUT_DIR/node/   a copy of proto/ for @grpc/proto-loader (examples/node)
# Other languages: see docs/clients.md for the protoc command.
set -euo pipefail
out="${1:?usage: gen_clients.sh OUT_DIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out/python" "$out/node"
cd "$root"
/usr/bin/protoc -I. \
  --python_out="$out/python" \
  --grpc_python_out="$out/python" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
  proto/claudenet/v1/*.proto
mkdir -p "$out/node/proto/claudenet/v1"
cp proto/claudenet/v1/*.proto "$out/node/proto/claudenet/v1/"
echo "generated Python stubs in $out/python and Node protos in $out/node"
