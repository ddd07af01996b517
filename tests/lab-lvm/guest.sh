#!/bin/sh
# LVM lab tests, run inside the lab VM (busybox sh) by run-lab.sh.
# Disks: vda vdb 1.5G (VG vg), vdc vdd 640M (re-partitioning), vde vdf 64M,
# vdg vdh 640M (VG mv, moves).
# Needs: $LVMLAB (the lvm-lab driver), $VSTOR_BACKEND_DIR.
# Prints "=== NAME", the test's log, then "LVMTEST NAME PASS|FAIL" per test,
# and "LVMTEST-END" when every test has run.
export VSTOR_STATE_DIR=/run/vstor
mkdir -p /run/vstor /mnt
B=1048576

die() { echo "CHECK FAILED: $*"; exit 1; }
# ok ARGS...: lvm-lab must succeed; its output is in $out.
ok() {
  rc=0; out=$("$LVMLAB" "$@" 2>&1) || rc=$?
  echo "$ lvm-lab $*"; echo "$out"
  [ $rc -eq 0 ] || die "lvm-lab $* exited $rc"
}
# err CODE ARGS...: lvm-lab must fail with that libvstor code.
err() {
  code=$1; shift
  rc=0; out=$("$LVMLAB" "$@" 2>&1) || rc=$?
  echo "$ lvm-lab $*  (expect $code)"; echo "$out"
  [ $rc -eq 2 ] || die "lvm-lab $* exited $rc, expected 2"
  echo "$out" | grep -q "^ERR $code: " || die "lvm-lab $*: expected ERR $code"
}
lvsize() { lvs --noheadings --units b --nosuffix -o lv_size "$1" | tr -d ' '; }
lvdevs() { lvs --noheadings -o devices "$1" | tr -d ' '; }
vgfree() { vgs --noheadings --units b --nosuffix -o vg_free "$1" | tr -d ' '; }
dfk() { df -k "$1" | awk 'NR==2{print $2}'; }
q() { o=$("$@" 2>&1) || { echo "$o"; die "$*"; }; }

# A writer appending numbered lines and rewriting a file until stopped.
writer_start() {
  n=$(basename "$1"); rm -f "/tmp/stop-$n"
  ( i=0; while [ ! -e "/tmp/stop-$n" ] && [ ! -e /tmp/stop-all ]; do
      i=$((i+1)); echo $i >> "$1/log"
      dd if=/dev/urandom of="$1/churn" bs=64k count=4 conv=notrunc 2>/dev/null
    done ) &
  sleep 1
}
writer_stop() { touch "/tmp/stop-$(basename "$1")"; wait 2>/dev/null; sync; }
log_intact() { awk 'NR != $1 { bad = 1 } END { exit bad || NR == 0 }' "$1/log" || die "$1/log damaged"; }

mkfs_mount() {  # LV FSTYPE MNT
  case $2 in
    ext4) q mkfs.ext4 -q -F "/dev/$1" ;;
    xfs) q mkfs.xfs -q -f "/dev/$1" ;;
  esac
  mkdir -p "$3"; q mount "/dev/$1" "$3"
}

