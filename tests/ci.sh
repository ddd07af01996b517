#!/bin/bash
# The whole test suite, as README.md gives it and CI runs it (root, Debian 12):
#   1. install every package the suites need (tests/deps.sh)
#   2. build warning-free (-Werror) and run every meson suite, labs included:
#      file backend on real loops, core, crash-safety, bindings (Python, Go,
#      Python under valgrind), LVM in a TCG VM, libvirt+QEMU, Xen, Ceph
#   3. the C suites again under ASan+UBSan, and under valgrind memcheck
#   4. the fuzzers for a bounded time (clang/libFuzzer)
# Exit 0 only if every step passed.  Build trees: $VSTOR_CI_DIR (default
# ./build-ci*).  Closing line: "N passed, N failed".
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${VSTOR_CI_DIR:-$TOP/build-ci}
cd "$TOP"
[ "$(id -u)" = 0 ] || { echo "ci: run as root (loop devices, mounts, VMs)" >&2; exit 1; }
pass=0; fail=0; failed=()
t_start=$(date +%s)
step() {  # step NAME CMD...
  local name=$1; shift
  local t0=$(date +%s)
  echo "::: $name"
  if "$@"; then pass=$((pass + 1)); echo "::: $name: ok ($(( $(date +%s) - t0 )) s)"
  else fail=$((fail + 1)); failed+=("$name"); echo "::: $name: FAILED ($(( $(date +%s) - t0 )) s)"; fi
}
setup() {  # setup DIR [meson options]
  local dir=$1; shift
  rm -rf "$dir"
  meson setup "$dir" "$@" -Dwerror=true >/dev/null || { meson setup "$dir" "$@" -Dwerror=true; return 1; }
  ninja -C "$dir"
}
mtest() { meson test -C "$@" --num-processes 1 --print-errorlogs; }

step "install dependencies" bash tests/deps.sh
step "build (-Werror)" setup "$OUT"
step "meson test: all suites, labs included" mtest "$OUT"
step "build ASan+UBSan" setup "$OUT-asan" -Db_sanitize=address,undefined -Db_lundef=false \
  -Dlabs=false -Dpython=disabled -Dgo=disabled
asan_tests() {
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    mtest "$OUT-asan" --no-suite lab --no-suite fuzz
}
step "ASan+UBSan: C suites" asan_tests
step "valgrind memcheck: C suites" mtest "$OUT" --suite core --suite file --no-suite lab \
  --wrap="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --child-silent-after-fork=yes -q" \
  --timeout-multiplier 4
if [ -d fuzz ]; then
  fuzz_setup() {
    CC=clang setup "$OUT-fuzz" -Dfuzz=true -Dlabs=false -Dpython=disabled -Dgo=disabled \
      -Dlibvirt=disabled -Dlvm=disabled -Dxen=disabled -Drbd=disabled
  }
  step "build fuzzers (clang)" fuzz_setup
  step "fuzz (bounded)" mtest "$OUT-fuzz" --suite fuzz
fi
echo "ci: $(( $(date +%s) - t_start )) s in all"
[ $fail -eq 0 ] || echo "ci: failed steps: ${failed[*]}"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
