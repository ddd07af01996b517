#!/bin/sh
# domU /init (busybox): load xen-blkfront, then every second, for each xvd
# disk, read one block (blkback notices a resize when it has I/O to do) and
# print "DOMU: t=N xvdX size=SECTORS" on the console (hvc0, logged by
# xenconsoled in dom0).  t keeps counting: a paused guest prints nothing.
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "DOMU: up, kernel $(cat /proc/version)"
while read -r m; do insmod /mods/$m; done < /mods/order
i=0
while true; do
  for d in /sys/block/xvd*; do
    [ -e "$d" ] || continue
    n=${d##*/}
    dd if=/dev/$n of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null
    echo "DOMU: t=$i $n size=$(cat $d/size)"
  done
  [ -e /sys/block/xvda ] || echo "DOMU: t=$i no xvd devices"
  i=$((i+1)); sleep 1
done
