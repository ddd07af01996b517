#!/bin/sh
# Runs inside the lab VM (see lvm-bench.sh).  Prints "BENCH name value unit".
# Disks: vda vdb 2G (VG b).  $LVMLAB, $VSTOR_BACKEND_DIR set by the wrapper.
export VSTOR_STATE_DIR=/run/vstor
N=${BENCH_N:-5}
q() { "$@" >/dev/null 2>&1 || { echo "BENCH-FAIL $*"; exit 1; }; }
now() { cut -d' ' -f1 /proc/uptime | tr -d .; }   # centiseconds
ms() { echo $(( ($2 - $1) * 10 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
lvsize() { lvs --noheadings --units b --nosuffix -o lv_size "$1" | tr -d ' '; }
us_now() { date +%s%N 2>/dev/null | cut -c1-16; }

q pvcreate -qy /dev/vda /dev/vdb
q vgcreate -q b /dev/vda /dev/vdb

# --- extend latency: library vs lvextend (+resize2fs), ext4 mounted ---
q lvcreate -qy -L 128M -n e1 b /dev/vda; q mkfs.ext4 -q /dev/b/e1; mkdir -p /mnt/e1; q mount /dev/b/e1 /mnt/e1
q lvcreate -qy -L 128M -n e2 b /dev/vda; q mkfs.ext4 -q /dev/b/e2; mkdir -p /mnt/e2; q mount /dev/b/e2 /mnt/e2
for i in $(seq $N); do
  t0=$(us_now); q "$LVMLAB" extend lvm:b/e1 +16M fs; t1=$(us_now); echo $(( (t1 - t0) / 1000 ))
done | median | sed 's/^/BENCH extend_fs_libvstor_ms /'
for i in $(seq $N); do
  t0=$(us_now); q lvextend -q -L +16M b/e2; q resize2fs /dev/b/e2; t1=$(us_now); echo $(( (t1 - t0) / 1000 ))
done | median | sed 's/^/BENCH extend_fs_tools_ms /'
for i in $(seq $N); do
  t0=$(us_now); q "$LVMLAB" extend lvm:b/e1 +16M; t1=$(us_now); echo $(( (t1 - t0) / 1000 ))
done | median | sed 's/^/BENCH extend_libvstor_ms /'
for i in $(seq $N); do
  t0=$(us_now); q lvextend -q -L +16M b/e2; t1=$(us_now); echo $(( (t1 - t0) / 1000 ))
done | median | sed 's/^/BENCH extend_lvextend_ms /'

# --- frozen window: thin vs classic, ext4 mounted, writer running ---
q lvcreate -qy --type thin-pool -L 512M -n pool b
q lvcreate -qy -V 256M --thin -n th b/pool; q mkfs.ext4 -q /dev/b/th; mkdir -p /mnt/th; q mount /dev/b/th /mnt/th
q lvcreate -qy -L 256M -n co b; q mkfs.ext4 -q /dev/b/co; mkdir -p /mnt/co; q mount /dev/b/co /mnt/co
for kind in th co; do
  ( while [ ! -e /tmp/stop ]; do dd if=/dev/urandom of=/mnt/$kind/w bs=64k count=16 conv=notrunc 2>/dev/null; done ) &
  rm -f /tmp/fz /tmp/tot
  for i in $(seq $N); do
    t0=$(us_now)
    out=$("$LVMLAB" snapshot lvm:b/$kind ${kind}s$i 32M) || { echo "BENCH-FAIL snapshot $kind"; echo "$out"; }
    t1=$(us_now)
    echo "$out" | sed -n 's/.*frozen_us=\([0-9]*\).*/\1/p' >> /tmp/fz
    echo $(( (t1 - t0) / 1000 )) >> /tmp/tot
    q lvremove -qy b/${kind}s$i
  done
  touch /tmp/stop; wait; rm -f /tmp/stop
  echo "BENCH frozen_${kind}_us $(median < /tmp/fz)"
  echo "BENCH frozen_${kind}_max_us $(sort -n /tmp/fz | tail -1)"
  echo "BENCH snapshot_${kind}_call_ms $(median < /tmp/tot)"
done

# --- move throughput: library (pvmove under it) vs pvmove itself ---
q lvcreate -qy -L 768M -n mv b /dev/vda
dd if=/dev/urandom of=/dev/b/mv bs=1M count=768 2>/dev/null; sync
for i in 1 2; do
  t0=$(us_now); out=$("$LVMLAB" move lvm:b/mv /dev/vdb pivot); t1=$(us_now)
  echo "$out" | grep -q '^OK state=PIVOTED' || { echo "BENCH-FAIL move"; echo "$out"; }
  ready=$(echo "$out" | sed -n 's/^READY.* ms=\([0-9]*\).*/\1/p')
  echo "BENCH move_libvstor_ms $(( (t1 - t0) / 1000 )) ready_ms=$ready"
  t0=$(us_now); q pvmove -i 1 /dev/vdb /dev/vda; t1=$(us_now)
  echo "BENCH move_pvmove_ms $(( (t1 - t0) / 1000 ))"
done
echo "BENCH move_bytes $((768*1048576))"
echo BENCH-END
