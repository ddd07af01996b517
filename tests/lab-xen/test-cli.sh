#!/bin/bash
# lab-xen: the vstor CLI on a Xen vbd, in dom0 (from dom0-scenario.sh).
# Usage: test-cli.sh VSTOR   (env: LAB_DOM, LAB_CONLOG).  TAP lines on stdout.
V=$1
U=xen:$LAB_DOM/xvda
ok() { if [ "$1" = 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi; }
fail=0
out=$("$V" info "$U" 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q xen-vbd; ok $(( rc || $? )) "vstor info $U lists the xen-vbd layer"
out=$("$V" --json caps "$U" 2>&1); rc=$?
echo "$out" | sed 's/^/# /' | cut -c1-200
echo "$out" | grep -q '"snapshot"'; ok $(( rc || $? )) "vstor --json caps $U"
cur=$(grep -a "xvda size=" "$LAB_CONLOG" | tail -1 | sed 's/.*size=//' | tr -d '\r')
out=$("$V" extend "$U" +16M 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
want=$(( cur + 32768 ))
for i in $(seq 300); do
  now=$(grep -a "xvda size=" "$LAB_CONLOG" | tail -1 | sed 's/.*size=//' | tr -d '\r')
  [ "$now" = "$want" ] && break; sleep 0.2
done
[ "$now" = "$want" ]; ok $(( rc || $? )) "vstor extend $U +16M: the domU sees $want sectors (was $cur)"
"$V" snapshot "$U" /tmp/cli-snap.img > /tmp/cli.out 2>&1; rc=$?
sed 's/^/# /' /tmp/cli.out
[ $rc = 1 ] && [ ! -e /tmp/cli-snap.img ]; ok $? "vstor snapshot without --crash-consistent: exit 1, nothing written"
"$V" snapshot --crash-consistent "$U" /tmp/cli-snap.img > /tmp/cli.out 2>&1; rc=$?
sed 's/^/# /' /tmp/cli.out
[ $rc = 0 ] && [ -s /tmp/cli-snap.img ] && grep -qi "paused\|frozen" /tmp/cli.out; ok $? "vstor snapshot --crash-consistent: exit 0, window printed"
"$V" info xen:nosuchdom/xvda > /tmp/cli.out 2>&1; rc=$?
sed 's/^/# /' /tmp/cli.out
[ $rc = 1 ] && grep -q NOENT /tmp/cli.out; ok $? "vstor info of an unknown domain: exit 1, NOENT"
exit $fail
