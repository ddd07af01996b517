#!/bin/sh
# Run an example (examples/python/vstor-demo.py, examples/go/vstor-demo) on a
# fresh loop-backed XFS volume, and check what the user would check after
# the demo: the image grew, the snapshot exists, the loop device now runs
# on the mirror copy.  Always tears down.  Usage: run-example.sh CMD...
set -eu
d=$(mktemp -d /var/tmp/vstor-example-XXXXXX)
loop=
cleanup() {
  for f in "$d"/*.img; do
    for dev in $(losetup -j "$f" 2>/dev/null | cut -d: -f1); do losetup -d "$dev" || true; done
  done
  rm -rf "$d"
}
trap cleanup EXIT INT TERM
fail() { echo "run-example: FAIL: $*" >&2; exit 1; }

truncate -s 512M "$d/disk.img"
mkfs.xfs -q "$d/disk.img"
loop=$(losetup -f --show "$d/disk.img")
export VSTOR_STATE_DIR="$d/state"
"$@" "$d/disk.img" "$d"     # both demos grow by +64M by default
size=$(stat -c %s "$d/disk.img")
[ "$size" -eq $((576 << 20)) ] || fail "image is $size bytes, want 576 MiB"
[ -s "$d/snapshot.img" ] || fail "no snapshot"
back=$(cat /sys/block/${loop#/dev/}/loop/backing_file)
[ "$back" = "$d/mirror.img" ] || fail "$loop backs $back, want $d/mirror.img"
echo "run-example: OK"
