#!/bin/bash
# Throw-away single-node Ceph cluster for the RBD lab (Debian 12, Ceph 16.2
# packages: tests/deps/rbd.txt).  1 mon, 1 mgr, 1 BlueStore OSD on a sparse
# file, all on 127.0.0.1, cephx on; config, keyrings, data, logs and sockets
# under $VSTOR_LAB_DIR/ceph (default /var/tmp/vstor-lab/ceph).  Nothing under
# /etc/ceph is read or written.  Adapted from ../shared/lab/ceph/ceph-up.sh.
#
# Usage: ceph.sh up|down|status|env|stop-mon|start-mon|pause-osd|resume-osd|wait-ok
#   up         bring the cluster up (idempotent: a healthy running cluster is
#              kept), wait for HEALTH_OK (bounded), create the pools
#              rbd, rbd2 (and namespace rbd/ns1) and the cephx user
#              client.vstor (profile rbd); prints the time to HEALTH_OK
#   down       stop the daemons (by their pid files only) and wipe the state
#   status     exit 0 if the cluster answers with HEALTH_OK
#   env        print CEPH_CONF=... for the tests
#   stop-mon / start-mon     stop / restart the monitor (timeout tests)
#   pause-osd / resume-osd   SIGSTOP / SIGCONT the OSD (op timeout tests)
#   wait-ok [S]              wait (at most S s, default 60) for HEALTH_OK
# Knobs: OSD_SIZE_GB (10, sparse), HEALTH_TIMEOUT (120 s).
set -euo pipefail

LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
D=$LAB/ceph
CONF=$D/ceph.conf
OSD_SIZE_GB=${OSD_SIZE_GB:-10}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-120}
MON_ADDR="[v2:127.0.0.1:3300,v1:127.0.0.1:6789]"
POOLS="rbd rbd2"
export CEPH_CONF=$CONF

say() { echo "ceph.sh: $*"; }
die() { echo "ceph.sh: $*" >&2; exit 1; }
# ceph CLI with a bound: a dead mon must not hang the lab
c() { timeout 30 ceph --connect-timeout 20 "$@"; }

pid_of() { [ -s "$D/run/$1.pid" ] && cat "$D/run/$1.pid"; }
alive() { local p; p=$(pid_of "$1") && kill -0 "$p" 2>/dev/null; }

healthy() {
  [ -f "$CONF" ] && alive mon.a && alive osd.0 &&
    timeout 15 ceph --connect-timeout 10 health 2>/dev/null | grep -q HEALTH_OK
}

