#!/usr/bin/env bash
# Quick start, command 1: installs what is missing, builds, starts the four ctxstream
# services locally on 127.0.0.1 and shows them healthy. With --keep they stay up until
# Ctrl-C; otherwise they are stopped after the check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh ctxstream-inference ctxstream-kvcache ctxstream-compressor ctxstream-controller ctxctl
BIN=${BUILD_DIR:-build}/bin
RUN_DIR=${RUN_DIR:-var/run}
mkdir -p "$RUN_DIR"

declare -A PORTS=([controller]=50050 [inference]=50051 [kvcache]=50052 [compressor]=50053)
declare -A METRICS=([controller]=9460 [inference]=9461 [kvcache]=9462 [compressor]=9463)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for svc in inference kvcache compressor controller; do
  "$BIN/ctxstream-$svc" --listen="127.0.0.1:${PORTS[$svc]}" \
    --metrics_listen="127.0.0.1:${METRICS[$svc]}" >"$RUN_DIR/$svc.out" 2>"$RUN_DIR/$svc.log" &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  svc=$(echo inference kvcache compressor controller | cut -d' ' -f$((i + 1)))
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
echo "== metrics =="
for svc in inference kvcache compressor controller; do
  n=$(curl -sf "http://127.0.0.1:${METRICS[$svc]}/metrics" | grep -c '^ctxstream_' || true)
  echo "$svc: http://127.0.0.1:${METRICS[$svc]}/metrics ($n ctxstream_ samples)"
done
if [[ "${1:-}" == "--keep" ]]; then
  echo "services running; logs in $RUN_DIR; Ctrl-C stops them"
  wait
fi
