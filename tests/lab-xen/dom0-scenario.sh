#!/bin/bash
# Runs in dom0 (from dom0-init.sh): start the PV domU "du1" with a
# file-backed xvda, wait until the guest sees it, run the test program
# ($LAB_TEST, TAP lines on stdout) against it, destroy the domU.  Every
# result line goes to /share/results as soon as it is known (the host
# turns them into TAP for meson); timings go to /share/figures.
R=/share/results F=/share/figures
say() { echo "$*" >> $R; sync $R 2>/dev/null; echo "LABXEN: $*"; }
fig() { echo "$*" >> $F; echo "LABXEN: figure $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
KVER=$(uname -r)
CONLOG=/var/log/xen/console/guest-du1.log
export LAB_DOM=du1 LAB_CONLOG=$CONLOG LAB_IMG=/tmp/du1-xvda.img LAB_IMG2=/tmp/du1-xvdb.img
truncate -s 64M $LAB_IMG
truncate -s 32M $LAB_IMG2
cat > /tmp/du1.cfg <<EOC
name = "du1"
type = "pv"
kernel = "/share/vmlinuz"
ramdisk = "/share/domU.cpio.gz"
extra = "console=hvc0 rdinit=/init quiet"
memory = 192
vcpus = 1
disk = [ 'format=raw,vdev=xvda,access=rw,target=$LAB_IMG' ]
on_crash = "preserve"
EOC
t0=$(now)
if ! xl create /tmp/du1.cfg > /tmp/create.log 2>&1; then
  say "not ok - xl create du1 (PV, file-backed xvda)"
  tail -30 /tmp/create.log; tail -40 /var/log/xen/xen-hotplug.log 2>/dev/null
  exit 1
fi
say "ok - xl create du1 (PV, file-backed xvda)"
fig "xl_create_s $(echo "$(now) - $t0" | bc)"
for i in $(seq 600); do grep -q "xvda size=" $CONLOG 2>/dev/null && break; sleep 0.2; done
if grep -q "xvda size=" $CONLOG 2>/dev/null; then
  say "ok - domU du1 sees xvda ($(grep -m1 'xvda size=' $CONLOG | tr -d '\r'))"
  fig "create_to_guest_disk_s $(echo "$(now) - $t0" | bc)"
else
  say "not ok - domU du1 never reported xvda"; tail -20 $CONLOG; exit 1
fi
if [ -n "${LAB_TEST:-}" ]; then
  t1=$(now)
  "$LAB_TEST" "$@" | while IFS= read -r l; do
    case $l in
      ok*|"not ok"*) say "$l" ;;
      "# figure "*) fig "${l#"# figure "}" ;;
      *) echo "$l" ;;
    esac
  done
  fig "test_program_s $(echo "$(now) - $t1" | bc)"
fi
t2=$(now)
xl destroy du1 && say "ok - xl destroy du1" || say "not ok - xl destroy du1"
fig "destroy_s $(echo "$(now) - $t2" | bc)"
say "END"
