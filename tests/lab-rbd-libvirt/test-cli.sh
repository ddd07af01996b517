#!/bin/bash
# lab-rbd-libvirt: the vstor CLI on a guest's RBD network disk, through the
# libvirt: URI and the rbd: URI with libvirt= (run through run-lab.sh:
# LAB_URI, LAB_DOM, CEPH_CONF set).  Outcomes checked with virsh and rbd.
# Usage: test-cli.sh PATH/TO/vstor
set -uo pipefail
V=$1
export VSTOR_STATE_DIR=$(mktemp -d /tmp/vstor-rbdvirt-cli.XXXXXX)
trap 'rm -rf "$VSTOR_STATE_DIR"' EXIT
pass=0 fail=0
ok() { if "$@"; then pass=$((pass + 1)); echo "ok $((pass + fail)) - $T"; else fail=$((fail + 1)); echo "not ok $((pass + fail)) - $T"; fi; }
enc() { jq -rn --arg s "$1" '$s | @uri'; }
LU="libvirt:$LAB_DOM/vdb?uri=$(enc "$LAB_URI")&conf=$(enc "$CEPH_CONF")"
RU="rbd:rbd/vm-disk?conf=$(enc "$CEPH_CONF")&libvirt=$(enc "$LAB_URI")"
VS() { timeout 60 virsh -q -c "$LAB_URI" "$@"; }
size() { rbd info --format json "$1" | jq -r .size; }
cap() { VS domblkinfo "$LAB_DOM" vdb | awk '/Capacity/{print $2}'; }

T="info libvirt: shows rbd storage, hypervisor, guest ext4"
ok bash -c "'$V' info '$LU' | grep -q 'storage *rbd *rbd/vm-disk' && '$V' info '$LU' | grep -q 'hypervisor *libvirt' && '$V' info '$LU' | grep -q 'filesystem *ext4 */mnt/r'"
T="caps libvirt: freeze yes, mirror yes"
ok bash -c "'$V' caps '$LU' | grep -q 'freeze *yes' && '$V' caps '$LU' | grep -q 'mirror *yes'"
T="info rbd:?libvirt= shows the guest's hypervisor layer"
ok bash -c "'$V' info '$RU' | grep -q 'hypervisor *libvirt *$LAB_DOM/vdb'"
T="caps rbd:?libvirt=: mirror no, naming the libvirt URI"
ok bash -c "'$V' caps '$RU' | grep -q 'mirror *no .*libvirt:$LAB_DOM/vdb'"
T="extend --resize-fs via rbd:?libvirt= +64M: image and QEMU at 320 MiB"
ok bash -c "'$V' -q extend --resize-fs '$RU' +64M && test \$(rbd info --format json rbd/vm-disk | jq -r .size) = 335544320 && test \"\$(timeout 60 virsh -q -c '$LAB_URI' domblkinfo $LAB_DOM vdb | awk '/Capacity/{print \$2}')\" = 335544320"
T="snapshot --json: filesystem-consistent, frozen_us > 0, rbd snap ls shows it"
ok bash -c "'$V' --json snapshot '$LU' c1 | jq -e '.consistency == \"filesystem\" and .frozen_us > 0' >/dev/null && rbd snap ls rbd/vm-disk | grep -qw c1"
T="dry-run snapshot makes nothing"
ok bash -c "'$V' -n snapshot '$LU' c2 >/dev/null && ! rbd snap ls rbd/vm-disk | grep -qw c2"
T="mirror via rbd:?libvirt= refused (exit 1), message names the libvirt URI"
ok bash -c "out=\$('$V' -q mirror '$RU' rbd:rbd2/cli-x 2>&1); test \$? = 1 && echo \"\$out\" | grep -q 'libvirt:$LAB_DOM/vdb' && ! rbd info rbd2/cli-x >/dev/null 2>&1"
T="mirror --pivot libvirt: onto rbd:rbd2/cli-copy; the domain uses it"
ok bash -c "'$V' -q mirror --pivot '$LU' rbd:rbd2/cli-copy && timeout 60 virsh -q -c '$LAB_URI' domblklist $LAB_DOM | grep -q 'vdb *rbd2/cli-copy'"
T="the copy has the image's size"
ok test "$(size rbd2/cli-copy)" = 335544320
echo "1..$((pass + fail))"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
