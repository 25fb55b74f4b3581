#!/usr/bin/env bash
# Adaptive controller vs every fixed strategy over emulated kvcache -> inference bandwidths
# and a time-varying link (issue #6 benchmark; not a test).
#
# Link: kvcache's egress limiter through --egress_schedule_file (services/kvcache/
# egress_schedule.h), re-read whenever a Fetch stream opens, so the rate changes between
# points without restarts and the controller keeps what it learned. Per Fetch stream (one
# query at a time here, so it is the link). Text and compressed text do not cross this link
# (token ids go controller -> inference); their TTFT is measured at every point anyway.
#
# Per point and strategy: BENCH_QUERIES closed-loop queries (concurrency 1) with ctxload over
# loadtest/data/docs; the mean client TTFT. Strategies: text, ctext (precomputed LLMLingua-2,
# rate 0.5), kvL for every codec level L, adaptive (objective BENCH_OBJECTIVE, per-chunk
# re-planning on, hybrid plans -- text head prefilled while the KV tail streams -- unless
# BENCH_HYBRID=false; runs last at each point so its link estimate has seen that point's
# traffic, as a controller under continuous traffic would). Hybrids are the adaptive
# controller's choice, not a fixed strategy: forced forms are never hybrid. 8-bit KV is not a
# strategy: the API has no way to force KV_ENCODING_QUANT8 (loadtest/README.md).
#
# Trace: per stream, BENCH_TRACE (egress_schedule syntax), by default 100 Mbit/s, a drop to
# 2 Mbit/s 0.2 s into the stream for 1 s, then 100 Mbit/s again.
#
#   loadtest/adaptive_bench.sh        # writes $BENCH_OUT/table.md and prints it
# Env: BUILD=build BENCH_BANDWIDTHS="1 3 10 30 100 300 1000" (Mbit/s) BENCH_QUERIES=2
#      BENCH_OBJECTIVE=fastest|quality BENCH_SLO=0 BENCH_TRACE=... BENCH_OUT=var/adaptive_bench
#      BENCH_MAX_TOKENS=2 BENCH_HYBRID=true BENCH_FLOOR=0 (adaptive's quality floor)
#      BENCH_STRATEGIES="text ctext kv0 ... adaptive" (leave out those above the floor)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BIN_DIR=$BUILD/bin
OUT=${BENCH_OUT:-var/adaptive_bench}
export RUN_DIR=$OUT/run
BANDWIDTHS=${BENCH_BANDWIDTHS:-"1 3 10 30 100 300 1000"}
QUERIES=${BENCH_QUERIES:-2}
OBJECTIVE=${BENCH_OBJECTIVE:-fastest}
SLO=${BENCH_SLO:-0}
TRACE=${BENCH_TRACE:-"12500000,250000@0.2s,12500000@1.2s"}
MAX_TOKENS=${BENCH_MAX_TOKENS:-2}
HYBRID=${BENCH_HYBRID:-true}
FLOOR=${BENCH_FLOOR:-0}
MODEL=models/tiny-llama
CTXLOAD=$BUILD/bin/ctxload

source loadtest/cluster.sh
trap cluster_stop_all EXIT
rm -rf "$OUT"
mkdir -p "$OUT"
SCHED=$OUT/egress_schedule
: >"$SCHED"
L=(--listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0)
cluster_start inference "" --model_dir=$MODEL "${L[@]}"
cluster_start compressor "" --model_dir=models/tiny-lingua2 \
  --target_tokenizer=$MODEL/tokenizer.model "${L[@]}"
cluster_start kvcache "" --inference="${CLUSTER_ADDR[inference]}" --store=memory \
  --codec_profile=$MODEL/kvcodec.profile --egress_schedule_file="$SCHED" "${L[@]}"
cluster_start controller "" --inference="${CLUSTER_ADDR[inference]}" \
  --kvcache="${CLUSTER_ADDR[kvcache]}" --compressor="${CLUSTER_ADDR[compressor]}" \
  --adapt=true --hybrid="$HYBRID" "${L[@]}"

