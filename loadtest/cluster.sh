# Sourced by scripts/perf.sh: start/stop ctxstream services for load runs, optionally inside
# the network namespaces of loadtest/netns.sh. Every started process is remembered by PID
# and stopped by PID (cluster_stop_all); nothing is killed by name.
#
#   cluster_start NAME NS ARGS...   start build/bin/ctxstream-<base of NAME> (NAME may be
#                                   "inference2" etc.), NS "" = this namespace; waits for
#                                   its "ready" line; sets CLUSTER_ADDR[NAME]=host:port
#   cluster_stop NAME               SIGTERM, wait
#   cluster_stop_all
BIN=${BIN_DIR:-build/bin}
RUN_DIR=${RUN_DIR:-var/perf/run}
declare -gA CLUSTER_PID=() CLUSTER_ADDR=()

cluster_start() {
  local name=$1 ns=$2
  shift 2
  local base=${name%%[0-9]*}
  mkdir -p "$RUN_DIR"
  local prefix=()
  [[ -n "$ns" ]] && prefix=(ip netns exec "$ns")
  # Truncate here, not only in the child's redirection: otherwise the loop below can read a
  # previous run's "ready" line before the child has opened the file.
  : >"$RUN_DIR/$name.out"
  "${prefix[@]}" "$BIN/ctxstream-$base" "$@" >>"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.log" &
  CLUSTER_PID[$name]=$!
  local i
  for ((i = 0; i < 1200; i++)); do
    if grep -q " ready " "$RUN_DIR/$name.out" 2>/dev/null; then
      CLUSTER_ADDR[$name]=$(sed -n 's/.* ready grpc=\([^ ]*\).*/\1/p' "$RUN_DIR/$name.out" | head -n1)
      return 0
    fi
    if ! kill -0 "${CLUSTER_PID[$name]}" 2>/dev/null; then
      echo "cluster: $name failed to start:" >&2
      tail -n 20 "$RUN_DIR/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "cluster: $name not ready after 120 s" >&2
  return 1
}

cluster_stop() {
  local name=$1 pid=${CLUSTER_PID[$1]:-}
  [[ -z "$pid" ]] && return 0
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "CLUSTER_PID[$name]" "CLUSTER_ADDR[$name]"
}

cluster_stop_all() {
  local name
  for name in "${!CLUSTER_PID[@]}"; do cluster_stop "$name"; done
}
