#!/usr/bin/env bash
# Prints, one per line and sorted, the Debian packages that provide the shared libraries the
# given binaries load (ldd + dpkg -S). The image's runtime stage installs exactly these, and
# tests/deploy checks the same list against the binaries built here.
# Usage: docker/runtime-packages.sh [--owners] BINARY...
#   --owners  print "package<TAB>library" for every library instead
set -euo pipefail
owners=0
if [[ "${1:-}" == "--owners" ]]; then
  owners=1
  shift
fi
if (($# == 0)); then
  echo "usage: $0 [--owners] BINARY..." >&2
  exit 2
fi
mapfile -t libs < <(for b in "$@"; do ldd "$b"; done | awk '/=> \// {print $3}' | sort -u)
# dpkg knows a file by the path its package installed, which on a /usr-merged system may be
# the /lib or the /usr/lib twin, and for the SONAME link or its target. Ask for all of them
# in one dpkg call (one database read).
mapfile -t reals < <(readlink -f "${libs[@]}")
# Candidate paths of library i, with bash expansions only (no process per library).
candidates() {
  local lib=${libs[$1]} real=${reals[$1]}
  local dir=${lib%/*} base=${real##*/}
  printf '%s\n' "$lib" "$real" "/usr$lib" "${lib#/usr}" "$dir/$base" "/usr$dir/$base"
}
declare -A owner
while IFS= read -r line; do
  path=${line##*: }
  pkgs=${line%: *}
  owner[$path]=${pkgs%%[:,]*}
done < <(for i in "${!libs[@]}"; do candidates "$i"; done | sort -u | xargs dpkg -S 2>/dev/null || true)
status=0
result=()
for i in "${!libs[@]}"; do
  lib=${libs[$i]}
  pkg=""
  while IFS= read -r c; do
    if [[ -n "${owner[$c]:-}" ]]; then
      pkg=${owner[$c]}
      break
    fi
  done < <(candidates "$i")
  if [[ -z "$pkg" ]]; then
    echo "runtime-packages: no Debian package owns $lib" >&2
    status=1
    continue
  fi
  if ((owners)); then result+=("$pkg"$'\t'"$lib"); else result+=("$pkg"); fi
done
if ((${#result[@]})); then printf '%s\n' "${result[@]}" | sort -u; fi
exit $status
