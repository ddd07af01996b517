#!/bin/sh
# libvstor ABI check: compare the built library with the committed
# baseline (abi/libvstor-0.1.abi, made by abidw; see doc/abi.md).
# Fails on any change abidiff finds except added functions: removed or
# changed functions and types (ABIDIFF_ABI_CHANGE=4,
# ABIDIFF_ABI_INCOMPATIBLE_CHANGE=8), and on abidiff errors (1, 2).
#   abi-compare.sh BASELINE.abi LIBVSTOR.so PUBLIC_HEADER_DIR
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
base=$1 lib=$2 hdr=$3
command -v abidiff >/dev/null || { echo "FAIL: abidiff not installed (apt install abigail-tools)"; exit 1; }
[ -r "$base" ] || { echo "FAIL: no baseline $base"; exit 1; }
abidiff --no-added-syms --no-show-locs --drop-private-types --hd2 "$hdr" \
  --fail-no-debug-info "$base" "$lib"
rc=$?
echo "abidiff exit status $rc (bits: 1 error, 2 usage, 4 ABI change, 8 incompatible change)"
if [ $rc -ne 0 ]; then
  [ $((rc & 8)) -ne 0 ] && echo "FAIL: incompatible ABI change against $base"
  [ $((rc & 4)) -ne 0 ] && echo "FAIL: ABI change against $base (see above; added functions are not counted)"
  [ $((rc & 3)) -ne 0 ] && echo "FAIL: abidiff could not compare (no debug info? build with -g, e.g. buildtype=debugoptimized)"
  exit 1
fi
echo "ABI of $lib compatible with $base"
