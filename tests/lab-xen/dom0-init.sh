#!/bin/bash
# dom0 stage 2, PID 1 (copied to the run directory, mounted at /share):
# the host's Debian userland (read-only 9p + tmpfs overlay), the Xen
# toolstack started by hand, then /share/scenario.sh, then power off.
# Markers on the serial console: "LABXEN: dom0 ready", "LABXEN: scenario rc=N".
export PATH=/usr/lib/xen-4.17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C
ts() { echo "LABXEN: [+$(cut -d' ' -f1 /proc/uptime)s] $*"; }
# Pitfall: no udev, so the /dev/fd and /dev/std* links the hotplug scripts
# (bash here-strings, "exec 3>/dev/stdout") rely on must be made by hand.
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /var/log
mount -t tmpfs tmpfs /var/lib/xen 2>/dev/null || true
mkdir -p /run/xen /run/xenstored /run/lock /var/log/xen/console /var/lib/xen /var/lib/xenstored /var/run
ts "stage2 start"
for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkback loop dm-mod dm-snapshot dm-mirror; do
  modprobe $m || ts "modprobe $m FAILED"
done
mount -t xenfs xenfs /proc/xen
ts "xen caps: $(cat /proc/xen/capabilities)"
xenstored --pid-file /run/xenstore.pid || ts "xenstored FAILED"
xen-init-dom0 >/dev/null || ts "xen-init-dom0 FAILED"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || ts "xenconsoled FAILED"
if xl list >/dev/null 2>&1; then ts "dom0 ready"; else ts "dom0 NOT ready"; fi
set -a; . /share/env; set +a
eval "args=($(cat /share/args))"
bash /share/scenario.sh "${args[@]}"; rc=$?
ts "scenario rc=$rc"
sync
echo o > /proc/sysrq-trigger
sleep 5; poweroff -f
