#!/bin/bash
# Inner part of bench/libvirt-bench.sh, run by run-lab.sh with LAB_URI,
# LAB_DOM, LAB_VM set and the guest up.
set -uo pipefail
V() { timeout 120 virsh -q -c "$LAB_URI" "$@"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
ga() { V qemu-agent-command "$LAB_DOM" "$1"; }
gexec() {  # fixed script in the guest, wait, print stdout
  local pid out
  pid=$(ga "$(python3 -c 'import json,sys; print(json.dumps({"execute":"guest-exec","arguments":
        {"path":"/bin/sh","arg":["-c",sys.argv[1]],"capture-output":True}}))' "$1")" |
        sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
  [ -n "$pid" ] || { echo "guest-exec failed" >&2; return 1; }
  for _ in $(seq 1200); do
    out=$(ga "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}")
    case $out in *'"exited":true'*) break;; esac; sleep 0.1
  done
  echo "$out" | sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' | base64 -d 2>/dev/null
}
enc=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1],safe=""))' "$LAB_URI")
URI="libvirt:$LAB_DOM/vda?uri=$enc"
VSTOR=("$BUILD/tools/vstor" --state-dir "$LAB_VM/state")
median() { sort -n | awk '{a[NR]=$1} END{if(NR==0){print "-"}else{print a[int((NR+1)/2)]}}'; }
declare -A F

t=$(date +%s%N); gexec 'dd if=/dev/zero of=/mnt/a/big bs=1M count=160 conv=fsync 2>&1 | tail -1'; echo "fill 160 MiB in guest: $(ms $t) ms"

for r in $(seq "$ROUNDS"); do
  # --- snapshot: vstor
  out=$("${VSTOR[@]}" snapshot "$URI" "$LAB_VM/vs$r.qcow2" 2>&1); rc=$?
  fz=$(echo "$out" | sed -n 's/.*frozen window \([0-9]*\) us.*/\1/p')
  [ $rc -eq 0 ] && [ -n "$fz" ] || { echo "vstor snapshot failed: $out"; exit 1; }
  F[vs_frozen]+="$((fz / 1000)) "; echo "round $r: vstor snapshot frozen window $((fz / 1000)) ms"
  # --- snapshot: virsh by hand (freeze -> snapshot -> thaw, wall time)
  t=$(date +%s%N)
  V domfsfreeze "$LAB_DOM" >/dev/null && V snapshot-create-as "$LAB_DOM" --disk-only --no-metadata --atomic \
      --diskspec "vda,snapshot=external,file=$LAB_VM/vh$r.qcow2" >/dev/null; V domfsthaw "$LAB_DOM" >/dev/null
  d=$(ms $t); F[virsh_frozen]+="$d "; echo "round $r: virsh freeze+snapshot+thaw $d ms"
  # --- mirror + pivot: vstor; a guest loop timestamps every 10 ms meanwhile
  gexec 'rm -f /mnt/a/ts; (while :; do cut -d" " -f1 /proc/uptime >> /mnt/a/ts; sync; usleep 10000; done) >/dev/null 2>&1 & echo $! > /tmp/ts.pid' >/dev/null
  out=$("${VSTOR[@]}" mirror --pivot "$URI" "$LAB_VM/vm$r.qcow2" 2>&1); rc=$?
  [ $rc -eq 0 ] || { echo "vstor mirror failed: $out"; exit 1; }
  rd=$(echo "$out" | sed -n 's/.*READY (copy in sync) after \([0-9.]*\) s.*/\1/p')
  pv=$(echo "$out" | sed -n 's/.*PIVOTED in \([0-9.]*\) ms.*/\1/p')
  gap=$(gexec 'kill $(cat /tmp/ts.pid); sync; awk "NR>1{g=(\$1-p)*1000; if(g>m)m=g} {p=\$1} END{printf \"%d (%d samples)\", m, NR}" /mnt/a/ts')
  F[vs_ready]+="$rd "; F[vs_pivot]+="$pv "; F[io_gap]+="${gap%% *} "
  echo "round $r: vstor mirror READY after $rd s, pivot $pv ms, longest guest write gap $gap ms"
  # --- mirror + pivot: virsh
  t=$(date +%s%N)
  V blockcopy "$LAB_DOM" vda "$LAB_VM/hm$r.qcow2" --format qcow2 --wait >/dev/null || { echo "virsh blockcopy failed"; exit 1; }
  rdv=$(ms $t); t=$(date +%s%N)
  V blockjob "$LAB_DOM" vda --pivot >/dev/null || { echo "virsh pivot failed"; exit 1; }
  pvv=$(ms $t); F[virsh_ready]+="$rdv "; F[virsh_pivot]+="$pvv "
  echo "round $r: virsh blockcopy --wait $rdv ms, blockjob --pivot $pvv ms"
done
echo "== median of $ROUNDS rounds (TCG guest, 2 shared cores, ${LAB_BOOT_MS} ms boot)"
printf 'snapshot frozen window: vstor %s ms (reported) | virsh freeze..thaw %s ms (wall)\n' \
  "$(echo ${F[vs_frozen]} | tr ' ' '\n' | median)" "$(echo ${F[virsh_frozen]} | tr ' ' '\n' | median)"
printf 'mirror time to READY:   vstor %s s | virsh blockcopy --wait %s ms\n' \
  "$(echo ${F[vs_ready]} | tr ' ' '\n' | median)" "$(echo ${F[virsh_ready]} | tr ' ' '\n' | median)"
printf 'pivot:                  vstor %s ms | virsh blockjob --pivot %s ms\n' \
  "$(echo ${F[vs_pivot]} | tr ' ' '\n' | median)" "$(echo ${F[virsh_pivot]} | tr ' ' '\n' | median)"
printf 'guest write gap across vstor pivot: %s ms (10 ms sampling)\n' "$(echo ${F[io_gap]} | tr ' ' '\n' | median)"