t_open() {
  q lvcreate -qy -L 64M -n o1 vg /dev/vda
  mkfs_mount vg/o1 ext4 /mnt/o1
  for u in lvm:vg/o1 /dev/vg/o1; do
    ok info "$u"
    echo "$out" | grep -q "^OK backend=lvm id=lvm:vg/o1 size=$((64*B))$" || die "$u: backend/id/size"
    echo "$out" | grep -q "role=storage type=lvm path=vg/o1 size=$((64*B))" || die "$u: LV layer"
    echo "$out" | grep -q "  segtype=linear" || die "$u: segtype"
    echo "$out" | grep -q "role=exposure type=dm path=/dev/mapper/vg-o1 size=$((64*B))" || die "$u: dm layer"
    echo "$out" | grep -q "  table=0 131072 linear 254:0 " || die "$u: dm table"
    echo "$out" | grep -q "  deps=254:0$" || die "$u: dm deps"
    echo "$out" | grep -q "role=filesystem type=ext4 path=/mnt/o1" || die "$u: fs layer"
    echo "$out" | grep -q "  mountpoint=/mnt/o1" || die "$u: mount"
  done
  q lvcreate -qy -L 8M -n my-lv vg
  ok info lvm:vg/my-lv
  echo "$out" | grep -q "role=exposure type=dm path=/dev/mapper/vg-my--lv " || die "dm name escaping"
  echo "$out" | grep -q "role=filesystem" && die "no fs expected on my-lv"
  # thin LV: pool shown
  q lvcreate -qy --type thin-pool -L 32M -n opool vg
  q lvcreate -qy -V 64M --thin -n othin vg/opool
  ok info lvm:vg/othin
  echo "$out" | grep -q "  thin_pool=opool" || die "thin pool property"
  echo "$out" | grep -q "  segtype=thin" || die "thin segtype"
  # an inactive LV: LV layer only
  q lvchange -an vg/my-lv
  ok info lvm:vg/my-lv
  echo "$out" | grep -q "  active=no" || die "inactive"
  echo "$out" | grep -q "role=exposure" && die "inactive LV has no dm layer"
  true
}

# The third name form (kept apart: it is parsed by the core's URI parser).
t_open_mapper() {
  ok info /dev/mapper/vg-o1
  echo "$out" | grep -q "^OK backend=lvm id=lvm:vg/o1 size=$((64*B))$" || die "backend/id/size"
  echo "$out" | grep -q "role=filesystem type=ext4 path=/mnt/o1" || die "fs layer"
  ok info /dev/mapper/vg-my--lv
  echo "$out" | grep -q "id=lvm:vg/my-lv " || die "dashes in dm name"
  err NOENT info /dev/mapper/vg-nope
}

extend_online() {  # FSTYPE SIZE_M
  lv=e$1
  q lvcreate -qy -L "$2M" -n $lv vg /dev/vda
  mkfs_mount vg/$lv $1 /mnt/$lv
  writer_start /mnt/$lv
  before=$(dfk /mnt/$lv)
  ok extend lvm:vg/$lv +64M fs
  echo "$out" | grep -q "step filesystem grow \[done\]" || die "fs grow step"
  new=$((($2+64)*B))
  [ "$(blockdev --getsize64 /dev/vg/$lv)" = $new ] || die "blockdev size $(blockdev --getsize64 /dev/vg/$lv) != $new"
  [ "$(lvsize vg/$lv)" = $new ] || die "lvs size"
  after=$(dfk /mnt/$lv)
  echo "df: $before -> $after KiB"
  [ "$after" -gt $((before + 50000)) ] || die "filesystem did not grow online ($before -> $after)"
  writer_stop /mnt/$lv
  log_intact /mnt/$lv
  ok extend lvm:vg/$lv $((($2+64)))M fs
  echo "$out" | grep -q "skipped" || die "same size must change nothing"
  err INVAL extend lvm:vg/$lv 32M
}
t_extend_ext4() { extend_online ext4 128; }
t_extend_xfs() { extend_online xfs 320; }

t_extend_nospc() {
  q lvcreate -qy -L 32M -n ns vg
  mkfs_mount vg/ns ext4 /mnt/ns
  free=$(vgfree vg); size=$(lvsize vg/ns); df0=$(dfk /mnt/ns)
  err NOSPC extend lvm:vg/ns $((size + free + 8*B)) fs
  echo "$out" | grep -q "has $free bytes free" || die "message should give the free space"
  [ "$(lvsize vg/ns)" = "$size" ] || die "LV changed"
  [ "$(vgfree vg)" = "$free" ] || die "VG changed"
  [ "$(blockdev --getsize64 /dev/vg/ns)" = "$size" ] || die "device changed"
  [ "$(dfk /mnt/ns)" = "$df0" ] || die "fs changed"
  # the dry run of a possible extend plans it and changes nothing
  ok extend lvm:vg/ns +8M fs dry
  echo "$out" | grep -q "step lvm lvextend \[planned\]" || die "plan"
  [ "$(lvsize vg/ns)" = "$size" ] || die "dry run changed the LV"
}

