#!/bin/sh
# Runs inside the lab VM (see lvm-bench.sh).  Prints "BENCH name value unit".
# Disks: vda vdb 2G (VG b), vdc 1G (move target).  $LVMLAB, $VSTOR_BACKEND_DIR set by the wrapper.
export VSTOR_STATE_DIR=/run/vstor
N=${BENCH_N:-5}
q() { "$@" >/dev/null 2>&1 || { echo "BENCH-FAIL $*"; exit 1; }; }
now() { cut -d' ' -f1 /proc/uptime | tr -d .; }   # centiseconds
ms() { echo $(( ($2 - $1) * 10 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
lvsize() { lvs --noheadings --units b --nosuffix -o lv_size "$1" | tr -d ' '; }
# T CMD...: run CMD, print its wall time in ms (fails the bench if CMD fails)
T() { o=$("$LVMLAB" time "$@" 2>&1) || { echo "BENCH-FAIL $*"; echo "$o" >&2; exit 1; }
      echo "$o" | sed -n 's/^TIME_MS //p'; }

q pvcreate -qy /dev/vda /dev/vdb
q vgcreate -q b /dev/vda /dev/vdb

# --- extend latency: library vs lvextend (+resize2fs), ext4 mounted ---
q lvcreate -qy -L 128M -n e1 b /dev/vda; q mkfs.ext4 -q /dev/b/e1; mkdir -p /mnt/e1; q mount /dev/b/e1 /mnt/e1
q lvcreate -qy -L 128M -n e2 b /dev/vda; q mkfs.ext4 -q /dev/b/e2; mkdir -p /mnt/e2; q mount /dev/b/e2 /mnt/e2
for i in $(seq $N); do T "$LVMLAB" extend lvm:b/e1 +16M fs; done | median | sed 's/^/BENCH extend_fs_libvstor_ms /'
for i in $(seq $N); do T sh -c 'lvextend -q -L +16M b/e2 && resize2fs /dev/b/e2'; done | median | sed 's/^/BENCH extend_fs_tools_ms /'
for i in $(seq $N); do T "$LVMLAB" extend lvm:b/e1 +16M; done | median | sed 's/^/BENCH extend_libvstor_ms /'
for i in $(seq $N); do T lvextend -q -L +16M b/e2; done | median | sed 's/^/BENCH extend_lvextend_ms /'

# --- frozen window: thin vs classic, ext4 mounted, writer running ---
q lvcreate -qy --type thin-pool -L 512M -n pool b
q lvcreate -qy -V 256M --thin -n th b/pool; q mkfs.ext4 -q /dev/b/th; mkdir -p /mnt/th; q mount /dev/b/th /mnt/th
q lvcreate -qy -L 256M -n co b; q mkfs.ext4 -q /dev/b/co; mkdir -p /mnt/co; q mount /dev/b/co /mnt/co
for kind in th co; do
  ( while [ ! -e /tmp/stop ]; do dd if=/dev/urandom of=/mnt/$kind/w bs=64k count=16 conv=notrunc 2>/dev/null; done ) &
  rm -f /tmp/fz /tmp/tot
  for i in $(seq $N); do
    o=$("$LVMLAB" time "$LVMLAB" snapshot lvm:b/$kind ${kind}s$i 32M) || { echo "BENCH-FAIL snapshot $kind"; echo "$o"; }
    echo "$o" | sed -n 's/.*frozen_us=\([0-9]*\).*/\1/p' >> /tmp/fz
    echo "$o" | sed -n 's/^TIME_MS //p' >> /tmp/tot
    q lvremove -qy b/${kind}s$i
  done
  touch /tmp/stop; wait; rm -f /tmp/stop
  echo "BENCH frozen_${kind}_us $(median < /tmp/fz)"
  echo "BENCH frozen_${kind}_max_us $(sort -n /tmp/fz | tail -1)"
  echo "BENCH snapshot_${kind}_call_ms $(median < /tmp/tot)"
done

# --- move throughput: library (pvmove under it) vs pvmove itself ---
q pvcreate -qy /dev/vdc; q vgextend -q b /dev/vdc
q lvcreate -qy -L 768M -n mv b /dev/vdb
dd if=/dev/urandom of=/dev/b/mv bs=1M count=768 2>/dev/null; sync
for i in 1 2; do
  o=$("$LVMLAB" time "$LVMLAB" move lvm:b/mv /dev/vdc pivot)
  echo "$o" | grep -q '^OK state=PIVOTED' || { echo "BENCH-FAIL move"; echo "$o"; }
  ready=$(echo "$o" | sed -n 's/^READY.* ms=\([0-9]*\).*/\1/p')
  echo "BENCH move_libvstor_ms $(echo "$o" | sed -n 's/^TIME_MS //p') ready_ms=$ready"
  echo "BENCH move_pvmove_ms $(T pvmove -i 1 /dev/vdc /dev/vdb)"
done
echo "BENCH move_bytes $((768*1048576))"
echo BENCH-END
