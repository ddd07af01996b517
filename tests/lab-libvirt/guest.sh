#!/bin/bash
# Boot / tear down the libvirt lab guest.
#
# Usage: guest.sh up NAME [transient|persistent] [agent|noagent]
#        guest.sh down NAME
# up: direct-kernel boot of tests/lab/build-initramfs.sh output under QEMU TCG
#     (domain type 'qemu'), lab=agent mode, with
#       vda  raw 256 MiB file, ext4 made and mounted at /mnt/a by /agent-setup.sh
#       vdb  qcow2 128 MiB, no filesystem
#       the qemu-ga virtio channel (unless noagent)
#     and waits (bounded) until the guest agent answers guest-ping (noagent: until
#     the console shows the guest is up).  Prints "BOOT_MS=<ms>" and writes
#     $VM/env (LAB_URI, LAB_DOM, LAB_VM, LAB_BOOT_MS, LAB_SMALL: a 1 MiB fs only QEMU sees).  A failed boot exits 1.
# The lab libvirtd must be running (libvirtd.sh start).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
URI=$("$HERE/libvirtd.sh" uri)
V() { timeout 60 virsh -q -c "$URI" "$@"; }
CMD=${1:-}; NAME=${2:-}
case $NAME in ''|*[!a-z0-9-]*) echo "guest.sh: bad domain name '$NAME'" >&2; exit 2;; esac
VM=$LAB/libvirt/vm-$NAME

down() {
  V domstate "$NAME" >/dev/null 2>&1 || return 0
  V destroy "$NAME" >/dev/null 2>&1 || true
  V undefine "$NAME" >/dev/null 2>&1 || true
}

case $CMD in
down) down; rm -rf "$VM"; echo "guest.sh: $NAME down" ;;
up)
  KIND=${3:-transient}; AGENT=${4:-agent}
  bash "$HERE/../lab/build-initramfs.sh"
  down; rm -rf "$VM"; mkdir -p "$VM/r"
  cat > "$VM/r/agent-setup.sh" <<'EOS'
#!/bin/sh
# run by the lab guest's /init (lab=agent) before qemu-ga starts
mkfs.ext4 -q -F /dev/vda && mkdir -p /mnt/a && mount /dev/vda /mnt/a && echo data > /mnt/a/f && sync
echo "LAB: mounted: $(grep /mnt/a /proc/mounts)"
echo "LAB: guest ready"
EOS
  chmod +x "$VM/r/agent-setup.sh"
  (cd "$VM/r" && echo agent-setup.sh | cpio -o -H newc --quiet | gzip -1) > "$VM/extra.cpio.gz"
  cat "$LAB/out/base.cpio.gz" "$VM/extra.cpio.gz" > "$VM/initrd.gz"
  qemu-img create -q -f raw "$VM/vda.raw" 256M
  qemu-img create -q -f qcow2 "$VM/vdb.qcow2" 128M
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
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$VM/vdb.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <serial type='file'><source path='$VM/console.log'/><target port='0'/></serial>
    $chan
    <memballoon model='none'/>
  </devices>
</domain>
EOX
  t0=$(date +%s%N)
  if [ "$KIND" = persistent ]; then V define "$VM/dom.xml" >/dev/null && V start "$NAME" >/dev/null
  else V create "$VM/dom.xml" >/dev/null; fi || {
    echo "guest.sh: $NAME did not start" >&2; tail -20 "$LAB/libvirt/lv/log/qemu/$NAME.log" >&2 || true; exit 1; }
  ok=
  for _ in $(seq 1200); do   # bounded: 120 s
    if [ "$AGENT" = agent ]; then
      V qemu-agent-command --timeout 2 "$NAME" '{"execute":"guest-ping"}' >/dev/null 2>&1 && { ok=1; break; }
    else
      grep -q 'LAB: starting qemu-ga' "$VM/console.log" 2>/dev/null && { ok=1; break; }
    fi
    V domstate "$NAME" 2>/dev/null | grep -q running || break
    sleep 0.1
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if [ -z "$ok" ]; then
    echo "guest.sh: $NAME did not come up ($AGENT) within ${ms} ms; console:" >&2
    tail -20 "$VM/console.log" >&2 || true; down; exit 1
  fi
  printf 'LAB_URI=%q\nLAB_DOM=%q\nLAB_VM=%q\nLAB_BOOT_MS=%s\nLAB_SMALL=%q\n' "$URI" "$NAME" "$VM" "$ms" \
    "$LAB/libvirt/lv/small" > "$VM/env"
  echo "guest.sh: $NAME ($KIND, $AGENT) up; BOOT_MS=$ms"
  ;;
*) echo "usage: guest.sh up NAME [transient|persistent] [agent|noagent] | down NAME" >&2; exit 2 ;;
esac
