#!/bin/bash
# RBD backend figures on the lab cluster (tests/lab-rbd/ceph.sh, single node,
# 1 BlueStore OSD on a sparse file): extend and snapshot latency through the
# vstor CLI vs the rbd CLI, and live-migration throughput vs `rbd migration`
# on the same image (same data, same pools).
#
# Usage: bench/rbd-bench.sh BUILD_DIR [IMAGE_MIB (256)] [ROUNDS (5)]
#        bench/rbd-bench.sh --stack BUILD_DIR [ROUNDS (5)]
# Brings the cluster up if needed and tears it down at the end if it
# started it.  Prints one line per figure (median of ROUNDS, in ms).
# --stack: the RBD disk of a running TCG guest (tests/lab-rbd-libvirt:
# cluster + private libvirtd + guest): extend through the whole stack
# (virDomainBlockResize + guest resize2fs) and snapshot with guest freeze,
# through the libvirt: URI and through the rbd: URI with libvirt=.
set -euo pipefail
if [ "${1:-}" = --stack ]; then
  B=$(cd "$2" && pwd); N=${3:-5}
  HERE=$(cd "$(dirname "$0")/.." && pwd)
  export VSTOR_BACKEND_DIR=$B/lib/backends VSTOR_STATE_DIR=$(mktemp -d /tmp/vstor-rbd-bench.XXXXXX)
  trap 'rm -rf "$VSTOR_STATE_DIR"' EXIT
  exec "$HERE/tests/lab-rbd-libvirt/run-lab.sh" bash "$0" --stack-inner "$B" "$N"
fi
if [ "${1:-}" = --stack-inner ]; then   # run by stack.sh: LAB_URI, LAB_DOM, CEPH_CONF set
  V=$2/tools/vstor; N=$3
  enc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="/"))' "$1"; }
  LU="libvirt:$LAB_DOM/vdb?uri=$(enc "$LAB_URI")&conf=$(enc "$CEPH_CONF")"
  RU="rbd:rbd/vm-disk?conf=$(enc "$CEPH_CONF")&libvirt=$(enc "$LAB_URI")"
  ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
  median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  for u in "$LU" "$RU"; do
    a=(); f=(); t=()
    for r in $(seq "$N"); do
      a+=("$(ms "$V" -q extend --resize-fs "$u" +32M)")
      t0=$(date +%s%N)
      f+=("$("$V" --json snapshot "$u" "b${#u}-$r" | python3 -c 'import sys,json; print(json.load(sys.stdin)["frozen_us"] // 1000)')")
      t+=("$(( ($(date +%s%N) - t0) / 1000000 ))")
    done
    echo "stack ${u%%:*}: extend +32M --resize-fs $(printf '%s
' "${a[@]}" | median) ms;" \
         "snapshot with guest freeze $(printf '%s
' "${t[@]}" | median) ms, frozen $(printf '%s
' "${f[@]}" | median) ms" \
         "(median of $N, process start included)"
  done
  exit 0
fi
B=$(cd "$1" && pwd); MIB=${2:-256}; N=${3:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
CEPH=$HERE/tests/lab-rbd/ceph.sh
V=$B/tools/vstor
export VSTOR_BACKEND_DIR=$B/lib/backends VSTOR_STATE_DIR=$(mktemp -d /tmp/vstor-rbd-bench.XXXXXX)
started=0
if ! "$CEPH" status; then "$CEPH" up >/dev/null; started=1; fi
export $("$CEPH" env)
I=bench$$
cleanup() {
  for p in rbd rbd2; do for i in $(rbd ls $p | grep "^$I" || true); do
    rbd snap purge --no-progress $p/$i >/dev/null 2>&1 || true; rbd rm --no-progress $p/$i >/dev/null 2>&1 || true
  done; done
  rm -rf "$VSTOR_STATE_DIR"
  [ $started = 0 ] || "$CEPH" down >/dev/null
}
trap cleanup EXIT
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fill() { rbd bench --io-type write --io-size 4M --io-total "${MIB}M" --io-pattern seq "$1" >/dev/null; }

rbd create --size "${MIB}M" rbd/$I; fill rbd/$I
sz=$MIB
a=(); b=()
for r in $(seq "$N"); do
  sz=$((sz + 64)); a+=("$(ms "$V" -q extend rbd:rbd/$I "${sz}M")")
  sz=$((sz + 64)); b+=("$(ms rbd resize --no-progress --size "${sz}M" rbd/$I)")
done
echo "extend       vstor $(printf '%s\n' "${a[@]}" | median) ms   rbd resize $(printf '%s\n' "${b[@]}" | median) ms  (median of $N, process start included)"
a=(); b=()
for r in $(seq "$N"); do
  a+=("$(ms "$V" -q snapshot rbd:rbd/$I v$r)")
  b+=("$(ms rbd snap create --no-progress rbd/$I@c$r)")
done
echo "snapshot     vstor $(printf '%s\n' "${a[@]}" | median) ms   rbd snap create $(printf '%s\n' "${b[@]}" | median) ms  (median of $N)"
rbd snap purge --no-progress rbd/$I >/dev/null

# migration throughput: same image content, twice each way
for r in 1 2; do
  t=$(ms "$V" -q mirror --pivot rbd:rbd/$I rbd:rbd2/$I)
  echo "migration    vstor mirror --pivot ${MIB} MiB written: $t ms ($(awk -v m=$MIB -v t=$t 'BEGIN{printf "%.1f", m*1000/t}') MiB/s, prepare+execute+commit)"
  t0=$(date +%s%N)
  rbd migration prepare rbd2/$I rbd/$I
  rbd migration execute --no-progress rbd/$I
  rbd migration commit --no-progress rbd/$I
  t=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "migration    rbd migration prepare+execute+commit ${MIB} MiB: $t ms ($(awk -v m=$MIB -v t=$t 'BEGIN{printf "%.1f", m*1000/t}') MiB/s)"
done