t_extend_origin() {
  q lvcreate -qy -L 32M -n og vg
  q lvcreate -qy -s -L 8M -n ogsnap vg/og
  size=$(lvsize vg/og)
  err STATE extend lvm:vg/og +8M
  echo "$out" | grep -q "origin of classic snapshot(s) ogsnap" || die "reason"
  [ "$(lvsize vg/og)" = "$size" ] || die "origin changed"
}

t_thin_pool_full() {
  q lvcreate -qy --type thin-pool -L 32M -n fpool vg
  q lvchange -q --errorwhenfull y vg/fpool
  q lvcreate -qy -V 64M --thin -n fthin vg/fpool
  dd if=/dev/urandom of=/dev/vg/fthin bs=1M count=48 conv=fsync 2>/dev/null || true
  pct=$(lvs --noheadings -o data_percent vg/fpool | tr -d ' ')
  echo "pool data: $pct%"
  [ "$pct" = "100.00" ] || die "pool not full"
  size=$(lvsize vg/fthin)
  err NOSPC extend lvm:vg/fthin +8M
  echo "$out" | grep -q "thin pool vg/fpool is full" || die "reason"
  [ "$(lvsize vg/fthin)" = "$size" ] || die "LV changed"
  err NOSPC snapshot lvm:vg/fthin fsnap
  lvs vg/fsnap >/dev/null 2>&1 && die "snapshot made"
  true
}

snap_check() {  # LV FSTYPE SNAPNAME [SIZE]
  mkdir -p /mnt/$1
  writer_start /mnt/$1
  ok snapshot lvm:vg/$1 $3 $4
  writer_stop /mnt/$1
  echo "$out" | grep -q "consistency=2 " || die "not filesystem-consistent"
  echo "$out" | grep -q "step filesystem freeze \[done\] frozen" || die "freeze step"
  echo "FROZEN $1 $(echo "$out" | sed -n 's/.*frozen_us=\([0-9]*\).*/\1/p')"
  case $2 in
    ext4) e2fsck -fn /dev/vg/$3 || die "e2fsck -fn of the snapshot" ;;
    # XFS leaves its log dirty on freeze (unlinked inodes are processed by
    # log recovery), so a frozen snapshot is checked after replaying it.
    xfs) mkdir -p /mnt/s; q mount -o nouuid /dev/vg/$3 /mnt/s; q umount /mnt/s
         xfs_repair -n /dev/vg/$3 || die "xfs_repair -n of the snapshot" ;;
  esac
  log_intact /mnt/$1
}

t_snapshot_thin() {
  q lvcreate -qy --type thin-pool -L 400M -n pool vg
  q lvcreate -qy -V 400M --thin -n th4 vg/pool
  q lvcreate -qy -V 400M --thin -n thx vg/pool
  mkfs_mount vg/th4 ext4 /mnt/th4
  mkfs_mount vg/thx xfs /mnt/thx
  snap_check th4 ext4 th4snap
  echo "$out" | grep -q "method=lvm-thin-snapshot" || die method
  snap_check thx xfs thxsnap
  [ "$(lvs --noheadings -o pool_lv vg/thxsnap | tr -d ' ')" = pool ] || die "not a thin snapshot"
  err EXIST snapshot lvm:vg/th4 th4snap
  err INVAL snapshot lvm:vg/th4 lvm:other/s
}

t_snapshot_cow() {
  q lvcreate -qy -L 64M -n c4 vg
  q lvcreate -qy -L 320M -n cx vg
  mkfs_mount vg/c4 ext4 /mnt/c4
  mkfs_mount vg/cx xfs /mnt/cx
  snap_check c4 ext4 c4snap 32M
  echo "$out" | grep -q "method=lvm-cow-snapshot" || die method
  [ "$(lvsize vg/c4snap)" = $((32*B)) ] || die "CoW size"
  snap_check cx xfs cxsnap
  [ "$(lvsize vg/cxsnap)" = $((32*B)) ] || die "default CoW size (10%)"
}