load() {
  "$CTXLOAD" --controller="${CLUSTER_ADDR[controller]}" --contexts_file="$OUT/contexts" \
    --docs=loadtest/data/docs --questions=loadtest/data/questions.txt \
    --max_tokens="$MAX_TOKENS" --slo="$SLO" --quiet "$@" >/dev/null
}
"$CTXLOAD" --codec_info_from="${CLUSTER_ADDR[kvcache]}" --codec_info_out="$OUT/codec.json"
load --register_only
LEVELS=$(jq -r '.levels[].level' "$OUT/codec.json" | tr '\n' ' ')
STRATEGIES=${BENCH_STRATEGIES:-"text ctext $(for l in $LEVELS; do printf 'kv%s ' "$l"; done)adaptive"}

# Warm-up on an unlimited link: prefill samples and a first bandwidth measurement.
load --queries=2 --duration_seconds=0 --force_form=text
load --queries=2 --duration_seconds=0 --force_form=kv --force_level=0

run_point() {  # $1 point name, $2 schedule spec
  echo "$2" >"$SCHED"
  local s args
  for s in $STRATEGIES; do
    case $s in
      text) args=(--force_form=text) ;;
      ctext) args=(--force_form=ctext) ;;
      kv*) args=(--force_form=kv --force_level="${s#kv}") ;;
      adaptive) args=(--objective="$OBJECTIVE" --quality_floor="$FLOOR") ;;
    esac
    load --queries="$QUERIES" --duration_seconds=0 --label="$1/$s" \
      --summary="$OUT/$1.$s.json" --records="$OUT/$1.$s.jsonl" "${args[@]}"
    printf '%-10s %-9s mean TTFT %s s\n' "$1" "$s" "$(jq -r '.ttft_s.mean' "$OUT/$1.$s.json")" >&2
  done
}
POINTS=""
for bw in $BANDWIDTHS; do
  run_point "${bw}Mbit" "$(awk -v m="$bw" 'BEGIN{printf "%.0f", m*1e6/8}')"
  POINTS+="${bw}Mbit "
done
run_point trace "$TRACE"
POINTS+="trace"

# Table: mean TTFT per strategy, the best fixed, adaptive / best fixed; then the mean over
# all points per strategy and the best single fixed strategy's mean / adaptive's mean.
{
  echo "| point | $(echo $STRATEGIES | sed 's/ / | /g') | best fixed | adaptive / best |"
  echo "|$(for _ in point $STRATEGIES best ratio; do printf -- ' --- |'; done)"
  for p in $POINTS; do
    row="| $p |"
    best=""
    bestv=""
    for s in $STRATEGIES; do
      v=$(jq -r '.ttft_s.mean' "$OUT/$p.$s.json")
      row+=" $(printf '%.3f' "$v") |"
      if [[ $s != adaptive ]] && { [[ -z $bestv ]] || awk -v a="$v" -v b="$bestv" 'BEGIN{exit !(a<b)}'; }; then
        best=$s
        bestv=$v
      fi
    done
    a=$(jq -r '.ttft_s.mean' "$OUT/$p.adaptive.json")
    mix=$(jq -c '.decision_mix' "$OUT/$p.adaptive.json")
    echo "$row $best | $(awk -v a="$a" -v b="$bestv" 'BEGIN{printf "%.2f", a/b}') |"
    echo "$p adaptive decisions: $mix" >>"$OUT/decisions.txt"
  done
  row="| mean |"
  bests=""
  bestm=""
  for s in $STRATEGIES; do
    m=$(for p in $POINTS; do jq -r '.ttft_s.mean' "$OUT/$p.$s.json"; done | awk '{t+=$1; n++} END{printf "%.3f", t/n}')
    row+=" $m |"
    if [[ $s != adaptive ]] && { [[ -z $bestm ]] || awk -v a="$m" -v b="$bestm" 'BEGIN{exit !(a<b)}'; }; then
      bests=$s
      bestm=$m
    fi
    [[ $s == adaptive ]] && am=$m
  done
  echo "$row $bests (single) | $(awk -v a="$am" -v b="$bestm" 'BEGIN{printf "%.2f (best single / adaptive = %.2fx)", a/b, b/a}') |"
  echo
  echo "Adaptive decisions (query-weighted):"
  echo
  sed 's/^/    /' "$OUT/decisions.txt"
} >"$OUT/table.md"
cat "$OUT/table.md"
