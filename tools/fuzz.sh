#!/usr/bin/env bash
# Builds the fuzz targets with clang-14 + libFuzzer + AddressSanitizer and
# runs each for a while (docs/security.md records the figures).
#
#   tools/fuzz.sh                 # every target, 60 s each
#   tools/fuzz.sh 600 canonical   # one target, 10 min
#     targets: config canonical skill template (this file's defaults) and
#     sse github (the federation parsers, libs/firebase and libs/github)
#   FUZZ_JOBS=2 tools/fuzz.sh 300 # libFuzzer -jobs/-workers
#
# Builds in a separate Bazel output base (clang objects never mix with the
# gcc ones of `bazel test //...`). Corpora are kept in
# $FUZZ_DIR/<target>/corpus (default ~/.cache/cnet-fuzz), crashes in
# $FUZZ_DIR/<target>/ as crash-*; exit status 1 when a target found one.
# The same targets run with a bounded budget in the test command:
# //tests/fuzz:fuzz_driver_test and //services/skills/fuzz:skills_fuzz_test
# (CNET_FUZZ_ITERATIONS=N raises their budget).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(config canonical skill template sse github)
FUZZ_DIR="${FUZZ_DIR:-$HOME/.cache/cnet-fuzz}"
OUTPUT_BASE="${FUZZ_OUTPUT_BASE:-$HOME/.cache/cnet-fuzz-bazel}"
JOBS="${FUZZ_JOBS:-1}"

label() {
  case "$1" in
    config|canonical) echo "//tests/fuzz:$1_fuzzer" ;;
    skill|template) echo "//services/skills/fuzz:$1_fuzzer" ;;
    sse) echo "//libs/firebase:sse_fuzzer" ;;
    github) echo "//libs/github:github_fuzzer" ;;
    *) echo "unknown target $1 (config|canonical|skill|template|sse|github)" >&2; exit 2 ;;
  esac
}
seeds() {
  case "$1" in
    config) cp config.example.yaml "$2/" ;;
    skill) find skills -name '*.yaml' -exec cp {} "$2/" \; ;;
    template) printf '%s' 'Hello {{ inputs.to }}!' > "$2/t1"
              printf '%s' "{{ len(inputs.list) > 2 and contains(inputs.list, 'two') }}" > "$2/t2" ;;
    canonical) printf '%s' 'msg-1|alice|bob|subject|body|conv|msg-0|{"a":[1,2.5e-7]}|x|2026' > "$2/c1" ;;
    sse) printf 'event: put\ndata: {"path":"/","data":{"a":1}}\n\n' > "$2/s1" ;;
    github) printf '\x00[{"number":1,"title":"t","body":"b","labels":[{"name":"x"}]}]' > "$2/g1" ;;
  esac
}

LABELS=()
for t in "${TARGETS[@]}"; do LABELS+=("$(label "$t")"); done

command -v clang-14 >/dev/null || { echo "clang-14 is not installed" >&2; exit 2; }
CC=clang-14 CXX=clang++-14 bazel --output_base="$OUTPUT_BASE" build \
  --repo_env=CC=clang-14 --repo_env=CXX=clang++-14 \
  --copt=-fsanitize=fuzzer-no-link,address --copt=-fno-omit-frame-pointer --copt=-g \
  --linkopt=-fsanitize=fuzzer,address \
  "${LABELS[@]}"
BIN="$(bazel --output_base="$OUTPUT_BASE" info bazel-bin 2>/dev/null)"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"
status=0
for t in "${TARGETS[@]}"; do
  l="$(label "$t")"
  exe="$BIN/${l#//}"
  exe="${exe/://}"
  dir="$FUZZ_DIR/$t"
  mkdir -p "$dir/corpus"
  [ -n "$(ls -A "$dir/corpus")" ] || seeds "$t" "$dir/corpus"
  echo "== $t: ${SECONDS_EACH}s"
  # -rss_limit_mb / -max_len keep one input's cost bounded like the services do.
  if ! (cd "$dir" && "$exe" -max_total_time="$SECONDS_EACH" -max_len=262144 \
          -rss_limit_mb=2048 -timeout=10 -jobs="$JOBS" -workers="$JOBS" \
          -print_final_stats=1 corpus 2>&1 | tee "$dir/last-run.log" | \
          grep -E '^(#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|.*fuzz invariant)' ); then
    :
  fi
  if ls "$dir"/crash-* "$dir"/timeout-* "$dir"/oom-* >/dev/null 2>&1; then
    echo "$t: FINDINGS in $dir" >&2
    status=1
  fi
done
exit $status