t_busy() {
  q lvcreate -qy -L 16M -n bz vg
  "$LVMLAB" hold lvm:vg/bz 60 > /tmp/hold.out 2>&1 &
  H=$!
  for i in $(seq 100); do grep -q "OK holding" /tmp/hold.out && break; sleep 0.1; done
  err BUSY extend lvm:vg/bz +4M
  kill $H; wait $H 2>/dev/null || true
  [ "$(lvsize vg/bz)" = $((16*B)) ] || die "changed"
  # opened by someone (a VM) with no host filesystem: not quiescable
  sleep 60 < /dev/vg/bz &
  S=$!
  err STATE snapshot lvm:vg/bz bzsnap 8M
  echo "$out" | grep -q "CRASH_CONSISTENT" || die "reason"
  ok snapshot lvm:vg/bz bzsnap 8M crash
  echo "$out" | grep -q "consistency=3 " || die "crash-consistent"
  kill $S; wait $S 2>/dev/null || true
}

t_missing() {
  err NOENT info lvm:nope/x
  echo "$out" | grep -q 'nope' || die "names the VG"
  err NOENT info lvm:vg/nope
  err NOENT info /dev/vg/nope
  err INVAL info lvm:vg
  err NOENT extend lvm:vg/nope +4M
}

t_move_outside() {
  q lvcreate -qy -L 16M -n mo mv /dev/vdg
  err NOTSUP move lvm:mv/mo /dev/vde pivot
  echo "$out" | grep -q "not a physical volume" || die "reason (not a PV)"
  q pvcreate -qy /dev/vdf; q vgcreate -q other /dev/vdf
  err NOTSUP move lvm:mv/mo /dev/vdf pivot
  echo "$out" | grep -q "volume group other" || die "reason (other VG)"
  err NOTSUP move lvm:mv/mo lvm:vg/o1 pivot
  err EXIST move lvm:mv/mo /dev/vdg pivot
  err NOENT move lvm:mv/mo /dev/nonexistent pivot
  [ "$(lvdevs mv/mo)" = "/dev/vdg(0)" ] || die moved
  lvs -a mv | grep -q pvmove && die "pvmove left"
  true
}

data_lv() {  # VG LV SIZE_M PV
  q lvcreate -qy -L "$3M" -n $2 $1 $4
  mkfs_mount $1/$2 ext4 /mnt/$2
  for f in a b c; do dd if=/dev/urandom of=/mnt/$2/$f bs=1M count=24 2>/dev/null; done
  sync
  (cd /mnt/$2 && sha256sum a b c) > /tmp/$2.sums
}
sums_same() {
  echo 3 > /proc/sys/vm/drop_caches
  (cd /mnt/$1 && sha256sum -c /tmp/$1.sums) || die "checksums differ"
}

t_move_cancel() {
  data_lv mv mc 256 /dev/vdg
  ok move lvm:mv/mc /dev/vdh cancel
  echo "$out" | grep -q "^OK state=CANCELLED" || die "state"
  echo "$(lvdevs mv/mc)" | grep -q '^/dev/vdg(' || die "not on the source after cancel: $(lvdevs mv/mc)"
  echo "$(lvdevs mv/mc)" | grep -q 'vdh' && die "partly on the dest"
  lvs -a mv | grep -q pvmove && die "pvmove left"
  sums_same mc
}