down() {
  shopt -s nullglob
  local pids=() f p
  for f in "$D"/run/osd.*.pid "$D"/run/mgr.*.pid "$D"/run/mon.*.pid; do
    p=$(cat "$f" 2>/dev/null) || continue
    [ -n "$p" ] || continue
    if kill -0 "$p" 2>/dev/null; then
      kill -CONT "$p" 2>/dev/null || true   # a paused OSD must see the TERM
      kill "$p" && pids+=("$p")
    fi
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$D"
  [ ${#pids[@]} -eq 0 ] || say "stopped ${#pids[@]} daemon(s), wiped $D"
}

up() {
  for t in ceph-mon ceph-osd ceph-mgr ceph ceph-authtool monmaptool rbd uuidgen; do
    command -v "$t" >/dev/null || die "$t not installed (apt packages: tests/deps/rbd.txt)"
  done
  if healthy; then say "cluster already up and HEALTH_OK ($CONF)"; return 0; fi
  down   # stale or half-made state: start from scratch
  mkdir -p "$D"/{mon,mgr,osd,run,log,crash}
  local t0 tl now
  t0=$(date +%s%N); tl=$t0
  step() {
    now=$(date +%s%N)
    printf 'ceph.sh: %-30s %6d ms (total %6d ms)\n' "$1" $(((now - tl) / 1000000)) $(((now - t0) / 1000000))
    tl=$now
  }
  local fsid; fsid=$(uuidgen)
  cat > "$CONF" <<EOF
[global]
fsid = $fsid
mon initial members = a
mon host = $MON_ADDR
public network = 127.0.0.0/8
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $D/keyring.\$name
run dir = $D/run
crash dir = $D/crash
mon data = $D/mon/\$id
mgr data = $D/mgr/\$id
osd data = $D/osd/\$id
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
osd crush chooseleaf type = 0
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $((OSD_SIZE_GB * 1024 * 1024 * 1024))
osd memory target = 939524096
# clients (the tests, libvstor): no log file, per-process admin socket in run dir
log file =
[mon]
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
[mgr]
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
[osd]
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
EOF
  ceph-authtool --create-keyring "$D/keyring.mon.a" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$D/keyring.client.admin" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$D/keyring.mon.a" --import-keyring "$D/keyring.client.admin" >/dev/null
  monmaptool --create --addv a "$MON_ADDR" --fsid "$fsid" "$D/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring.mon.a"
  ceph-mon -c "$CONF" -i a
  c mon stat >/dev/null || die "the monitor did not answer (see $D/log/mon.a.log)"
  step "mon up"
  mkdir -p "$D/mgr/x"
  c auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$D/keyring.mgr.x"
  ceph-mgr -c "$CONF" -i x
  step "mgr started"
  local uuid key id
  uuid=$(uuidgen); key=$(ceph-authtool --gen-print-key)
  echo "{\"cephx_secret\": \"$key\"}" > "$D/osd-secret.json"
  id=$(c osd new "$uuid" -i "$D/osd-secret.json")
  rm -f "$D/osd-secret.json"
  [ "$id" = 0 ] || die "unexpected OSD id '$id'"
  ceph-authtool --create-keyring "$D/keyring.osd.0" -n osd.0 --add-key "$key" >/dev/null
  mkdir -p "$D/osd/0"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >"$D/log/mkfs.osd.0.out" 2>&1 ||
    { cat "$D/log/mkfs.osd.0.out" >&2; die "ceph-osd --mkfs failed"; }
  step "osd mkfs"
  ceph-osd -c "$CONF" -i 0 2>>"$D/log/start.osd.0.err"
  step "osd started"
  # pools can be made while the OSD boots; the PGs peer when it is up
  for p in $POOLS; do
    c osd pool create "$p" 8 8 >/dev/null 2>&1
    c osd pool application enable "$p" rbd >/dev/null 2>&1
  done
  c auth get-or-create client.vstor mon 'profile rbd' osd 'profile rbd' mgr 'profile rbd' \
    -o "$D/keyring.client.vstor"
  step "pools + client.vstor"
  local deadline=$(( $(date +%s) + HEALTH_TIMEOUT )) h=""
  while :; do
    h=$(timeout 15 ceph --connect-timeout 10 health 2>/dev/null || true)
    if [[ $h == HEALTH_OK* ]] && c pg stat 2>/dev/null | grep -Eq '([0-9]+) pgs: \1 active\+clean'; then break; fi
    [ "$(date +%s)" -lt "$deadline" ] || { c -s >&2 || true; die "no HEALTH_OK after ${HEALTH_TIMEOUT}s (last: $h)"; }
    sleep 0.5
  done
  step "HEALTH_OK"
  timeout 60 rbd namespace create rbd/ns1
  step "namespace rbd/ns1"
  say "cluster up in $(( ($(date +%s%N) - t0) / 1000000 )) ms, CEPH_CONF=$CONF"
}

case ${1:-} in
up) up ;;
down) down ;;
status) healthy ;;
env) echo "CEPH_CONF=$CONF" ;;
stop-mon)
  p=$(pid_of mon.a) || die "no mon pid file"
  kill "$p"; for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && die "mon $p did not stop"; say "mon.a ($p) stopped" ;;
start-mon)
  alive mon.a && { say "mon.a already running"; exit 0; }
  ceph-mon -c "$CONF" -i a; c mon stat >/dev/null; say "mon.a restarted" ;;
pause-osd) kill -STOP "$(pid_of osd.0)"; say "osd.0 paused" ;;
resume-osd) kill -CONT "$(pid_of osd.0)"; say "osd.0 resumed" ;;
wait-ok)   # wait (bounded: $2 s, default 60) until HEALTH_OK with all PGs active+clean
  deadline=$(( $(date +%s) + ${2:-60} ))
  until timeout 15 ceph --connect-timeout 10 health 2>/dev/null | grep -q HEALTH_OK &&
        c pg stat 2>/dev/null | grep -Eq '([0-9]+) pgs: \1 active\+clean'; do
    [ "$(date +%s)" -lt "$deadline" ] || die "no HEALTH_OK after ${2:-60}s"
    sleep 0.5
  done
  say "HEALTH_OK" ;;
*) echo "usage: ceph.sh up|down|status|env|stop-mon|start-mon|pause-osd|resume-osd|wait-ok [S]" >&2; exit 2 ;;
esac
