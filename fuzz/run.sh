#!/bin/sh
# Run one libFuzzer harness (or all) for a bounded time and report.
#   fuzz/run.sh NAME|all [SECONDS]      NAME: uri spec size journal
# Builds build-fuzz/ (CC=clang, -Dfuzz=true) when the harness is missing;
# FUZZ_BUILD_DIR points at another build.  New inputs go to a temporary
# corpus; the seeds in fuzz/corpus/NAME are read, never written.  Prints
# "fuzz-NAME: E executions in S s, ..., findings: K" and exits 1 if K > 0
# (crash/leak/timeout/oom inputs are kept under fuzz/findings/NAME/).
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
name=${1:?usage: run.sh NAME|all [SECONDS]}
secs=${2:-20}
bdir=${FUZZ_BUILD_DIR:-$top/build-fuzz}

if [ "$name" = all ]; then
  rc=0
  for n in uri spec size journal; do "$0" "$n" "$secs" || rc=1; done
  exit $rc
fi
case $name in uri|spec|size|journal) ;; *) echo "run.sh: unknown harness \"$name\"" >&2; exit 2 ;; esac

bin=$bdir/fuzz/fuzz-$name
if [ ! -x "$bin" ]; then
  if [ ! -f "$bdir/build.ninja" ]; then
    CC=clang meson setup "$bdir" "$top" -Dfuzz=true -Dlabs=false -Dpython=disabled -Dgo=disabled \
      >/dev/null || exit 1
  fi
  ninja -C "$bdir" "fuzz/fuzz-$name" >/dev/null || exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vstor-fuzz-$name.XXXXXX")
mkdir -p "$work/corpus" "$work/art"
dict=
case $name in uri|spec) dict=-dict=$here/uri.dict ;; size) dict=-dict=$here/size.dict ;; journal) dict=-dict=$here/journal.dict ;; esac
# -rss_limit_mb: the parsers never need much; -timeout: a slow input is a finding
"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=1024 \
  -artifact_prefix="$work/art/" $dict "$work/corpus" "$here/corpus/$name" >"$work/log" 2>&1
frc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 | cut -d' ' -f2)
seeds=$(ls "$here/corpus/$name" | wc -l)
newc=$(ls "$work/corpus" | wc -l)
nfind=$(ls "$work/art" | wc -l)
echo "fuzz-$name: ${execs:-0} executions in $secs s, coverage ${cov:-?} edges, $seeds seeds, $newc new inputs, findings: $nfind"
if [ "$nfind" -gt 0 ] || [ $frc -ne 0 ]; then
  mkdir -p "$here/findings/$name"
  cp "$work/art/"* "$here/findings/$name/" 2>/dev/null
  grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$work/log" | head -20
  echo "fuzz-$name: FAILED (libFuzzer exit $frc); inputs kept in fuzz/findings/$name/, log $work/log"
  exit 1
fi
[ -n "${FUZZ_KEEP:-}" ] || rm -rf "$work"
exit 0
