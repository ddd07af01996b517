#!/bin/bash
# Run one lab-libvirt test against a fresh guest, then tear everything down.
#
# Usage: run-lab.sh [--persistent] [--noagent] PROGRAM [ARGS...]
# Starts the private libvirtd (libvirtd.sh), boots the guest (guest.sh), runs
# PROGRAM with LAB_URI, LAB_DOM, LAB_VM and LAB_BOOT_MS in its environment, then
# destroys the guest and stops the daemon whatever happened.  Exit status: the
# program's; 1 if the lab could not be brought up (a failed boot is a failure).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KIND=transient AGENT=agent
while [ $# -gt 0 ]; do case $1 in
  --persistent) KIND=persistent; shift ;;
  --noagent) AGENT=noagent; shift ;;
  *) break ;;
esac; done
[ $# -ge 1 ] || { echo "usage: run-lab.sh [--persistent] [--noagent] PROGRAM [ARGS...]" >&2; exit 2; }
NAME=vstor-lab-$KIND-$AGENT
cleanup() { "$HERE/guest.sh" down "$NAME" >/dev/null 2>&1; "$HERE/libvirtd.sh" stop; }
trap cleanup EXIT
trap 'exit 1' INT TERM
"$HERE/libvirtd.sh" start || exit 1
"$HERE/guest.sh" up "$NAME" "$KIND" "$AGENT" || exit 1
set -a; . "${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}/libvirt/vm-$NAME/env"; set +a
"$@"
