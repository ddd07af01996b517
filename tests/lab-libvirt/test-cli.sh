#!/bin/bash
# lab-libvirt: the vstor CLI on the running lab guest (run through run-lab.sh,
# which exports LAB_URI, LAB_DOM, LAB_VM).  Usage: test-cli.sh PATH/TO/vstor
set -uo pipefail
VSTOR=("$1" --state-dir "$LAB_VM/state-cli")
pass=0 fail=0
ok() { if [ "$1" = 0 ]; then pass=$((pass+1)); echo "ok $((pass+fail)) - $2"; else fail=$((fail+1)); echo "not ok $((pass+fail)) - $2"; fi; }
V() { timeout 60 virsh -q -c "$LAB_URI" "$@"; }
ga() { V qemu-agent-command "$LAB_DOM" "$1"; }
gexec() {  # a fixed script in the guest; prints its stdout
  local pid out
  pid=$(ga "$(python3 -c 'import json,sys; print(json.dumps({"execute":"guest-exec","arguments":
        {"path":"/bin/sh","arg":["-c",sys.argv[1]],"capture-output":True}}))' "$1")" |
        sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
  [ -n "$pid" ] || return 1
  for _ in $(seq 600); do
    out=$(ga "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}")
    case $out in *'"exited":true'*) break;; esac; sleep 0.1
  done
  echo "$out" | sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' | base64 -d 2>/dev/null
}
enc=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1],safe=""))' "$LAB_URI")
URI="libvirt:$LAB_DOM/vda?uri=$enc"

out=$("${VSTOR[@]}" info "$URI" 2>&1); echo "$out" | sed 's/^/#   /'
echo "$out" | grep -q 'libvirt' && echo "$out" | grep -q '/mnt/a'; ok $? "vstor info lists the hypervisor layer and the guest fs"
"${VSTOR[@]}" caps "$URI" > "$LAB_VM/caps.txt" 2>&1; ok $? "vstor caps"
sed 's/^/#   /' "$LAB_VM/caps.txt"
out=$("${VSTOR[@]}" info "libvirt:no-such-dom/vda?uri=$enc" 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q NOENT; ok $? "unknown domain: exit 1, NOENT ($out)"
s0=$(stat -c %s "$LAB_VM/vda.raw")
"${VSTOR[@]}" -n extend "$URI" 300M --resize-fs > "$LAB_VM/plan.txt" 2>&1
[ $? = 0 ] && [ "$(stat -c %s "$LAB_VM/vda.raw")" = "$s0" ]; ok $? "dry run: plan printed, nothing changed"
sed 's/^/#   /' "$LAB_VM/plan.txt"
"${VSTOR[@]}" extend "$URI" 300M --resize-fs 2>&1 | sed 's/^/#   /'
[ "${PIPESTATUS[0]}" = 0 ] && [ "$(gexec 'cat /sys/block/vda/size')" = $((300 * 2048)) ]; ok $? "extend --resize-fs: guest sees 300 MiB"
kb=$(gexec "df -k /mnt/a | awk 'NR==2{print \$2}'"); [ "${kb:-0}" -gt 250000 ]; ok $? "guest ext4 grown ($kb KiB)"
out=$("${VSTOR[@]}" snapshot "$URI" "$LAB_VM/cli-snap.qcow2" 2>&1); rc=$?; echo "$out" | sed 's/^/#   /'
[ $rc = 0 ] && echo "$out" | grep -q 'frozen window'; ok $? "snapshot prints the frozen window"
[ "$(ga '{"execute":"guest-fsfreeze-status"}')" = '{"return":"thawed"}' ]; ok $? "guest thawed after the snapshot"
out=$("${VSTOR[@]}" snapshot "$URI" "$LAB_VM/cli-snap.qcow2" 2>&1); [ $? = 1 ] && echo "$out" | grep -q EXIST; ok $? "snapshot onto an existing file: exit 1, EXIST"
out=$("${VSTOR[@]}" -q mirror --pivot "$URI" "$LAB_VM/cli-copy.qcow2" 2>&1); rc=$?
[ $rc = 0 ] && V domblklist "$LAB_DOM" | grep -q "vda *$LAB_VM/cli-copy.qcow2"; ok $? "mirror --pivot: domain disk on the copy"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
