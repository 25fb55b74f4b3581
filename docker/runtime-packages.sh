#!/usr/bin/env bash
# Prints, one per line and sorted, the Debian packages that provide the shared libraries the
# given binaries load (ldd + dpkg -S). The image's runtime stage installs exactly these, and
# tests/deploy checks the same list against the binaries built here.
# Usage: docker/runtime-packages.sh BINARY...
set -euo pipefail
if (($# == 0)); then
  echo "usage: $0 BINARY..." >&2
  exit 2
fi
libs=$(for b in "$@"; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u)
for lib in $libs; do
  # dpkg knows a library by the path it installed, which may be the /usr-merged twin.
  real=$(readlink -f "$lib")
  pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null ||
        dpkg -S "${lib#/usr}" 2>/dev/null || true)
  if [[ -z "$pkg" ]]; then
    echo "runtime-packages: no Debian package owns $lib" >&2
    exit 1
  fi
  echo "${pkg%%:*}"
done | sort -u
