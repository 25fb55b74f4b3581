#!/usr/bin/env bash
# Regenerates the performance section, docs/performance.md, and its plots (docs/perf/*.png
# and *.svg) from fresh runs of the real services under ctxload (loadtest/README.md). Takes
# several minutes; it is a benchmark, not a test. Raw results: var/perf/.
#
# Bandwidth is emulated with tc tbf on a veth pair between network namespaces when this
# machine allows it (root; loadtest/netns.sh check), else with kvcache's
# --egress_bytes_per_second (per Fetch stream; kvcache restarts per rate; no traces then).
#
# Environment: PERF_SHAPING=auto|tbf|egress, PERF_BANDWIDTHS="1 3 10 30 100 1000"
# (Mbit/s), PERF_QUERIES=2 (per strategy and bandwidth), PERF_SLO=0.5 (TTFT SLO sent with
# every query, s), PERF_TRACES="step cachegen_scaled", PERF_LOAD_RATES="1 4 8 16 32",
# PERF_LOAD_SECONDS=12, PERF_REPLICAS="1 2 4", PERF_SCALE_SLO=3 (p99 TTFT bound, s),
# PERF_NO_BUILD=1 (use existing binaries), BIN_DIR=build/bin, PERF_SECTIONS="sweep trace load"
# (a subset reruns only those sections and keeps the other results of the previous run).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${PERF_OUT:-var/perf}
PLOTS=docs/perf
DOC=docs/performance.md
SHAPING=${PERF_SHAPING:-auto}
BWS=${PERF_BANDWIDTHS:-"1 3 10 30 100 1000"}
Q=${PERF_QUERIES:-2}
SLO=${PERF_SLO:-0.5}
TRACES=${PERF_TRACES:-"step cachegen_scaled"}
LOAD_RATES=${PERF_LOAD_RATES:-"1 4 8 16 32"}
LOAD_SECONDS=${PERF_LOAD_SECONDS:-12}
REPLICAS=${PERF_REPLICAS:-"1 2 4"}
SCALE_SLO=${PERF_SCALE_SLO:-3}
export BIN_DIR=${BIN_DIR:-build/bin}
CTXLOAD=${CTXLOAD:-build/bin/ctxload}
export RUN_DIR=$OUT/run

for tool in gnuplot jq; do
  command -v $tool >/dev/null || { echo "perf.sh: $tool missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
if [[ "${PERF_NO_BUILD:-0}" != 1 ]]; then
  scripts/build.sh ctxload ctxstream-inference ctxstream-kvcache ctxstream-compressor \
    ctxstream-controller
fi
if [[ $SHAPING == auto ]]; then
  if loadtest/netns.sh check; then SHAPING=tbf; else SHAPING=egress; fi
fi
echo "perf: bandwidth emulation: $SHAPING"

SECTIONS=${PERF_SECTIONS:-"sweep trace load"}
has() { [[ " $SECTIONS " == *" $1 "* ]]; }
if [[ $SECTIONS == "sweep trace load" ]]; then
  rm -rf "$OUT"
else
  rm -rf "$OUT/run" "$OUT/store" "$OUT/state" "$OUT/contexts"
  for s in sweep trace load; do if has $s; then rm -rf "${OUT:?}/$s"; fi; done
fi
mkdir -p "$OUT"/{sweep,trace,load} "$PLOTS"
# shellcheck source=loadtest/cluster.sh
source loadtest/cluster.sh
cleanup() {
  cluster_stop_all
  [[ $SHAPING == tbf ]] && loadtest/netns.sh down
  return 0
}
trap cleanup EXIT INT TERM

MODEL=models/tiny-llama
PROFILE=${PERF_CODEC_PROFILE:-$MODEL/kvcodec.profile}
[[ -f $PROFILE ]] || PROFILE=""
NS_APP=""
NS_KV=""
if [[ $SHAPING == tbf ]]; then
  loadtest/netns.sh up 1000mbit
  NS_APP=ctxlt_app
  NS_KV=ctxlt_kv
fi
APP=()
[[ -n $NS_APP ]] && APP=(ip netns exec "$NS_APP")

# Inference replica i (1-based): fixed ports inside the namespace, ephemeral otherwise.
inference_listen() { if [[ $SHAPING == tbf ]]; then echo "0.0.0.0:$((50060 + $1))"; else echo "127.0.0.1:0"; fi; }
inference_addr() {  # as the controller sees replica $1
  local a=${CLUSTER_ADDR[inference$1]}
  echo "127.0.0.1:${a##*:}"
}
start_inference() {
  cluster_start "inference$1" "$NS_APP" --model_dir=$MODEL --codec_profile=$PROFILE \
    --listen="$(inference_listen "$1")" --metrics_listen=127.0.0.1:0
}
start_kvcache() {  # $1: egress bytes/s (0 = unlimited)
  local listen=127.0.0.1:0 inf
  inf=$(inference_addr 1)
  if [[ $SHAPING == tbf ]]; then listen=10.77.0.1:50052; inf="10.77.0.2:${inf##*:}"; fi
  cluster_start kvcache "$NS_KV" --inference="$inf" --store=disk --store_dir="$OUT/store" \
    --codec_profile=$PROFILE --listen=$listen --metrics_listen=127.0.0.1:0 \
    --egress_bytes_per_second="$1" --fetch_threads=16
}
kvcache_addr() { echo "${CLUSTER_ADDR[kvcache]}"; }
start_controller() {  # $1: number of inference replicas
  local list="" i
  for ((i = 1; i <= $1; i++)); do list+="${list:+,}$(inference_addr $i)"; done
  local listen=127.0.0.1:0
  cluster_start controller "$NS_APP" --inference="$list" --kvcache="$(kvcache_addr)" \
    --compressor="${CLUSTER_ADDR[compressor]}" --state_dir="$OUT/state" --listen=$listen \
    --metrics_listen=127.0.0.1:0 --workers=64
}
set_bandwidth() {  # $1: Mbit/s
  if [[ $SHAPING == tbf ]]; then
    loadtest/netns.sh rate "$1"
  else
    cluster_stop controller
    cluster_stop kvcache
    start_kvcache "$(awk -v m="$1" 'BEGIN{printf "%.0f", m*1e6/8}')"
    start_controller "${NREPLICAS:-1}"
  fi
}
ctxload() {
  "${APP[@]}" "$CTXLOAD" --controller="${CLUSTER_ADDR[controller]}" \
    --contexts_file="$OUT/contexts" --docs=loadtest/data/docs \
    --questions=loadtest/data/questions.txt --max_tokens=8 --slo="$SLO" --quiet "$@"
}

# --- Cluster with one inference replica --------------------------------------------------
start_inference 1
cluster_start compressor "$NS_APP" --model_dir=models/tiny-lingua2 \
  --target_tokenizer=$MODEL/tokenizer.model --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0
start_kvcache 0
start_controller 1
NREPLICAS=1
"${APP[@]}" "$CTXLOAD" --codec_info_from="$(kvcache_addr)" --codec_info_out="$OUT/codec.json"
ctxload --register_only
LEVELS=$(jq -r '.levels[].level' "$OUT/codec.json" | tr '\n' ' ')
STRATEGIES="text ctext"
for l in $LEVELS; do STRATEGIES+=" kv$l"; done
STRATEGIES+=" adaptive"
strategy_flags() {
  case $1 in
    text) echo "--force_form=text" ;;
    ctext) echo "--force_form=ctext" ;;
    kv*) echo "--force_form=kv --force_level=${1#kv}" ;;
    adaptive) echo "--force_form=auto --warmup_queries=1" ;;
  esac
}

