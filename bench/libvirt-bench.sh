#!/bin/bash
# Benchmark of the libvirt backend against plain virsh on the lab guest.
#
# Usage: bench/libvirt-bench.sh [BUILD_DIR] [ROUNDS]      (default: build 3)
# Needs a built tree (meson setup BUILD_DIR && ninja -C BUILD_DIR) and the
# lab dependencies (tests/deps/libvirt.txt).  Boots the lab guest
# (tests/lab-libvirt/run-lab.sh), fills 160 MiB of its ext4 disk, then per
# round measures
#   snapshot:  `vstor snapshot` frozen window (reported by libvstor) and wall
#              time, vs `virsh domfsfreeze; snapshot-create-as --disk-only
#              --no-metadata --atomic; domfsthaw` (freeze-to-thaw wall time)
#   mirror:    `vstor mirror --pivot` time to READY and pivot time, vs
#              `virsh blockcopy --wait --verbose` + `blockjob --pivot`
#   guest I/O pause across the mirror+pivot: longest gap between timestamps
#              (/proc/uptime, 10 ms resolution) a guest loop writes and syncs
# Prints one line per figure and a summary (median).
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$HERE/build}" && pwd) || exit 1
ROUNDS=${2:-3}
[ -x "$BUILD/tools/vstor" ] && [ -e "$BUILD/lib/backends/libvirt/vstor-libvirt.so" ] || {
  echo "libvirt-bench: build $BUILD first (tools/vstor, vstor-libvirt.so)" >&2; exit 1; }
export VSTOR_BACKEND_DIR=$BUILD/lib/backends BUILD ROUNDS
exec "$HERE/tests/lab-libvirt/run-lab.sh" "$HERE/bench/libvirt-bench-run.sh"
