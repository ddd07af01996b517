#!/bin/bash
# libvstor demo: the main job, for real, on this machine.
#
# A raw image exposed by a loop device carries a mounted XFS filesystem
# with a writer running.  libvstor then, step by step:
#   1. shows the layers                        (vstor info)
#   2. grows it online by 512 MiB, fs included (vstor extend +512M --resize-fs)
#   3. freeze-and-snapshot, frozen window      (vstor snapshot)
#   4. mirrors it live to another filesystem   (vstor mirror, progress)
#   5. pivots the loop device onto the copy    (vstor pivot), checksums
#
# The kernel cannot re-point a loop device under a mounted filesystem
# (LOOP_CHANGE_FD needs a read-only, unmounted device on Linux 6.x; `vstor
# caps` says so), so step 5 stops the writer and unmounts for the pivot
# instant, exactly as the capability query tells an operator, then mounts
# the same /dev/loopN again, now backed by the copy.
#
# Usage (root, Debian 12): bash examples/demo.sh [BUILD_DIR]
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$TOP/build}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

[ "$(id -u)" = 0 ] || { echo "demo: run as root (loop devices, mounts)" >&2; exit 1; }
say "installing what the build needs (Debian packages) and building"
bash "$TOP/tests/deps.sh" core
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$TOP" -Dlabs=false >/dev/null
ninja -C "$BUILD" >/dev/null
VSTOR="$BUILD/tools/vstor"

W=$(mktemp -d /var/tmp/vstor-demo.XXXXXX)
export VSTOR_STATE_DIR=$W/state
WRITER=
cleanup() {
  [ -n "$WRITER" ] && kill "$WRITER" 2>/dev/null || true
  for m in "$W/vm" "$W/pool-b" "$W/pool-a"; do mountpoint -q "$m" && umount -l "$m"; done
  losetup -l -n -O NAME,BACK-FILE | awk -v w="$W" 'index($2, w) == 1 {print $1}' | xargs -r -n1 losetup -d
  rm -rf "$W"
}
trap cleanup EXIT

say "setting up: two host XFS filesystems (reflink-capable), an image with XFS inside, mounted, a writer running"
mkdir -p "$W/pool-a" "$W/pool-b" "$W/vm"
for p in a b; do
  truncate -s 3G "$W/pool-$p.img"; mkfs.xfs -q "$W/pool-$p.img"
  mount "$(losetup -f --show "$W/pool-$p.img")" "$W/pool-$p"
done
IMG=$W/pool-a/guest.img
truncate -s 1G "$IMG"; mkfs.xfs -q "$IMG"
LOOP=$(losetup -f --show "$IMG")
mount "$LOOP" "$W/vm"
dd if=/dev/urandom of="$W/vm/data.bin" bs=1M count=128 status=none
sync
( while :; do date >> "$W/vm/journal.log"; sleep 0.05; done ) &
WRITER=$!
echo "image $IMG on $LOOP, mounted at $W/vm"

say "1. layers of the volume"
run "$VSTOR" info "$IMG"

say "2. online extend: grow the file, refresh the loop capacity, grow XFS (no dd, no reboot)"
df -h "$W/vm" | tail -1
run "$VSTOR" extend "$IMG" +512M --resize-fs
df -h "$W/vm" | tail -1

say "3. freeze-and-snapshot (FIFREEZE, reflink clone, FITHAW; a guard process thaws if we die)"
run "$VSTOR" snapshot "$IMG" "$W/pool-a/guest-snap.img"
xfs_repair -n -f "$W/pool-a/guest-snap.img" >/dev/null 2>&1 \
  && echo "snapshot filesystem: clean" \
  || echo "snapshot filesystem: log replay pending (normal for a frozen XFS; mount replays it)"

say "4. live mirror to another filesystem, with progress (the writer keeps writing)"
run "$VSTOR" caps "$IMG"
"$VSTOR" mirror "$IMG" "$W/pool-b/guest.img" --speed 400M &
MIRROR=$!
for _ in $(seq 600); do [ -S "$(ls "$VSTOR_STATE_DIR"/jobs/*.sock 2>/dev/null | head -1)" ] && break; sleep 0.1; done
sleep 1

say "5. pivot: quiesce for the instant of the switch, re-point $LOOP onto the copy"
kill "$WRITER"; wait "$WRITER" 2>/dev/null || true; WRITER=
run umount "$W/vm"
SUM_BEFORE=$(sha256sum < "$LOOP" | cut -d' ' -f1)
run "$VSTOR" pivot "$IMG"
wait "$MIRROR"
echo "$LOOP is now backed by: $(cat /sys/block/"$(basename "$LOOP")"/loop/backing_file)"
SUM_AFTER=$(sha256sum < "$LOOP" | cut -d' ' -f1)
echo "device checksum before pivot: $SUM_BEFORE"
echo "device checksum after pivot:  $SUM_AFTER"
[ "$SUM_BEFORE" = "$SUM_AFTER" ] || { echo "demo: CHECKSUM MISMATCH" >&2; exit 1; }
run mount "$LOOP" "$W/vm"
echo "mounted again on the copy: $(wc -l < "$W/vm/journal.log") journal lines, data.bin $(sha256sum < "$W/vm/data.bin" | cut -c1-16)..."
run "$VSTOR" info "$W/pool-b/guest.img"
umount "$W/vm"
say "demo finished: extend, snapshot, mirror and pivot done for real"
