#!/bin/bash
# Boot Xen 4.17 under QEMU TCG with a Debian dom0 whose root is the host's /
# (9p read-only + tmpfs overlay), start a PV domU and run PROGRAM [ARGS] in
# dom0 against it (dom0-scenario.sh); print the results as TAP for meson.
#
# Usage: run-lab.sh [PROGRAM [ARGS...]]   (PROGRAM: absolute host path)
# Environment: VSTOR_LAB_DIR (cache, default /var/tmp/vstor-lab), TMO
# (QEMU bound, default 600 s), VSTOR_BACKEND_DIR (passed to dom0), LAB_VSTOR
# (the vstor CLI: test-cli.sh runs it in dom0 after PROGRAM).
# Exit status 0 only if every check passed; a failed boot is a failure.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
XL=$LAB/xen
echo "TAP version 13"
if ! out=$(bash "$HERE/build.sh" 2>&1); then
  echo "not ok 1 - lab-xen build (build.sh)"; echo "$out" | sed 's/^/# /'; echo "1..1"; exit 1
fi
KVER=$(cat "$XL/kver")
# one run directory (shared with dom0 read-write as /share); keep the last 3
RUN=$(mktemp -d "$XL/runs/$(date +%Y%m%d-%H%M%S).XXXX")
ls -dt "$XL"/runs/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
cp "$HERE/dom0-init.sh" "$RUN/stage2.sh"; cp "$HERE/dom0-scenario.sh" "$RUN/scenario.sh"
cp "$HERE/test-cli.sh" "$RUN/cli.sh"
cp "$XL/vmlinuz" "$XL/domU.cpio.gz" "$RUN/"
: > "$RUN/results"; : > "$RUN/figures"
{
  printf 'LAB_TEST=%q\n' "${1:-}"
  [ -n "${VSTOR_BACKEND_DIR:-}" ] && printf 'VSTOR_BACKEND_DIR=%q\n' "$VSTOR_BACKEND_DIR"
  [ -n "${LAB_VSTOR:-}" ] && printf 'LAB_VSTOR=%q\n' "$LAB_VSTOR"
  printf 'VSTOR_STATE_DIR=/tmp/vstor-state\n'
} > "$RUN/env"
[ $# -gt 0 ] && shift
printf '%q ' "$@" > "$RUN/args"
XENARGS="console=com1 com1=115200,8n1 loglvl=warning guest_loglvl=warning dom0_mem=1024M,max:1024M dom0_max_vcpus=2 noreboot"
DOM0ARGS="console=hvc0 earlyprintk=xen rdinit=/init quiet"
t0=$(date +%s%N)
# host-side clock for boot-to-dom0 (the serial log has only guest clocks)
( while sleep 0.5; do
    if grep -aq 'dom0 ready' "$RUN/serial.log" 2>/dev/null; then
      echo "boot_to_dom0_s $(( ($(date +%s%N) - t0) / 1000000 ))e-3" >> "$RUN/figures"; break
    fi
  done ) &
watch=$!
timeout "${TMO:-600}" qemu-system-x86_64 -accel tcg,thread=multi -cpu qemu64 -smp 2 -m 2048 \
  -nographic -monitor none -serial stdio -no-reboot -nodefaults \
  -kernel "$XL/xen" -append "$XENARGS" \
  -initrd "$XL/vmlinuz $DOM0ARGS,$XL/dom0-stage1.cpio.gz" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$RUN,mount_tag=share,security_model=none,multidevs=remap" \
  </dev/null > "$RUN/serial.log" 2>&1
qrc=$?
kill $watch 2>/dev/null; wait $watch 2>/dev/null
wall=$(( ($(date +%s%N) - t0) / 1000000 ))
n=0 fail=0
tap() { n=$((n+1)); echo "$1 $n - $2"; [ "$1" = ok ] || fail=1; }
up=$(grep -m1 'LABXEN: \[+[0-9.]*s\] dom0 ready' "$RUN/serial.log" | sed 's/.*\[+\([0-9.]*\)s\].*/\1/')
if [ -n "$up" ]; then tap ok "boot: Xen + dom0 toolstack up (dom0 uptime ${up} s)"
else tap "not ok" "boot: dom0 never became ready (qemu rc=$qrc, log $RUN/serial.log)"
  grep -aE 'LABXEN|STAGE1|FAILED|Panic|panic' "$RUN/serial.log" | tail -20 | sed 's/^/# /'
fi
while IFS= read -r l; do
  case $l in
    "ok "*|"ok") tap ok "${l#ok - }" ;;
    "not ok"*) tap "not ok" "${l#not ok - }" ;;
  esac
done < "$RUN/results"
if [ -n "$up" ] && ! grep -qx END "$RUN/results"; then
  tap "not ok" "scenario did not finish (qemu rc=$qrc after $wall ms; log $RUN/serial.log)"
  grep -a 'LABXEN' "$RUN/serial.log" | tail -15 | sed 's/^/# /'
fi
echo "# qemu wall ${wall} ms, rc $qrc; run dir $RUN"
sed 's/^/# figure /' "$RUN/figures"
echo "1..$n"
exit $fail
