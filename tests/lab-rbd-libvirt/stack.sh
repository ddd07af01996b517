#!/bin/bash
# Bring up the RBD+libvirt stack for one test, run it, tear it all down.
#
# Usage: stack.sh [--noagent] PROGRAM [ARGS...]
# Runs inside tests/lab-rbd/run-lab.sh (which brings up the Ceph cluster and
# exports CEPH_CONF).  Starts the private libvirtd (tests/lab-libvirt/
# libvirtd.sh: mount namespace only, so QEMU reaches the monitor on
# 127.0.0.1), defines a ceph secret holding client.admin's key, creates the
# image rbd/vm-disk (256 MiB), and boots a TCG guest whose
#   vda  is a 16 MiB raw file (unused: keeps guest and libvirt names equal)
#   vdb  is <disk type='network'> protocol rbd name rbd/vm-disk, host
#        127.0.0.1:6789, auth username admin + the secret (QEMU's rbd driver)
# The guest's agent-setup makes ext4 on vdb, mounts it at /mnt/r, writes a
# file, then runs qemu-ga.  Exports LAB_URI LAB_DOM LAB_VM LAB_BOOT_MS
# LAB_IMAGE CEPH_CONF LAB_SECRET to PROGRAM.  Destroys the guest, the secret,
# the daemon and the lab's images whatever happened.  Exit: PROGRAM's; 1 if
# the stack could not be brought up.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LVD=$HERE/../lab-libvirt/libvirtd.sh
LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
AGENT=agent
[ "${1:-}" = --noagent ] && { AGENT=noagent; shift; }
[ $# -ge 1 ] || { echo "usage: stack.sh [--noagent] PROGRAM [ARGS...]" >&2; exit 2; }
: "${CEPH_CONF:?stack.sh runs under tests/lab-rbd/run-lab.sh (CEPH_CONF)}"
export CEPH_CONF
NAME=vstor-rbdvirt-$AGENT
VM=$LAB/rbdvirt/vm-$NAME
URI=$("$LVD" uri)
IMG=rbd/vm-disk
V() { timeout 60 virsh -q -c "$URI" "$@"; }
R() { timeout 60 rbd "$@"; }
SECRET=
# the lab's images, clones before their parents
IMAGES="rbd2/vm-disk-clone rbd2/vm-disk-copy rbd2/cli-copy rbd/vm-disk-x rbd/vm-disk-k rbd/vm-disk-r rbd/vm-disk-e rbd/vm-disk"
# Remove an image whatever a test left: protected snapshots, and the watch
# of a QEMU that was just destroyed (it stays ~30 s otherwise: evicted by
# blocklisting its address; the cluster is the lab's own).
rm_image() {
  R info "$1" >/dev/null 2>&1 || return 0
  local s w
  for s in $(R snap ls --format json "$1" 2>/dev/null | jq -r '.[] | select(.protected == "true") | .name'); do
    R snap unprotect "$1@$s" >/dev/null 2>&1
  done
  R snap purge --no-progress "$1" >/dev/null 2>&1
  for w in $(R status --format json "$1" 2>/dev/null | jq -r '.watchers[]?.address'); do
    timeout 30 ceph osd blocklist add "$w" >/dev/null 2>&1
  done
  R rm --no-progress "$1" >/dev/null 2>&1 || echo "stack.sh: could not remove $1" >&2
}
cleanup() {
  V destroy "$NAME" >/dev/null 2>&1
  [ -n "$SECRET" ] && V secret-undefine "$SECRET" >/dev/null 2>&1
  "$LVD" stop
  for i in $IMAGES; do rm_image "$i"; done
  rm -rf "$VM"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
bash "$HERE/../lab/build-initramfs.sh" || exit 1
rm -rf "$VM"; mkdir -p "$VM/r"
"$LVD" start || exit 1
# leftovers of a killed run
for i in $IMAGES; do rm_image "$i"; done
R create --size 256M "$IMG" || { echo "stack.sh: rbd create $IMG failed" >&2; exit 1; }
KEY=$(timeout 30 ceph auth get-key client.admin) || { echo "stack.sh: ceph auth get-key failed" >&2; exit 1; }
SECRET=$(cat /proc/sys/kernel/random/uuid)
cat > "$VM/secret.xml" <<EOX
<secret ephemeral='no' private='yes'><uuid>$SECRET</uuid><usage type='ceph'><name>client.admin vstor lab</name></usage></secret>
EOX
V secret-define "$VM/secret.xml" >/dev/null && V secret-set-value "$SECRET" --base64 "$KEY" >/dev/null 2>&1 ||
  V secret-set-value "$SECRET" "$KEY" >/dev/null || { echo "stack.sh: libvirt secret not set" >&2; exit 1; }
cat > "$VM/r/agent-setup.sh" <<'EOS'
#!/bin/sh
# run by the lab guest's /init (lab=agent) before qemu-ga starts
mkfs.ext4 -q -F /dev/vdb && mkdir -p /mnt/r && mount /dev/vdb /mnt/r && echo data > /mnt/r/f && sync
echo "LAB: mounted: $(grep /mnt/r /proc/mounts)"
echo "LAB: guest ready"
EOS
chmod +x "$VM/r/agent-setup.sh"
(cd "$VM/r" && echo agent-setup.sh | cpio -o -H newc --quiet | gzip -1) > "$VM/extra.cpio.gz"
cat "$LAB/out/base.cpio.gz" "$VM/extra.cpio.gz" > "$VM/initrd.gz"
qemu-img create -q -f raw "$VM/vda.raw" 16M
chan=
[ "$AGENT" = agent ] && chan="<channel type='unix'><source mode='bind' path='$VM/qga.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
cat > "$VM/dom.xml" <<EOX
<domain type='qemu'>
  <name>$NAME</name>
  <memory unit='MiB'>512</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$LAB/out/vmlinuz</kernel>
    <initrd>$VM/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet lab=agent</cmdline>
  </os>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$VM/vda.raw'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source protocol='rbd' name='$IMG'>
        <host name='127.0.0.1' port='6789'/>
      </source>
      <auth username='admin'><secret type='ceph' uuid='$SECRET'/></auth>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <serial type='file'><source path='$VM/console.log'/><target port='0'/></serial>
    $chan
    <memballoon model='none'/>
  </devices>
</domain>
EOX
t0=$(date +%s%N)
V create "$VM/dom.xml" >/dev/null || {
  echo "stack.sh: $NAME did not start" >&2; tail -20 "$LAB/libvirt/lv/log/qemu/$NAME.log" >&2; exit 1; }
ok=
for _ in $(seq 1200); do   # bounded: 120 s
  if [ "$AGENT" = agent ]; then
    V qemu-agent-command --timeout 2 "$NAME" '{"execute":"guest-ping"}' >/dev/null 2>&1 && { ok=1; break; }
  else
    grep -q 'LAB: guest ready' "$VM/console.log" 2>/dev/null && { ok=1; break; }
  fi
  V domstate "$NAME" 2>/dev/null | grep -q running || break
  sleep 0.1
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ -z "$ok" ]; then
  echo "stack.sh: $NAME did not come up ($AGENT) within ${ms} ms; console:" >&2
  tail -20 "$VM/console.log" >&2; exit 1
fi
grep -q 'LAB: mounted: /dev/vdb' "$VM/console.log" || {
  echo "stack.sh: the guest did not mount the RBD disk; console:" >&2; tail -20 "$VM/console.log" >&2; exit 1; }
echo "stack.sh: $NAME up on $IMG in ${ms} ms"
export LAB_URI=$URI LAB_DOM=$NAME LAB_VM=$VM LAB_BOOT_MS=$ms LAB_IMAGE=$IMG LAB_SECRET=$SECRET
"$@"
