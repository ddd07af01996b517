#!/bin/bash
# LVM backend figures, measured inside the TCG lab VM (tests/lab/):
# extend latency (library vs lvextend [+resize2fs]), snapshot frozen window
# (thin vs classic CoW, writer running), move throughput (library vs pvmove).
# Usage: bench/lvm-bench.sh [BUILD_DIR]   (default ./build; BENCH_N=5)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$HERE/../build}" && pwd)
LVMLAB=$B/tests/lab-lvm/lvm-lab MODULE=$B/lib/backends/lvm/vstor-lvm.so
for f in "$LVMLAB" "$MODULE"; do [ -x "$f" ] || [ -e "$f" ] || { echo "missing $f: build first" >&2; exit 1; }; done
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cat > "$W/t.sh" <<EOT
#!/bin/sh
export LVMLAB=$LVMLAB VSTOR_BACKEND_DIR=$B/lib/backends BENCH_N=${BENCH_N:-5}
. $HERE/lvm-bench-guest.sh
EOT
EXTRA_FILES="$LVMLAB $MODULE $HERE/lvm-bench-guest.sh" TMO=600 \
  timeout 630 bash "$HERE/../tests/lab/run-qemu.sh" "$W/t.sh" 2G 2G 1G 2>&1 | tr -d '\r' > "$W/log" || true
grep -a '^BENCH' "$W/log" || { tail -40 "$W/log"; exit 1; }
grep -q '^BENCH-END' "$W/log" && ! grep -q '^BENCH-FAIL' "$W/log"
