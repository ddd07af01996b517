#!/bin/bash
# Build the lab guest: Debian 12's cloud kernel + a busybox initramfs holding
# lvm2, dmsetup, e2fsprogs, xfsprogs, thin-provisioning-tools and qemu-ga.
# Downloaded .debs are unpacked (no postinst); the host's kernel is untouched.
#
# Output (cached, rebuilt when this script changes):
#   $VSTOR_LAB_DIR/out/vmlinuz, $VSTOR_LAB_DIR/out/base.cpio.gz
# Default VSTOR_LAB_DIR: /var/tmp/vstor-lab.  Derived from ../shared/lab recipes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
FLAVOUR=${FLAVOUR:-cloud-amd64}
mkdir -p "$LAB"/{debs,x,out}
# One builder at a time (several lab suites share $LAB).
exec 9>"$LAB/.build.lock"; flock 9
stamp="$LAB/out/.stamp-$(sha256sum "$0" | cut -c1-16)"
if [ -e "$stamp" ] && [ -s "$LAB/out/vmlinuz" ] && [ -s "$LAB/out/base.cpio.gz" ]; then
  exit 0
fi
t0=$(date +%s%N)
export DEBIAN_FRONTEND=noninteractive
need=()
for p in lvm2 dmsetup e2fsprogs kmod cpio busybox-static qemu-utils qemu-system-x86; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
[ ${#need[@]} -eq 0 ] || apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null

KPKG=$(apt-cache depends "linux-image-$FLAVOUR" | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$KPKG" ] || { echo "build-initramfs: cannot resolve linux-image-$FLAVOUR (apt-get update?)" >&2; exit 1; }
cd "$LAB/debs"
for p in "$KPKG" busybox-static qemu-guest-agent xfsprogs libinih1 liburcu8 thin-provisioning-tools; do
  ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -q "$p" >/dev/null 2>&1 \
    || { echo "build-initramfs: apt-get download $p failed" >&2; exit 1; }
done
cd "$LAB"
for d in debs/*.deb; do
  s=x/.$(basename "$d").done
  [ -e "$s" ] || { dpkg-deb -x "$d" x/; touch "$s"; }
done
KVER=${KPKG#linux-image-}
cp "x/boot/vmlinuz-$KVER" out/vmlinuz
depmod -b "$LAB/x" "$KVER"

R=$LAB/rootfs; rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/sbin,usr/bin,etc/lvm,proc,sys,dev,run/lock/lvm,tmp,mnt,lib/modules,var/run,var/tmp}
cp x/bin/busybox "$R/bin/"
for a in $("$R/bin/busybox" --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done

copy_bin() {  # a dynamic binary and its shared libraries, same paths
  local b=$1 dst=$2
  cp -L "$b" "$R/$dst"
  LD_LIBRARY_PATH=$LAB/x/usr/lib/x86_64-linux-gnu:$LAB/x/lib/x86_64-linux-gnu ldd "$b" \
    | awk '/=>/{print $3} /^\s*\/lib/{print $1}' | while read -r l; do
      [ -n "$l" ] && [ -e "$l" ] || continue
      local d=${l#"$LAB"/x}
      mkdir -p "$R$(dirname "$d")"; cp -Ln "$l" "$R$d" 2>/dev/null || true
    done
}
copy_bin /sbin/lvm sbin/lvm
copy_bin /sbin/dmsetup sbin/dmsetup
copy_bin /sbin/mke2fs sbin/mke2fs
copy_bin /sbin/e2fsck sbin/e2fsck
copy_bin /sbin/resize2fs sbin/resize2fs
copy_bin x/usr/sbin/qemu-ga sbin/qemu-ga
copy_bin x/sbin/mkfs.xfs sbin/mkfs.xfs
copy_bin x/usr/sbin/xfs_growfs usr/sbin/xfs_growfs 2>/dev/null || true
copy_bin x/sbin/xfs_repair sbin/xfs_repair
copy_bin x/usr/sbin/xfs_db usr/sbin/xfs_db 2>/dev/null || true
copy_bin x/usr/sbin/pdata_tools usr/sbin/pdata_tools
for t in thin_check thin_repair thin_dump thin_restore cache_check; do ln -sf pdata_tools "$R/usr/sbin/$t"; done
rm -f "$R/bin/mke2fs" "$R/bin/mkfs.ext2" "$R/bin/e2fsck" "$R/bin/fsck"
ln -sf mke2fs "$R/sbin/mkfs.ext4"; ln -sf e2fsck "$R/sbin/fsck.ext4"
for c in pvcreate pvs pvmove pvremove pvdisplay vgcreate vgs vgextend vgreduce vgchange vgremove vgdisplay \
         lvcreate lvs lvextend lvresize lvremove lvconvert lvchange lvscan lvdisplay vgscan pvscan; do
  ln -sf lvm "$R/sbin/$c"
done
mkdir -p "$R/lib64"; cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
cat > "$R/etc/lvm/lvm.conf" <<'EOC'
devices { obtain_device_list_from_udev = 0 external_device_info_source = "none" }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { use_lvmpolld = 0 locking_dir = "/run/lock/lvm" }
backup { backup = 0 archive = 0 }
EOC
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"; echo 'root:x:0:' > "$R/etc/group"

MODS="virtio_pci virtio_blk virtio_console virtio_scsi virtio_net sd_mod dm_mod dm_snapshot dm_mirror dm_thin_pool dm_raid raid1 dm_zero loop ext4 xfs btrfs 9p 9pnet_virtio"
: > "$R/modules.list"
for m in $MODS; do
  # Modules this kernel flavour lacks (cloud-amd64 has no 9p) are skipped.
  { modprobe -d "$LAB/x" -S "$KVER" --show-depends "$m" 2>/dev/null || true; } | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r f; do
  rel=${f#"$LAB"/x}
  mkdir -p "$R$(dirname "$rel")"; cp "$f" "$R$rel"; echo "$rel" >> "$R/modules.list"
done

cat > "$R/init" <<'EOI'
#!/bin/sh
# lab=test : run /test.sh, print its rc, power off.
# lab=agent: run /agent-setup.sh if present, start qemu-ga, idle.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
while read -r m; do insmod "$m" 2>/dev/null; done < /modules.list
echo "LAB: init up after $(cut -d' ' -f1 /proc/uptime)s; kernel $(uname -r)"
mode=test; for a in $(cat /proc/cmdline); do case $a in lab=*) mode=${a#lab=};; esac; done
if [ "$mode" = agent ]; then
  port=
  for i in $(seq 100); do
    for p in /sys/class/virtio-ports/*; do
      [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/$(basename $p)
    done
    [ -n "$port" ] && break; sleep 0.1
  done
  [ -x /agent-setup.sh ] && /agent-setup.sh
  echo "LAB: starting qemu-ga on $port"
  mkdir -p /var/lib/qemu-ga
  qemu-ga -m virtio-serial -p "$port" -t /var/lib/qemu-ga -f /run/qemu-ga.pid -d
  exec setsid cttyhack sh -c 'while :; do sleep 3600; done'
fi
if [ -x /test.sh ]; then /test.sh; echo "LAB: test.sh rc=$?"; else echo "LAB: no /test.sh"; fi
echo "LAB: done after $(cut -d' ' -f1 /proc/uptime)s"
sync; poweroff -f
EOI
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1 > "$LAB/out/base.cpio.gz")
rm -f "$LAB"/out/.stamp-*; touch "$stamp"
echo "build-initramfs: kernel $KVER, initramfs $(du -h "$LAB/out/base.cpio.gz" | cut -f1), $(( ($(date +%s%N) - t0) / 1000000 )) ms"
