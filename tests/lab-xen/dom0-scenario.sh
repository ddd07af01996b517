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
# LVM for a phy: vbd on an LV (xvdc): a VG on two loop PVs, so the LV can
# move.  dom0 has no udev: LVM makes its own device nodes (overlay /etc).
mkdir -p /etc/lvm /run/lock/lvm
cat > /etc/lvm/lvm.conf <<'EOC'
devices { obtain_device_list_from_udev = 0 external_device_info_source = "none" use_devicesfile = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { use_lvmpolld = 0 locking_dir = "/run/lock/lvm" }
backup { backup = 0 archive = 0 }
EOC
truncate -s 96M /tmp/pv1.img /tmp/pv2.img
export LAB_PV1=$(losetup -f --show /tmp/pv1.img) LAB_PV2=$(losetup -f --show /tmp/pv2.img)
export LAB_VG=vgx LAB_LV=lv1
LVMDISK=
if lvm pvcreate -q $LAB_PV1 $LAB_PV2 && lvm vgcreate -q $LAB_VG $LAB_PV1 $LAB_PV2 &&
   lvm lvcreate -q -y -L 32M -n $LAB_LV $LAB_VG $LAB_PV1 && [ -b /dev/$LAB_VG/$LAB_LV ]; then
  LVMDISK=", 'phy:/dev/$LAB_VG/$LAB_LV,xvdc,w'"
  say "ok - LVM in dom0: $LAB_VG/$LAB_LV (32 MiB) on $LAB_PV1, second PV $LAB_PV2"
else
  say "not ok - LVM in dom0 (pvcreate/vgcreate/lvcreate on loop devices)"; export LAB_VG=
fi
cat > /tmp/du1.cfg <<EOC
name = "du1"
type = "pv"
kernel = "/share/vmlinuz"
ramdisk = "/share/domU.cpio.gz"
extra = "console=hvc0 rdinit=/init quiet"
memory = 192
vcpus = 1
disk = [ 'format=raw,vdev=xvda,access=rw,target=$LAB_IMG'$LVMDISK ]
on_crash = "preserve"
EOC
# Pitfall: under a loaded TCG the block hotplug scripts (bash, many forks)
# can outrun libxl's hotplug timeout and xl create fails; a failed create
# is cleaned up (destroy) and tried once more, and the TAP line says so.
t0=$(now)
created=
for try in 1 2; do
  if xl create /tmp/du1.cfg > /tmp/create.log 2>&1; then created=$try; break; fi
  echo "LABXEN: xl create attempt $try failed:"
  grep -vE '^xc: detail|elf_' /tmp/create.log | tail -30; tail -40 /var/log/xen/xen-hotplug.log 2>/dev/null
  xl destroy du1 >/dev/null 2>&1; sleep 2
done
if [ -z "$created" ]; then
  say "not ok - xl create du1 (PV, file-backed xvda, LV xvdc): failed twice"
  exit 1
fi
say "ok - xl create du1 (PV, file-backed xvda, LV xvdc)$([ "$created" = 2 ] && echo ' on the second attempt')"
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
if [ -n "${LAB_VSTOR:-}" ]; then
  t1=$(now)
  bash /share/cli.sh "$LAB_VSTOR" | while IFS= read -r l; do
    case $l in
      "ok - "*) say "ok - cli: ${l#ok - }" ;;
      "not ok - "*) say "not ok - cli: ${l#not ok - }" ;;
      *) echo "$l" ;;
    esac
  done
  fig "cli_s $(echo "$(now) - $t1" | bc)"
fi
t2=$(now)
xl destroy du1 && say "ok - xl destroy du1" || say "not ok - xl destroy du1"
fig "destroy_s $(echo "$(now) - $t2" | bc)"
say "END"
