#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and running
# Claude Network needs. Idempotent and non-interactive: when everything is
# present it does nothing (no apt-get update, no root needed).
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-platforms
  build-essential pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libyaml-cpp-dev libgoogle-glog-dev libgflags-dev
  libcurl4-openssl-dev libssl-dev libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libcpp-httplib-dev
  python3 python3-grpcio python3-yaml docker-compose
)

# Node.js and npm (for the Node example client) come with these machines;
# install Debian's only when absent.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

echo "install_deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_deps: done" >&2
