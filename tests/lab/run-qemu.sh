#!/bin/bash
# Usage: [EXTRA_FILES="host files"] [TMO=600] run-qemu.sh guest-script.sh [disk-size...]
# Boots the lab guest (build-initramfs.sh) under QEMU TCG with guest-script
# as /test.sh, EXTRA_FILES (binaries get their shared libraries too) at the
# same paths, and one raw virtio disk per size argument (vda, vdb, ...;
# default: 1G 1G).  Serial console -> stdout.  Exit status: 0 only if the
# guest printed "LAB: test.sh rc=0"; a failed boot is a failure.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
SCRIPT=$1; shift
[ $# -gt 0 ] || set -- 1G 1G
bash "$HERE/build-initramfs.sh"
W=$(mktemp -d "$LAB/run.XXXXXX"); trap 'rm -rf "$W"' EXIT
mkdir -p "$W/r"; cp "$SCRIPT" "$W/r/test.sh"; chmod +x "$W/r/test.sh"
for b in ${EXTRA_FILES:-}; do
  for f in "$b" $(ldd "$b" 2>/dev/null | awk '/=>/{print $3} /^\s*\/lib/{print $1}'); do
    [ -e "$f" ] || continue; mkdir -p "$W/r$(dirname "$f")"; cp -Ln "$f" "$W/r$f"
  done
done
(cd "$W/r" && find . | cpio -o -H newc --quiet | gzip -1) > "$W/test.cpio.gz"
cat "$LAB/out/base.cpio.gz" "$W/test.cpio.gz" > "$W/initrd.gz"
drives=(); i=0
for sz in "$@"; do
  qemu-img create -q -f raw "$W/d$i.raw" "$sz"
  drives+=(-drive "file=$W/d$i.raw,format=raw,if=virtio,cache=unsafe"); i=$((i+1))
done
t0=$(date +%s%N)
set +e
timeout "${TMO:-600}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 1024 -smp 2 \
  -kernel "$LAB/out/vmlinuz" -initrd "$W/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 lab=test" \
  -display none -serial stdio -monitor none -no-reboot -nodefaults "${drives[@]}" | tee "$W/serial.log"
rc=${PIPESTATUS[0]}
set -e
echo "HOST: qemu rc=$rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms"
grep -q '^LAB: test.sh rc=0' "$W/serial.log" || { echo "HOST: guest test did not pass"; exit 1; }
