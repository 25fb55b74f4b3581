#!/usr/bin/env bash
# Two network namespaces joined by a veth pair whose kvcache side is shaped with tc tbf:
# kvcache runs in $NS_KV (10.77.0.1), everything else in $NS_APP (10.77.0.2). Only the
# kvcache -> app direction (the KV bytes) is shaped. lo is never shaped: each namespace has
# its own loopback, brought up unshaped. Needs root, `ip netns` and the tbf qdisc
# (debian-build.md §7: netem is not available here, so bandwidth only, no delay or loss).
#
#   loadtest/netns.sh check          exit 0 when shaping works here, else 1 and the reason
#   loadtest/netns.sh up RATE        create (idempotent: recreates) with tbf at RATE
#   loadtest/netns.sh rate RATE      change the tbf rate (tc syntax, e.g. 10mbit; a number: Mbit/s)
#   loadtest/netns.sh down           remove both namespaces (and the veth); idempotent
#   loadtest/netns.sh show           qdisc statistics of the shaped link
set -euo pipefail

NS_KV=${NS_KV:-ctxlt_kv}
NS_APP=${NS_APP:-ctxlt_app}
VETH_KV=ctxlt_kv0
VETH_APP=ctxlt_app0
IP_KV=10.77.0.1
IP_APP=10.77.0.2

# tbf needs a bucket of at least one (GSO) packet; 20 ms of traffic, at least 16 KiB.
tbf_args() {
  local rate=$1 bits
  bits=$(rate_bits "$rate")
  local burst=$((bits / 8 / 50))
  ((burst < 16384)) && burst=16384
  echo "rate $rate burst $burst latency 100ms"
}

# tc rate syntax (kbit, mbit, gbit, bit) -> bits per second.
rate_bits() {
  local r=${1,,}
  case "$r" in
    *gbit) awk -v v="${r%gbit}" 'BEGIN{printf "%d", v*1e9}' ;;
    *mbit) awk -v v="${r%mbit}" 'BEGIN{printf "%d", v*1e6}' ;;
    *kbit) awk -v v="${r%kbit}" 'BEGIN{printf "%d", v*1e3}' ;;
    *bit) echo "${r%bit}" ;;
    *) echo "netns.sh: rate '$1' must end in bit, kbit, mbit or gbit" >&2; return 1 ;;
  esac
}

down() {
  # Deleting a namespace deletes the veth end inside it, and with it its peer and qdisc.
  ip netns del "$NS_KV" 2>/dev/null || true
  ip netns del "$NS_APP" 2>/dev/null || true
}

check() {
  if [[ $(id -u) -ne 0 ]]; then echo "netns.sh: not root: cannot create namespaces" >&2; return 1; fi
  if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
    echo "netns.sh: ip/tc (iproute2) missing" >&2; return 1
  fi
  local probe=ctxlt_probe$$
  if ! ip netns add "$probe" 2>/dev/null; then echo "netns.sh: ip netns add failed" >&2; return 1; fi
  local ok=0
  if ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null &&
    tc -n "$probe" qdisc add dev p0 root tbf rate 10mbit burst 16384 latency 100ms 2>/dev/null; then
    ok=1
  fi
  ip netns del "$probe" 2>/dev/null || true
  if ((ok == 0)); then echo "netns.sh: veth or tbf qdisc not available" >&2; return 1; fi
}

up() {
  local rate=${1:?rate, e.g. 100mbit}
  down
  trap 'down' ERR  # never leave half a set-up behind
  ip netns add "$NS_KV"
  ip netns add "$NS_APP"
  ip -n "$NS_KV" link set lo up
  ip -n "$NS_APP" link set lo up
  ip -n "$NS_KV" link add "$VETH_KV" type veth peer name "$VETH_APP" netns "$NS_APP"
  ip -n "$NS_KV" addr add "$IP_KV/24" dev "$VETH_KV"
  ip -n "$NS_APP" addr add "$IP_APP/24" dev "$VETH_APP"
  ip -n "$NS_KV" link set "$VETH_KV" up
  ip -n "$NS_APP" link set "$VETH_APP" up
  # shellcheck disable=SC2046
  tc -n "$NS_KV" qdisc add dev "$VETH_KV" root tbf $(tbf_args "$rate")
  trap - ERR
}

rate() {
  local r=${1:?rate}
  [[ "$r" =~ ^[0-9.]+$ ]] && r="${r}mbit"  # a plain number is Mbit/s (trace values)
  # shellcheck disable=SC2046
  tc -n "$NS_KV" qdisc change dev "$VETH_KV" root tbf $(tbf_args "$r")
}

case "${1:-}" in
  check) check ;;
  up) up "${2:-}" ;;
  rate) rate "${2:-}" ;;
  down) down ;;
  show) tc -n "$NS_KV" -s qdisc show dev "$VETH_KV" ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