# --- 1. Static bandwidth sweep: TTFT per strategy ----------------------------------------
if has sweep; then
echo "mbit $STRATEGIES" >"$OUT/sweep_mean.dat"
cp "$OUT/sweep_mean.dat" "$OUT/sweep_p99.dat"
for bw in $BWS; do
  set_bandwidth "$bw"
  means="$bw" p99s="$bw"
  for s in $STRATEGIES; do
    # shellcheck disable=SC2046
    ctxload $(strategy_flags "$s") --concurrency=1 --queries="$Q" --duration_seconds=300 \
      --label="$s@${bw}mbit" --summary="$OUT/sweep/$bw-$s.json" --records="$OUT/sweep/$bw-$s.jsonl"
    means+=" $(jq '.ttft_s.mean' "$OUT/sweep/$bw-$s.json")"
    p99s+=" $(jq '.ttft_s.p99' "$OUT/sweep/$bw-$s.json")"
  done
  echo "$means" >>"$OUT/sweep_mean.dat"
  echo "$p99s" >>"$OUT/sweep_p99.dat"
done
fi

# --- 2. Time-varying traces (tbf only) ---------------------------------------------------
TRACE_STRATEGIES="text kv0 kv$(echo "$LEVELS" | awk '{print $NF}') adaptive"
if [[ $SHAPING == tbf ]] && has trace; then
  for tr in $TRACES; do
    f=loadtest/traces/$tr.trace
    total=$(awk '!/^#/ && NF {s += $1} END {print s}' "$f")
    for s in $TRACE_STRATEGIES; do
      loadtest/netns.sh rate "$(awk '!/^#/ && NF {print $2; exit}' "$f")"
      loadtest/trace_runner.sh "$f" "$OUT/trace/$tr-$s.bw" loadtest/netns.sh rate &
      runner=$!
      # shellcheck disable=SC2046
      ctxload $(strategy_flags "$s" | sed 's/--warmup_queries=1//') --concurrency=1 --queries=0 \
        --duration_seconds="$total" --timeline_bucket_seconds=2 --label="$s@$tr" \
        --summary="$OUT/trace/$tr-$s.json" --records="$OUT/trace/$tr-$s.jsonl"
      kill "$runner" 2>/dev/null || true
      wait "$runner" 2>/dev/null || true
    done
  done
  loadtest/netns.sh rate 1000
fi

# --- 3/4. Throughput vs offered load, with 1, 2 and 4 inference replicas ------------------
set_bandwidth 1000
has load || REPLICAS=""
for r in $REPLICAS; do
  for ((i = NREPLICAS + 1; i <= r; i++)); do start_inference "$i"; done
  NREPLICAS=$r
  cluster_stop controller
  start_controller "$r"
  echo "offered throughput p50 p99 violations" >"$OUT/load/r$r.dat"
  for rate in $LOAD_RATES; do
    ctxload --rate="$rate" --queries=0 --duration_seconds="$LOAD_SECONDS" --seed=11 \
      --warmup_queries=1 --label="r$r@$rate" --summary="$OUT/load/r$r-$rate.json"
    jq -r '[.offered_qps, .throughput_qps, .ttft_s.p50, .ttft_s.p99, .slo_violation_ratio] | @tsv' \
      "$OUT/load/r$r-$rate.json" | tr '\t' ' ' >>"$OUT/load/r$r.dat"
  done
done
cluster_stop_all

# --- Plots and the document ---------------------------------------------------------------
loadtest/make_report.sh "$OUT" "$PLOTS" "$DOC" "$SHAPING" "$SLO" "$SCALE_SLO" "$TRACES"
echo "perf: wrote $DOC and $PLOTS/"
