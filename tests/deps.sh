#!/bin/bash
# Install the Debian packages the build and the test suites need: the
# union of tests/deps/*.txt (one package per line; each backend, lab and
# binding keeps its own list), or only the lists named as arguments
# (`tests/deps.sh core`).  Idempotent; installs only what is missing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
lists=("$HERE"/deps/*.txt)
[ $# -gt 0 ] && lists=("${@/#/$HERE/deps/}") && lists=("${lists[@]/%/.txt}")
mapfile -t pkgs < <(grep -hv '^\s*#' "${lists[@]}" | awk 'NF{print $1}' | sort -u)
need=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
echo "deps: ${#pkgs[@]} packages present"
