#!/bin/bash
# File backend benchmark: libvstor beside what an operator would run by hand,
# in one run, on this machine.  Usage (root): bash bench/file-bench.sh [BUILD]
#
#  1. extend a loop-backed raw image by +2 GiB and +100 GiB:
#     vstor extend   vs   dd if=/dev/zero oflag=append conv=notrunc + losetup -c
#  2. freeze-and-snapshot of a mounted XFS and btrfs (image on a reflink fs):
#     vstor snapshot (frozen window)   vs   fsfreeze -f; cp --reflink=always; fsfreeze -u
#  3. copy a sparse 4 GiB image holding 1 GiB of data to another filesystem:
#     vstor mirror --complete   vs   cp --sparse=always, qemu-img convert, dd conv=sparse
#
# Host filesystems are sparse files on loop devices under /var/tmp; the big
# one (for +100 GiB) is a 256 GiB sparse XFS.  The dd procedure at +100 GiB
# would write 100 GiB of zeros (more than this disk has free): it is timed at
# +2 and +8 GiB and its +100 GiB figure is extrapolated linearly (marked).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$TOP/build}
VSTOR=$BUILD/tools/vstor
[ -x "$VSTOR" ] || { echo "bench: build first (meson setup build && ninja -C build)" >&2; exit 1; }
command -v qemu-img >/dev/null || apt-get install -y -q qemu-utils >/dev/null
W=$(mktemp -d /var/tmp/vstor-bench.XXXXXX)
export VSTOR_STATE_DIR=$W/state
cleanup() {
  for m in $(mount | awk -v w="$W" 'index($3, w) == 1 {print $3}' | sort -r); do
    fsfreeze -u "$m" 2>/dev/null || true; umount -l "$m"; done
  losetup -l -n -O NAME,BACK-FILE | awk -v w="$W" 'index($2, w) == 1 {print $1}' | xargs -r -n1 losetup -d
  rm -rf "$W"
}
trap cleanup EXIT
ms() { echo "scale=3; ($2 - $1) / 1000000" | bc; }
now() { date +%s%N; }
pool() {  # pool NAME FSTYPE SIZE
  truncate -s "$3" "$W/$1.img"
  if [ "$2" = btrfs ]; then mkfs.btrfs -q -f "$W/$1.img" >/dev/null; else mkfs."$2" -q -f "$W/$1.img"; fi
  mkdir -p "$W/$1"; mount "$(losetup -f --show "$W/$1.img")" "$W/$1"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

pool big xfs 256G
pool xa xfs 12G
pool xb xfs 12G
pool bt btrfs 12G

echo "== 1. extend a loop-backed raw image (ms; median of 3)"
printf '%-10s %12s %14s %24s %10s\n' "growth" "vstor (CLI)" "(library call)" "dd append + losetup -c" "speed-up"
for g in 2 8 100; do
  v=(); vl=(); h=()
  for i in 1 2 3; do
    img=$W/big/e$g-$i.img; truncate -s 1G "$img"; l=$(losetup -f --show "$img")
    t0=$(now); us=$("$VSTOR" --json extend "$img" "+${g}G" | jq -r .elapsed_us); t1=$(now)
    vl+=("$(echo "scale=3; $us / 1000" | bc)")
    [ "$(blockdev --getsize64 "$l")" = $(( (1 + g) << 30 )) ] || { echo "bench: loop not grown" >&2; exit 1; }
    v+=("$(ms "$t0" "$t1")")
    losetup -d "$l"; rm -f "$img"
    if [ "$g" -le 8 ]; then
      img=$W/big/h$g-$i.img; truncate -s 1G "$img"; l=$(losetup -f --show "$img")
      t0=$(now); dd if=/dev/zero of="$img" bs=1M count=$((g * 1024)) oflag=append conv=notrunc status=none
      losetup -c "$l"; t1=$(now)
      h+=("$(ms "$t0" "$t1")")
      losetup -d "$l"; rm -f "$img"
    fi
  done
  vm=$(printf '%s\n' "${v[@]}" | median); vlm=$(printf '%s\n' "${vl[@]}" | median)
  if [ "$g" -le 8 ]; then
    hm=$(printf '%s\n' "${h[@]}" | median); [ "$g" = 8 ] && per_gib=$(echo "scale=3; $hm / 8" | bc)
    hs=$hm
  else
    hm=$(echo "scale=1; $per_gib * $g" | bc); hs="~$hm (extrap.)"
  fi
  printf '%-10s %12s %14s %24s %9sx\n' "+${g} GiB" "$vm" "$vlm" "$hs" "$(echo "scale=0; $hm / $vm" | bc)"
done

echo
echo "== 2. freeze-and-snapshot of a mounted filesystem, writer idle (frozen window, us; median of 7)"
printf '%-22s %16s %30s %8s\n' "filesystem (host fs)" "vstor snapshot" "fsfreeze + cp --reflink + -u" "ratio"
for spec in "xfs xa" "btrfs bt"; do
  set -- $spec; fs=$1; p=$2
  img=$W/$p/vm-$fs.img; truncate -s 1G "$img"
  if [ "$fs" = btrfs ]; then mkfs.btrfs -q -f "$img" >/dev/null; else mkfs.xfs -q -f "$img"; fi
  mkdir -p "$W/m-$fs"; l=$(losetup -f --show "$img"); mount "$l" "$W/m-$fs"
  dd if=/dev/urandom of="$W/m-$fs/data" bs=1M count=256 status=none; sync
  v=(); h=()
  for i in $(seq 7); do
    v+=("$("$VSTOR" --json snapshot "$img" "$W/$p/s-$fs-$i" | jq -r .frozen_us)")
    t0=$(now); fsfreeze -f "$W/m-$fs"; cp --reflink=always "$img" "$W/$p/h-$fs-$i"; fsfreeze -u "$W/m-$fs"; t1=$(now)
    h+=("$(( (t1 - t0) / 1000 ))")
  done
  vm=$(printf '%s\n' "${v[@]}" | median); hm=$(printf '%s\n' "${h[@]}" | median)
  printf '%-22s %16s %30s %7sx\n' "$fs ($p)" "$vm" "$hm" "$(echo "scale=1; $hm / $vm" | bc)"
  echo "   vstor windows: ${v[*]}"
  echo "   hand windows:  ${h[*]}"
  umount "$W/m-$fs"; losetup -d "$l"
done

echo
echo "== 3. copy a sparse 4 GiB image holding 1 GiB of data, XFS -> another XFS (s; median of 3)"
src=$W/xa/sparse.img; truncate -s 4G "$src"
for off in 0 1024 2048 3072; do
  dd if=/dev/urandom of="$src" bs=1M count=256 seek=$off conv=notrunc status=none
done
sync
declare -A T
for tool in vstor cp qemu-img dd; do
  r=()
  for i in 1 2 3; do
    dst=$W/xb/copy-$tool-$i.img; rm -f "$dst"; sync; echo 3 > /proc/sys/vm/drop_caches
    t0=$(now)
    case $tool in
      vstor) "$VSTOR" -q mirror "$src" "$dst" --complete >/dev/null ;;
      cp) cp --sparse=always "$src" "$dst" ;;
      qemu-img) qemu-img convert -f raw -O raw -S 4k "$src" "$dst" ;;
      dd) dd if="$src" of="$dst" bs=1M conv=sparse status=none ;;
    esac
    sync -f "$dst"; t1=$(now)
    cmp -s "$src" "$dst" || { echo "bench: $tool copy differs" >&2; exit 1; }
    r+=("$(ms "$t0" "$t1")"); rm -f "$dst"
  done
  T[$tool]=$(printf '%s\n' "${r[@]}" | median)
done
printf '%-10s %10s %10s %10s %10s\n' "" vstor "cp" "qemu-img" "dd"
printf '%-10s %10s %10s %10s %10s\n' "seconds" "$(echo "scale=2; ${T[vstor]}/1000" | bc)" \
  "$(echo "scale=2; ${T[cp]}/1000" | bc)" "$(echo "scale=2; ${T[qemu-img]}/1000" | bc)" \
  "$(echo "scale=2; ${T[dd]}/1000" | bc)"
echo "bench: done"
