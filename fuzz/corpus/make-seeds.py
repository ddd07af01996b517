#!/usr/bin/python3
"""Write the seed corpora fuzz/corpus/{uri,spec,size,journal}/ (one input a
file, named by content hash).  Real forms from the docs, tests and lab
logs, plus the refusals each parser must keep making.  Re-run after
editing; libFuzzer reads these, never writes them.
SPDX-License-Identifier: LGPL-2.1-or-later"""
import hashlib, os, struct

here = os.path.dirname(os.path.abspath(__file__))

URI = """/var/lib/images/vm1.img
file:/var/lib/images/vm1.img
file:///var/lib/images/vm1.img
/srv/img/disk with space.img
/srv/img/name'with;shell$(meta)`chars`.img
loop:/dev/loop0
loop:/dev/loop17
/dev/loop3
loop:/dev/sda
loop:/dev/loop
lvm:vg0/root
lvm:vg-data/lv_home+1
lvm:vg0/a/b
lvm:-vg/lv
lvm:vg0/..
/dev/vg0/root
/dev/mapper/vg0-root
/dev/mapper/vg--a-lv--b
/dev/mapper/noseparator
/dev/mapper/a-b-c
/dev/disk/by-id/wwn-0x5000
/dev/sda1
libvirt:vm1/vda
libvirt:vm1/vdb?uri=qemu:///system
libvirt:vm1/sda?uri=qemu%2Bssh://host/system&mode=ro
libvirt:6f1e4c9a-0d4b-4a37-9b36-7e1e0b3c2f10/vda
libvirt:my%20vm/vda
libvirt:vm1/vda?uri=
libvirt:vm1/vda?uri=a&uri=b
libvirt:vm1/vda?bogus=1
libvirt:vm1/
libvirt:/vda
libvirt:vm1/vd-a
xen:vm1/xvda
xen:5/xvda1
xen:vm1/xvda?x=1
rbd:rbd/vm1-disk
rbd:pool/ns/image
rbd:pool/image@snap1
rbd:pool/image?id=admin&conf=/etc/ceph/ceph.conf
rbd:pool/image?conf=relative.conf
rbd:pool//image
rbd:pool/image@
rbd:pool
relative/path.img
./disk.img
/a/../etc/passwd
/a/..
/
nbd:host:10809
qcow2-but-not-spec
file:relative
/img%0Aname
/tab\there
""".splitlines()

SPEC = """phy:/dev/vg0/vm1,xvda,w
phy:/dev/vg0/vm1,xvda1,r
file:/var/lib/xen/images/vm1.img,xvda,w
tap:aio:/var/lib/xen/images/vm1.img,xvda,w
tap2:aio:/srv/vm1.img,hda,w
tap:qcow2:/srv/vm1.qcow2,xvda,w
tap:vhd:/srv/vm1.vhd,xvdb,r
aio:/srv/vm1.img,xvda,w
raw:/srv/vm1.img,xvda,w
qcow2:/srv/vm1.qcow2,xvda,w
/srv/vm1.img,raw,xvda,rw
/dev/vg0/vm1,raw,xvda,w
/dev/loop0,,xvda,w!
/srv/vm1.img,,hdc:cdrom,r
/srv/vm1.iso,raw,hdc,ro,devtype=cdrom
format=raw, vdev=xvda, access=rw, target=/srv/vm1.img
vdev=xvda,access=w,target=/dev/vg0/vm1
target=/srv/with,comma.img
format=qcow2,vdev=xvdb,backendtype=qdisk,target=/srv/b.qcow2
vdev=xvda,script=block-drbd,target=/dev/drbd0
vdev=xvda,discard,target=/dev/vg0/x
vdev=xvda,no-discard,direct-io-safe,target=/dev/vg0/x
vdev=xvda,colo-host=1.2.3.4,target=/dev/vg0/x
/srv/vm1.img,raw,xvda,rw,extra
/srv/vm1.img,bogus,xvda,rw
/srv/vm1.img,raw,1xvda,rw
/srv/vm1.img,raw,xvda,maybe
vdev=xvda,vdev=xvdb,target=/x
unknown=1,target=/x
,,xvda,w
relative.img,raw,xvda,w
phy:/dev/mapper/vg0-vm1,xvda,w
phy:/dev/vg0/vm1,xvda,w,cdrom
""".splitlines()

SIZE = [(0, s) for s in """0
1
512
1048576
10G
10g
512M
512MiB
512MB
1T
1P
1E
8E
16E
1K
1KiB
1kib
1kb
100X
10GiBs
-1
+-1
-10G
+10G
+0
+1
++1

 1G
1G 
1.5G
0x10
18446744073709551615
18446744073709551616
9223372036854775807
9223372036854775808
8388607T
8388608T
99999999999999999999G""".splitlines()]
SIZE += [(2**63 - 1, "+1"), (2**63 - 1024, "+1K"), (2**64 - 1, "+0"), (10 << 30, "+10G"),
         (10 << 30, "+1"), (2**62, "+4E"), (2**62, "+3E")]

REC = {
    "extend": {"old_size": "335544320", "new_size": "603979776", "file_id": "1792:131",
               "path": "/var/tmp/vstor-test/pool/ext.img", "step": "grown"},
    "snapshot": {"dest": "/var/tmp/pool/s.snap", "dest_created": "1", "frozen": "/var/tmp/pool/s.img.mnt"},
    "mirror": {"dest": "/var/tmp/pool/m.copy", "step": "switching", "dest_created": "1",
               "loops": "/dev/loop3:rw,/dev/loop4:ro"},
}
JOURNAL = []
for op, kv in REC.items():
    lines = ["# libvstor journal record v1", "op=" + op, "vol=/var/tmp/pool/x.img", "backend=file",
             "pid=4242", "pstart=123456"] + [k + "=" + v for k, v in kv.items()]
    JOURNAL.append("\n".join(lines) + "\n")
JOURNAL += [
    "op=snapshot\nbackend=lvm\nvol=lvm:vg0/root\norigin_suspended=vg0-root\n",
    "op=mirror\nbackend=libvirt\nvol=libvirt:vm1/vda\ndomain_xml=<domain>\\n  <name>vm1</name>\\n</domain>\n",
    "op=extend\nbackend=file\npath=/a\\\\b\\nc\n",
    "op=extend\nbackend=file",           # no final newline
    "op=extend\n",                       # no backend
    "backend=file\n",                    # no op
    "op=extend\nbackend=file\nnoequals\n",
    "op=extend\nbackend=file\nBad-Key=1\n",
    "op=extend\nbackend=file\nk=bad\\escape\n",
    "op=extend\nbackend=file\nk=trailing\\\n",
    "op=extend\nbackend=file\n=empty key\n",
    "op=extend\nbackend=file\nop=snapshot\n",
    "\n\n#comment only\n",
    "",
    "op=extend\r\nbackend=file\r\n",
]

def write(name, items):
    d = os.path.join(here, name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.unlink(os.path.join(d, old))
    for b in items:
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()[:16]), "wb") as f:
            f.write(b)
    print(name, len(set(items)))

write("uri", [l.replace("\\t", "\t").encode() for l in URI if l] + [b"", b"/x\x00/y"])
write("spec", [l.encode() for l in SPEC if l])
write("size", [struct.pack("<Q", c) + t.encode() for c, t in SIZE])
write("journal", [j.encode() for j in JOURNAL])
