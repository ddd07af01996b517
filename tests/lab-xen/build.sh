#!/bin/bash
# Build the Xen lab's boot artifacts (cached, rebuilt when this script or the
# domU init changes):
#   $XL/xen                     Xen 4.17 hypervisor, uncompressed (QEMU -kernel
#                               multiboot wants the ELF32 image, not the .gz)
#   $XL/vmlinuz                 Debian's generic amd64 kernel (dom0 and domU;
#                               the cloud flavour has no XEN_DOM0 and no 9p)
#   $XL/k/lib/modules/KVER      its modules (dom0 bind-mounts them at /lib/modules)
#   $XL/dom0-stage1.cpio.gz     busybox: 9p + overlay, then switch_root to the
#                               host's / (read-only) under a tmpfs overlay
#   $XL/domU.cpio.gz            busybox + xen-blkfront, du-init.sh as /init
# $XL = ${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}/xen.  Downloaded .debs are unpacked
# (no postinst): the host's /boot and /lib/modules are untouched.
# Derived from the shared recipe (../shared/lab/xen).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${VSTOR_LAB_DIR:-/var/tmp/vstor-lab}
XL=$LAB/xen
mkdir -p "$XL/debs" "$XL/runs"
exec 9>"$XL/.build.lock"; flock 9
stamp="$XL/.stamp-$(cat "$0" "$HERE/du-init.sh" | sha256sum | cut -c1-16)"
if [ -e "$stamp" ] && [ -s "$XL/xen" ] && [ -s "$XL/vmlinuz" ] && [ -s "$XL/domU.cpio.gz" ]; then
  exit 0
fi
t0=$(date +%s%N)
export DEBIAN_FRONTEND=noninteractive
need=()
for p in xen-hypervisor-4.17-amd64 xen-utils-4.17 busybox-static cpio kmod qemu-system-x86; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
[ ${#need[@]} -eq 0 ] || apt-get install -o DPkg::Lock::Timeout=300 -y -q --no-install-recommends \
  "${need[@]}" >/dev/null
XENGZ=$(ls /boot/xen-4.17-amd64.gz 2>/dev/null || ls /boot/xen-4*.gz | head -1)
zcat "$XENGZ" > "$XL/xen.tmp" && mv "$XL/xen.tmp" "$XL/xen"

KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$KPKG" ] || { echo "lab-xen build: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
KVER=${KPKG#linux-image-}
cd "$XL/debs"
ls "${KPKG}"_*.deb >/dev/null 2>&1 || apt-get download -q "$KPKG" >/dev/null 2>&1 \
  || { echo "lab-xen build: apt-get download $KPKG failed" >&2; exit 1; }
cd "$XL"
if [ ! -e "k/.$KVER.done" ]; then
  rm -rf k; mkdir k
  dpkg-deb -x debs/"${KPKG}"_*.deb k/
  depmod -b "$XL/k" "$KVER"
  touch "k/.$KVER.done"
fi
cp "k/boot/vmlinuz-$KVER" vmlinuz
echo "$KVER" > kver
MD=$XL/k/lib/modules/$KVER

deps() {  # module files (in load order) for the named modules
  for m in "$@"; do
    modprobe -d "$XL/k" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++'
}

# ---------- dom0 stage 1 ----------
rm -rf d0 && mkdir -p d0/{bin,dev,proc,sys,lower,upper,newroot,mods}
cp /bin/busybox d0/bin/busybox
for a in sh mount umount insmod switch_root mkdir echo cat sleep poweroff ls ln; do ln -s busybox d0/bin/$a; done
MODS=""
for f in $(deps 9pnet_virtio 9p overlay virtio_pci); do
  b=$(basename "$f"); cp "$f" d0/mods/; MODS="$MODS $b"
done
cat > d0/init <<EOI
#!/bin/sh
# dom0 stage 1: the host's / over 9p (read-only) under a tmpfs overlay, the
# run directory (9p, writable) at /share, then /share/stage2.sh as PID 1.
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "STAGE1: dom0 initramfs up"
for m in $MODS; do insmod /mods/\$m || echo "insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /lower || { echo "STAGE1: 9P FAILED"; poweroff -f; }
mount -t tmpfs -o size=768m tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || { echo "STAGE1: OVERLAY FAILED"; poweroff -f; }
mkdir -p /newroot/share /newroot/usr/lib/modules/$KVER
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /newroot/share || { echo "STAGE1: SHARE FAILED"; poweroff -f; }
mount --bind /newroot$MD /newroot/usr/lib/modules/$KVER
for d in proc sys dev; do mount --move /\$d /newroot/\$d; done
echo "STAGE1: switching root"
exec switch_root /newroot /bin/bash /share/stage2.sh
EOI
chmod +x d0/init
(cd d0 && find . | cpio -H newc -o --quiet | gzip -1) > dom0-stage1.cpio.gz

# ---------- domU ----------
rm -rf du && mkdir -p du/{bin,dev,proc,sys,mods}
cp /bin/busybox du/bin/busybox
for a in sh mount insmod cat sleep echo dd ls poweroff blockdev; do ln -s busybox du/bin/$a; done
for f in $(deps xen-blkfront); do cp "$f" du/mods/; echo "$(basename "$f")" >> du/mods/order; done
cp "$HERE/du-init.sh" du/init; chmod +x du/init
(cd du && find . | cpio -H newc -o --quiet | gzip -1) > domU.cpio.gz

rm -f "$XL"/.stamp-*; touch "$stamp"
echo "lab-xen build: xen $(basename "$XENGZ"), kernel $KVER, $(( ($(date +%s%N) - t0) / 1000000 )) ms"
