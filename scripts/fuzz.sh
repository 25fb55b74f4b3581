#!/usr/bin/env bash
# libFuzzer targets (tests/fuzz) built with clang-14 + ASan + UBSan into build-fuzz/.
#
#   scripts/fuzz.sh smoke            every target ~10 s (CI-able; about 2 min + the build)
#   scripts/fuzz.sh long [seconds]   every target `seconds` (default 600)
#   scripts/fuzz.sh run <target> [seconds]   one target
#
# Seeds come from fuzz_seeds (deterministic) and models/*/config.json; corpora grow in
# build-fuzz/corpus/<target>/ across runs. A crash leaves its input in build-fuzz/crashes/
# and makes the script exit 1; reproduce with build-fuzz/bin/<target> <input>.
# Prints one line per target: executions, coverage (cov: edges), features, corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-smoke}
case "$MODE" in
  smoke) SECONDS_PER_TARGET=${2:-10}; ONLY="" ;;
  long) SECONDS_PER_TARGET=${2:-600}; ONLY="" ;;
  run) ONLY=${2:?usage: scripts/fuzz.sh run <target> [seconds]}; SECONDS_PER_TARGET=${3:-60} ;;
  *) echo "usage: scripts/fuzz.sh smoke | long [seconds] | run <target> [seconds]" >&2; exit 2 ;;
esac

TARGETS=(fuzz_codec_decode fuzz_codec_profile fuzz_safetensors fuzz_llama_config fuzz_kv_parts
  fuzz_requests fuzz_tokenizer)
if [[ -n "$ONLY" ]]; then TARGETS=("$ONLY"); fi
BUILD=build-fuzz
JOBS=${JOBS:-2}

scripts/setup.sh --fuzz >/dev/null
if [[ ! -f $BUILD/build.ninja ]]; then
  CXX=clang++-14 CC=clang-14 cmake -S . -B $BUILD -G Ninja -DCTX_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$PWD/$BUILD/bin" >/dev/null
fi
# Only the fuzz targets and what they link (never the whole tree).
ninja -C $BUILD -j"$JOBS" fuzz_seeds "${TARGETS[@]}"

CORPUS=$BUILD/corpus
CRASHES=$BUILD/crashes
mkdir -p "$CORPUS" "$CRASHES"
$BUILD/bin/fuzz_seeds "$CORPUS" >/dev/null
mkdir -p "$CORPUS/fuzz_llama_config"
for cfg in models/*/config.json; do
  name=$(basename "$(dirname "$cfg")")
  cp "$cfg" "$CORPUS/fuzz_llama_config/seed-$name"
  if [[ -f "$(dirname "$cfg")/generation_config.json" ]]; then
    { cat "$cfg"; printf '\0'; cat "$(dirname "$cfg")/generation_config.json"; } \
      >"$CORPUS/fuzz_llama_config/seed-$name-gen"
  fi
done

failed=0
printf '%-20s %12s %8s %8s %8s  %s\n' target execs cov ft corpus result
for t in "${TARGETS[@]}"; do
  log=$BUILD/$t.log
  set +e
  extra=(); [[ -d tests/fuzz/regressions/$t ]] && extra=(tests/fuzz/regressions/$t)
  $BUILD/bin/$t "$CORPUS/$t" "${extra[@]}" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
    -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$CRASHES/$t-" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\).*/\1/p' <<<"$last")
  result=ok
  if ((rc != 0)); then
    result="CRASH (rc=$rc): see $log and $CRASHES/"
    failed=1
  fi
  printf '%-20s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
exit $failed
