#!/usr/bin/env bash
# Quick start, command 2: installs what is missing, builds, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
start=$(date +%s)
scripts/build.sh
echo "build: $(( $(date +%s) - start )) s"
start=$(date +%s)
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j2 --timeout 600
echo "tests: $(( $(date +%s) - start )) s"
