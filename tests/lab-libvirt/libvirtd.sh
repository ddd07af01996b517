#!/bin/bash
# Private libvirtd for the libvirt lab (Debian 12, libvirt 9.0, monolithic daemon, no systemd).
#
# Usage: libvirtd.sh start|stop|uri
#   start  start libvirtd in a private mount namespace; config and state live under
#          $VSTOR_LAB_DIR/libvirt/lv (nothing under /etc, /run or /var/lib is touched)
#   stop   destroy the lab's running domains, stop that libvirtd (by its pid file only)
#   uri    print the connection URI of the lab daemon
# $LV/small is a 1 MiB tmpfs inside the daemon's namespace only (host: empty dir).
# Default VSTOR_LAB_DIR: /var/tmp/vstor-lab.  Adapted from ../shared/lab/start-libvirtd.sh.
set -euo pipefail
LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
LV=$LAB/libvirt/lv
URI="qemu:///system?socket=$LV/run/libvirt-sock"

running() { [ -s "$LV/run/libvirtd.pid" ] && kill -0 "$(cat "$LV/run/libvirtd.pid")" 2>/dev/null; }

case ${1:-} in
uri) echo "$URI" ;;
start)
  command -v libvirtd >/dev/null || { echo "libvirtd.sh: libvirtd not installed (tests/deps/libvirt.txt)" >&2; exit 1; }
  if running && timeout 10 virsh -q -c "$URI" version >/dev/null 2>&1; then
    echo "libvirtd.sh: already running, pid $(cat "$LV/run/libvirtd.pid")"; exit 0
  fi
  mkdir -p "$LV"/{etc,run,lib,log,cache,small}
  rm -f "$LV/run/libvirt-sock" "$LV/run/libvirtd.pid"
  cat > "$LV/etc/libvirtd.conf" <<'EOC'
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOC
  cat > "$LV/etc/qemu.conf" <<'EOC'
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
remember_owner = 0
EOC
  : > "$LV/etc/libvirt.conf"
  # libvirt 9.0 resolves its build-time default user "libvirt-qemu" before reading
  # qemu.conf: private copies of passwd/group (bind-mounted below) carry it.
  cp /etc/passwd "$LV/passwd"; cp /etc/group "$LV/group"
  grep -q '^libvirt-qemu:' "$LV/passwd" || echo 'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin' >> "$LV/passwd"
  grep -q '^libvirt-qemu:' "$LV/group"  || echo 'libvirt-qemu:x:64055:' >> "$LV/group"
  t0=$(date +%s%N)
  # The paths are ours (no user input); the inner script is fixed text with $1 as argument.
  unshare -m --propagation private sh -c '
    LV=$1
    mount --bind "$LV/etc" /etc/libvirt
    mount --bind "$LV/passwd" /etc/passwd
    mount --bind "$LV/group" /etc/group
    mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
    mount --bind "$LV/run" /run/libvirt
    mount --bind "$LV/lib" /var/lib/libvirt
    mount --bind "$LV/log" /var/log/libvirt
    mount --bind "$LV/cache" /var/cache/libvirt
    # a 1 MiB filesystem only libvirtd and QEMU see (tests: a copy that
    # runs out of space fails inside QEMU)
    mount -t tmpfs -o size=1m vstor-lab-small "$LV/small"
    exec /usr/sbin/libvirtd -d -p /run/libvirt/libvirtd.pid' sh "$LV"
  for _ in $(seq 150); do [ -S "$LV/run/libvirt-sock" ] && break; sleep 0.1; done
  timeout 20 virsh -q -c "$URI" version >/dev/null || { echo "libvirtd.sh: daemon did not answer" >&2; tail -5 "$LV/log/libvirtd.log" >&2 || true; exit 1; }
  echo "libvirtd.sh: up in $(( ($(date +%s%N) - t0) / 1000000 )) ms, pid $(cat "$LV/run/libvirtd.pid"), $URI"
  ;;
stop)
  if running; then
    for d in $(timeout 10 virsh -q -c "$URI" list --name 2>/dev/null); do timeout 20 virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1 || true; done
    for d in $(timeout 10 virsh -q -c "$URI" list --all --name 2>/dev/null); do timeout 20 virsh -q -c "$URI" undefine "$d" >/dev/null 2>&1 || true; done
    pid=$(cat "$LV/run/libvirtd.pid"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    echo "libvirtd.sh: libvirtd $pid stopped"
  fi
  ;;
*) echo "usage: libvirtd.sh start|stop|uri" >&2; exit 2 ;;
esac
