#!/bin/bash
# Run one lab-rbd test program against the lab's Ceph cluster.
#
# Usage: run-lab.sh PROGRAM [ARGS...]
# One cluster per `meson test` run: the first test of the run brings it up
# (ceph.sh up) and starts a detached reaper that tears it down (ceph.sh down)
# as soon as the process that ran the tests (meson, or the shell that ran
# this script by hand) exits, whatever way it exits.  Later tests of the same
# run find it healthy and reuse it; one that finds it unhealthy (a test
# stopped a daemon and died) brings it up again.  A cluster owned by another
# live run is not touched: this one fails.  Set VSTOR_LAB_OWNER to tie the
# cluster to another pid.  Exit status: the program's; 1 if the cluster
# could not be brought up.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
CEPH="$HERE/ceph.sh"
OWNER=${VSTOR_LAB_OWNER:-$PPID}
OWNERFILE=$LAB/ceph-owner
[ $# -ge 1 ] || { echo "usage: run-lab.sh PROGRAM [ARGS...]" >&2; exit 2; }
mkdir -p "$LAB"

exec 9>"$LAB/ceph.lock"
flock -w 300 9 || { echo "run-lab.sh: $LAB/ceph.lock held for 300 s" >&2; exit 1; }
prev=$(cat "$OWNERFILE" 2>/dev/null || true)
if [ -n "$prev" ] && [ "$prev" != "$OWNER" ] && kill -0 "$prev" 2>/dev/null; then
  echo "run-lab.sh: the lab cluster belongs to another running test run (pid $prev)" >&2
  exit 1
fi
if [ "$prev" != "$OWNER" ] || ! "$CEPH" status 9>&-; then
  t0=$(date +%s%N)
  # fd 9 (the lock) must not leak into the daemons: they would hold it
  "$CEPH" up 9>&- || { "$CEPH" down 9>&-; exit 1; }
  echo "$OWNER" > "$OWNERFILE"
  echo "run-lab.sh: cluster ready in $(( ($(date +%s%N) - t0) / 1000000 )) ms (owner pid $OWNER)"
  # The reaper: detached (own session), no fd shared with the test (meson
  # waits for the test's pipes to close), exits with the owner.
  setsid bash -c '
    owner=$1; ceph=$2; ownerfile=$3
    while kill -0 "$owner" 2>/dev/null; do sleep 1; done
    exec 9>"$(dirname "$ownerfile")/ceph.lock"; flock -w 300 9
    if [ "$(cat "$ownerfile" 2>/dev/null)" = "$owner" ]; then "$ceph" down; rm -f "$ownerfile"; fi
  ' reaper "$OWNER" "$CEPH" "$OWNERFILE" </dev/null >>"$LAB/ceph-reaper.log" 2>&1 9>&- &
fi
exec 9>&-
export $("$CEPH" env)
export LAB_CEPH_SH="$CEPH"
"$@"