t_move_recover() {
  data_lv mv mr 256 /dev/vdg
  rc=0; "$LVMLAB" move lvm:mv/mr /dev/vdh crash || rc=$?
  echo "lvm-lab move ... crash: rc=$rc"
  [ $rc -eq 137 ] || die "expected the driver to be killed"
  lvs -a mv | grep -q pvmove || die "expected an orphaned pvmove"
  ok recover
  echo "$out" | grep -q "abort orphaned pvmove \[done\]" || die "recover did not abort"
  lvs -a mv | grep -q pvmove && die "pvmove left"
  echo "$(lvdevs mv/mr)" | grep -q '^/dev/vdg(' || die "not back on the source"
  sums_same mr
  # crash between READY and the pivot request: recover aborts too
  rc=0; "$LVMLAB" move lvm:mv/mr /dev/vdh ready-then-crash || rc=$?
  [ $rc -eq 137 ] || die "expected the driver to be killed (rc=$rc)"
  ok recover
  echo "$(lvdevs mv/mr)" | grep -q '^/dev/vdg(' || die "not back on the source (2)"
  # crash inside the pivot: recover finishes the move
  rc=0; VSTOR_FAULT=lvm-mirror-before-pivot "$LVMLAB" move lvm:mv/mr /dev/vdh pivot || rc=$?
  [ $rc -eq 137 ] || die "expected the fault to kill the driver (rc=$rc)"
  ok recover
  echo "$out" | grep -q "finish interrupted pivot \[done\]" || die "recover did not finish"
  echo "$(lvdevs mv/mr)" | grep -q '^/dev/vdh(' || die "not on the dest"
  sums_same mr
}

t_snapshot_recover() {
  q lvcreate -qy -L 32M -n sr vg
  mkfs_mount vg/sr ext4 /mnt/sr
  rc=0; VSTOR_FAULT=lvm-snapshot-after-lvcreate "$LVMLAB" snapshot lvm:vg/sr srsnap 8M || rc=$?
  [ $rc -eq 137 ] || die "expected the fault to kill the driver (rc=$rc)"
  lvs vg/srsnap >/dev/null 2>&1 || die "expected a half-made snapshot"
  ok recover
  echo "$out" | grep -q "remove half-made snapshot \[done\]" || die "not removed"
  lvs vg/srsnap >/dev/null 2>&1 && die "snapshot left"
  timeout 10 touch /mnt/sr/after || die "filesystem still frozen"
  ok recover
  true
}

# The re-partitioning procedure: a VG on one PV, a mounted filesystem with a
# writer; add a PV; move online; remove the old PV; data identical.
t_repartition() {
  q pvcreate -qy /dev/vdc
  q vgcreate -q rp /dev/vdc
  data_lv rp data 400 /dev/vdc
  writer_start /mnt/data
  q pvcreate -qy /dev/vdd
  q vgextend -q rp /dev/vdd
  ok move lvm:rp/data /dev/vdd pivot
  echo "$out" | grep -q "^READY state=READY" || die "no READY"
  echo "$out" | grep -q "^OK state=PIVOTED" || die "not pivoted"
  echo "$out" | grep "^READY" | sed 's/^/MOVE /'
  q vgreduce -q rp /dev/vdc
  q pvremove -qy /dev/vdc
  writer_stop /mnt/data
  [ "$(lvdevs rp/data)" = "/dev/vdd(0)" ] || die "not on vdd: $(lvdevs rp/data)"
  log_intact /mnt/data
  sums_same data
  q umount /mnt/data
  e2fsck -fn /dev/rp/data || die "fsck after the move"
  q mount /dev/rp/data /mnt/data
  sums_same data
}

run() {
  T=$1
  echo "=== $T"
  ( set -e; "t_$(echo "$T" | tr - _)" ) > "/tmp/$T.log" 2>&1
  rc=$?
  touch /tmp/stop-all; sleep 0.5; rm -f /tmp/stop-all
  sed 's/^/  | /' "/tmp/$T.log"
  if [ $rc -eq 0 ]; then echo "LVMTEST $T PASS"; else echo "LVMTEST $T FAIL"; fi
}

q pvcreate -qy /dev/vda /dev/vdb /dev/vdg /dev/vdh
q vgcreate -q vg /dev/vda /dev/vdb
q vgcreate -q mv /dev/vdg /dev/vdh
for t in ${LVM_TESTS:-open open-mapper extend-ext4 extend-xfs extend-nospc extend-origin thin-pool-full \
         snapshot-thin snapshot-cow busy missing move-outside move-cancel move-recover \
         snapshot-recover repartition}; do
  run "$t"
done
echo "LVMTEST-END"
