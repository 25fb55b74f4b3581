#!/usr/bin/env bash
# Soak: a mixed load against the four-service cluster for SECONDS (default 600), with the
# resident memory (VmRSS) of every service sampled each minute; prints a table of RSS at the
# start (after registration), after the first minute (warm), and at the end, with growth.
#
#   loadtest/soak.sh [SECONDS]          needs build/bin/{ctxstream-*,ctxload,ctxctl}
#
# Load (all at once, closed loop, one query in flight each): ctxload forced to text, to KV
# (controller-chosen level) and to LLMLingua-2 compressed text, plus an adaptive ctxload with
# a 0.5 s SLO; and a register (with LLMLingua-2 compressed text) -> query (text / compressed
# text) -> delete cycle of a fresh document every 15 s (so registrations, the compressor and
# deletions run the whole time without growing the stored set).
# Output in var/soak/: rss.csv (every sample), <load>.json (ctxload summaries), service logs.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-600}
RUN_DIR=${RUN_DIR:-var/soak}
BIN_DIR=${BIN_DIR:-build/bin}
export RUN_DIR BIN_DIR
for b in ctxstream-inference ctxstream-kvcache ctxstream-compressor ctxstream-controller ctxload ctxctl; do
  [[ -x $BIN_DIR/$b ]] || { echo "soak: $BIN_DIR/$b missing (ninja -C build $b)" >&2; exit 1; }
done
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"
# shellcheck source=loadtest/cluster.sh
source loadtest/cluster.sh
LOAD_PIDS=()
cleanup() {
  local p
  for p in "${LOAD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  cluster_stop_all
}
trap cleanup EXIT

L=(--listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --log_level=warn)
cluster_start inference "" "${L[@]}" --model_dir=models/tiny-llama --measure_speed=false
cluster_start kvcache "" "${L[@]}" --inference="${CLUSTER_ADDR[inference]}" \
  --store=disk --store_dir="$RUN_DIR/store" --codec_profile=models/tiny-llama/kvcodec.profile
cluster_start compressor "" "${L[@]}" --model_dir=models/tiny-lingua2
cluster_start controller "" "${L[@]}" --inference="${CLUSTER_ADDR[inference]}" \
  --kvcache="${CLUSTER_ADDR[kvcache]}" --compressor="${CLUSTER_ADDR[compressor]}"
CTRL=${CLUSTER_ADDR[controller]}
SERVICES=(inference kvcache compressor controller)

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
sample() {  # sample LABEL: one CSV line per service
  local s
  for s in "${SERVICES[@]}"; do
    echo "$1,$s,${CLUSTER_PID[$s]},$(rss "${CLUSTER_PID[$s]}")" >>"$RUN_DIR/rss.csv"
  done
}

echo "soak: registering loadtest/data/docs (KV at every level, precomputed compressed text)"
"$BIN_DIR/ctxload" --controller="$CTRL" --contexts_file="$RUN_DIR/contexts" --register_only \
  --quiet >"$RUN_DIR/register.log" 2>&1
echo "t,service,pid,rss_kib" >"$RUN_DIR/rss.csv"
sample start
T0=$(date +%s)

for form in text kv ctext auto; do
  extra=()
  [[ $form == auto ]] && extra=(--slo=0.5)
  "$BIN_DIR/ctxload" --controller="$CTRL" --contexts_file="$RUN_DIR/contexts" \
    --force_form="$form" --concurrency=1 --queries=0 --duration_seconds="$DURATION" \
    --deadline_seconds=300 --max_tokens=8 --seed="$RANDOM" --quiet "${extra[@]}" \
    --summary="$RUN_DIR/$form.json" >"$RUN_DIR/$form.log" 2>&1 &
  LOAD_PIDS+=($!)
done

# Register -> query -> delete cycles of a fresh document (a slice of a long doc, varied).
cycle_doc="$RUN_DIR/cycle.txt"
cycles=0 cycle_errors=0
docs=(tests/data/long_docs/*.txt)
next_sample=60
while (($(date +%s) - T0 < DURATION)); do
  doc=${docs[$((cycles % ${#docs[@]}))]}
  head -c $((3000 + (cycles % 7) * 500)) "$doc" >"$cycle_doc"
  # Every cycle runs the compressor on the registration path (precomputed compressed text);
  # odd cycles also query as compressed text.
  form=text
  ((cycles % 2)) && form=ctext
  if out=$("$BIN_DIR/ctxctl" --controller="$CTRL" register "$cycle_doc" --precompute_compressed \
    2>>"$RUN_DIR/cycle.log") &&
    id=$(sed -n 's/^context_id=\([^ ]*\).*/\1/p' <<<"$out") && [[ -n $id ]]; then
    "$BIN_DIR/ctxctl" --controller="$CTRL" query --context_id="$id" --question="Summary:" \
      --form="$form" --max_tokens=4 >>"$RUN_DIR/cycle.log" 2>&1 || ((cycle_errors += 1))
    "$BIN_DIR/ctxctl" --controller="$CTRL" delete "$id" >>"$RUN_DIR/cycle.log" 2>&1 ||
      ((cycle_errors += 1))
  else
    ((cycle_errors += 1))
  fi
  ((cycles += 1))
  elapsed=$(($(date +%s) - T0))
  if ((elapsed >= next_sample)); then
    sample "$next_sample"
    next_sample=$((next_sample + 60))
  fi
  sleep 15
done
wait "${LOAD_PIDS[@]}" || true
LOAD_PIDS=()
sample end
echo "t,cycles,cycle_errors" >"$RUN_DIR/cycles.csv"
echo "end,$cycles,$cycle_errors" >>"$RUN_DIR/cycles.csv"

/usr/bin/python3 - "$RUN_DIR" "$DURATION" <<'PY'
import csv, json, sys, os
run, duration = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(os.path.join(run, "rss.csv"))))
by = {}
for r in rows:
    by.setdefault(r["service"], {})[r["t"]] = int(r["rss_kib"])
print(f"\nsoak: {duration} s mixed load; VmRSS in MiB")
print(f"| service | start | after 60 s | end | growth start->end | growth 60 s->end |")
print(f"| --- | ---: | ---: | ---: | ---: | ---: |")
for s, v in by.items():
    st, w, e = v.get("start", 0), v.get("60", v.get("start", 0)), v.get("end", 0)
    f = lambda k: f"{k / 1024:.1f}"
    g = lambda a, b: f"{(b - a) / 1024:+.1f} ({(b - a) / a * 100:+.1f} %)" if a else "-"
    print(f"| {s} | {f(st)} | {f(w)} | {f(e)} | {g(st, e)} | {g(w, e)} |")
print("\n| load | sent | ok | failed | errors | TTFT p50 s | p99 s |")
print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
for form in ["text", "kv", "ctext", "auto"]:
    p = os.path.join(run, form + ".json")
    if not os.path.exists(p):
        print(f"| {form} | (no summary) | | | | | |")
        continue
    j = json.load(open(p))
    print(f"| {form} | {j['sent']} | {j['ok']} | {j['failed']} | {j['errors_by_code']} | "
          f"{j['ttft_s']['p50']:.3f} | {j['ttft_s']['p99']:.3f} |")
c = list(csv.DictReader(open(os.path.join(run, "cycles.csv"))))[0]
print(f"\nregister -> query -> delete cycles: {c['cycles']}, errors {c['cycle_errors']}")
PY
