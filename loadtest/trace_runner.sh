#!/usr/bin/env bash
# Plays a bandwidth trace: for each line "SECONDS MBIT" of TRACE, runs `SETTER... MBIT`
# (e.g. `loadtest/netns.sh rate`) and holds that rate SECONDS, logging "t_seconds mbit"
# (time since start) to LOG. Run it in the background next to ctxload and stop it by PID
# when the load ends; it exits by itself at the end of the trace.
#
#   loadtest/trace_runner.sh TRACE LOG SETTER [ARGS...]
#
# Trace format (loadtest/traces/*.trace): '#' comments; one step per line, "SECONDS MBIT":
# the link runs at MBIT Mbit/s for SECONDS. CacheGen's traces hold one value per chunk;
# here a step is wall-clock time, so the re-planning sees changes mid-stream.
set -euo pipefail
trace=${1:?trace file}
log=${2:?log file}
shift 2
(($# > 0)) || { echo "trace_runner.sh: missing SETTER command" >&2; exit 2; }
start=$(date +%s.%N)
: >"$log"
while read -r secs mbit _; do
  [[ -z "${secs:-}" || "$secs" == \#* ]] && continue
  "$@" "$mbit"
  now=$(date +%s.%N)
  awk -v a="$start" -v b="$now" -v m="$mbit" 'BEGIN{printf "%.3f %s\n", b-a, m}' >>"$log"
  sleep "$secs"
done <"$trace"
now=$(date +%s.%N)
# Close the last step so that a step plot shows its full length.
tail -n1 "$log" | awk -v a="$start" -v b="$now" '{printf "%.3f %s\n", b-a, $2}' >>"$log"
