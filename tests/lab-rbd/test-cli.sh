#!/bin/bash
# lab-rbd: the vstor CLI on RBD images (run through run-lab.sh: CEPH_CONF set).
# Usage: test-cli.sh PATH/TO/vstor
set -uo pipefail
V=$1
export VSTOR_STATE_DIR=$(mktemp -d /tmp/vstor-rbd-cli.XXXXXX)
I=cli$$
pass=0 fail=0
ok() { if "$@"; then pass=$((pass + 1)); echo "ok $((pass + fail)) - $T"; else fail=$((fail + 1)); echo "not ok $((pass + fail)) - $T"; fi; }
size() { rbd info --format json "$1" | jq -r .size; }
cleanup() { rbd rm --no-progress rbd2/$I >/dev/null 2>&1; rbd snap purge --no-progress rbd/$I >/dev/null 2>&1; rbd rm --no-progress rbd/$I >/dev/null 2>&1; rm -rf "$VSTOR_STATE_DIR"; }
trap cleanup EXIT
rbd create --size 64M rbd/$I || { echo "Bail out! rbd create"; exit 1; }
rbd bench --io-type write --io-size 4M --io-total 16M rbd/$I >/dev/null

T="info shows the rbd layer"; ok bash -c "'$V' info rbd:rbd/$I | grep -q 'storage *rbd *rbd/$I'"
T="info --json names the features"; ok bash -c "'$V' --json info rbd:rbd/$I | jq -e '.. | strings | select(test(\"exclusive-lock\"))' >/dev/null"
T="caps: freeze no, mirror yes"; ok bash -c "'$V' caps rbd:rbd/$I | grep -q 'freeze *no' && '$V' caps rbd:rbd/$I | grep -q 'mirror *yes'"
T="extend +64M"; ok "$V" -q extend rbd:rbd/$I +64M
T="rbd info sees 128 MiB"; ok test "$(size rbd/$I)" = 134217728
T="shrink refused with exit 1"; ok bash -c "'$V' -q extend rbd:rbd/$I 64M; test \$? = 1"
T="dry-run extend changes nothing"; ok bash -c "'$V' -n extend rbd:rbd/$I 1G >/dev/null && test \$(rbd info --format json rbd/$I | jq -r .size) = 134217728"
T="snapshot s1"; ok "$V" -q snapshot rbd:rbd/$I s1
T="rbd snap ls shows s1"; ok bash -c "rbd snap ls rbd/$I | grep -qw s1"
SUM=$(rbd export --no-progress rbd/$I - | md5sum)
T="mirror --pivot to rbd2"; ok "$V" -q mirror --pivot rbd:rbd/$I rbd:rbd2/$I
T="image now in rbd2 with s1, same data"; ok bash -c "rbd snap ls rbd2/$I | grep -qw s1 && test \"\$(rbd export --no-progress rbd2/$I - | md5sum)\" = '$SUM' && ! rbd info rbd/$I >/dev/null 2>&1"
T="unknown image: exit 1, NOENT"; ok bash -c "'$V' info rbd:rbd/nosuch$I 2>&1 | grep -q NOENT"
echo "1..$((pass + fail))"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
