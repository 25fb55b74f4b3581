#!/usr/bin/env bash
# Quick start, command 1: installs what is missing, builds, starts the all-in-one cluster
# (inference, kvcache with a disk store, compressor, controller) on 127.0.0.1 with the
# bundled tiny models, registers a document and answers questions about it three ways:
# as text, as KV chosen by the controller for an SLO, and as compressed text.
# With --keep the cluster stays up until Ctrl-C (ctxctl --controller=127.0.0.1:50050 ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh ctxstream-inference ctxstream-kvcache ctxstream-compressor \
  ctxstream-controller ctxctl
BIN=${BUILD_DIR:-build}/bin
RUN_DIR=${RUN_DIR:-var/run}
DOC=${DOC:-examples/http-status.txt}
QUESTION=${QUESTION:-"Which status code means that the resource was not found?"}
mkdir -p "$RUN_DIR" var/store var/controller

declare -A PORTS=([controller]=50050 [inference]=50051 [kvcache]=50052 [compressor]=50053)
declare -A METRICS=([controller]=9460 [inference]=9461 [kvcache]=9462 [compressor]=9463)
declare -A ARGS=(
  [inference]="--model_dir=models/tiny-llama"
  [kvcache]="--inference=127.0.0.1:50051 --store=disk --store_dir=var/store"
  [compressor]="--model_dir=models/tiny-lingua2"
  [controller]="--inference=127.0.0.1:50051 --kvcache=127.0.0.1:50052 --compressor=127.0.0.1:50053 --state_dir=var/controller"
)
SERVICES=(inference kvcache compressor controller)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for svc in "${SERVICES[@]}"; do
  # shellcheck disable=SC2086  # ARGS holds several flags
  "$BIN/ctxstream-$svc" --listen="127.0.0.1:${PORTS[$svc]}" \
    --metrics_listen="127.0.0.1:${METRICS[$svc]}" ${ARGS[$svc]} \
    >"$RUN_DIR/$svc.out" 2>"$RUN_DIR/$svc.log" &
  pids+=($!)
done
for i in "${!SERVICES[@]}"; do
  svc=${SERVICES[$i]}
  until grep -q "ready" "$RUN_DIR/$svc.out" 2>/dev/null; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "ctxstream-$svc failed to start:" >&2
      cat "$RUN_DIR/$svc.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done

echo "== health =="
"$BIN/ctxctl" health 127.0.0.1:50050 127.0.0.1:50051 127.0.0.1:50052 127.0.0.1:50053

CTL=("$BIN/ctxctl" --controller=127.0.0.1:50050)
echo "== register $DOC =="
"${CTL[@]}" register "$DOC" | tee "$RUN_DIR/register.out"
CONTEXT_ID=$(grep -o 'context_id[=: ]*[0-9a-f]\{32\}' "$RUN_DIR/register.out" | head -1 | grep -o '[0-9a-f]\{32\}')

echo "== query as text =="
"${CTL[@]}" query --context_id="$CONTEXT_ID" --question="$QUESTION" --form=text --max_tokens=24
echo "== query with a 0.5 s TTFT SLO (the controller chooses) =="
"${CTL[@]}" query --context_id="$CONTEXT_ID" --question="$QUESTION" --slo=0.5 --max_tokens=24
echo "== query, fastest option within a 1 % quality-loss floor (KV at a level) =="
"${CTL[@]}" query --context_id="$CONTEXT_ID" --question="$QUESTION" --objective=fastest \
  --quality_floor=0.01 --max_tokens=24
echo "== query as compressed text =="
"${CTL[@]}" query --context_id="$CONTEXT_ID" --question="$QUESTION" --form=ctext --max_tokens=24

echo "== metrics =="
for svc in "${SERVICES[@]}"; do
  n=$(curl -sf "http://127.0.0.1:${METRICS[$svc]}/metrics" | grep -c '^ctxstream_' || true)
  echo "$svc: http://127.0.0.1:${METRICS[$svc]}/metrics ($n ctxstream_ samples)"
done
if [[ "${1:-}" == "--keep" ]]; then
  echo "cluster running (controller 127.0.0.1:50050); logs in $RUN_DIR; Ctrl-C stops it"
  wait
fi
