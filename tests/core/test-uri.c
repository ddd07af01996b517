/* libvstor core tests - the URI and disk-spec parser (lib/uri.c)
 *
 * Every grammar branch is parsed with the internal vstor__uri_parse() and
 * its fields checked; every malformed form is refused both by the parser
 * and by the public vstor_open() (INVAL, errno, "vstor_open: " prefix, the
 * input quoted, nothing returned).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include "core-test.h"
#include "backend.h"

static vstor_ctx *ctx;

static int setup(void **state)
{
  (void)state;
  ctx = vstor_ctx_new(0);
  return ctx ? 0 : -1;
}

static int teardown(void **state)
{
  (void)state;
  vstor_ctx_free(ctx);
  return 0;
}

static struct vstor_uri *parse(const char *text)
{
  struct vstor_uri *u = (struct vstor_uri *)1;
  if (vstor__uri_parse(text, &u) != 0) {
    print_error("\"%s\" refused: %s\n", text, vstor_last_error());
    fail();
  }
  assert_non_null(u);
  return u;
}

#define F(u, field, want)                                                    \
  do {                                                                       \
    const char *w_ = (want);                                                 \
    if (w_) {                                                                \
      if (!(u)->field) { print_error(#field " is NULL, want \"%s\"\n", w_); fail(); } \
      assert_string_equal((u)->field, w_);                                   \
    } else if ((u)->field) {                                                 \
      print_error(#field " is \"%s\", want NULL\n", (u)->field);             \
      fail();                                                                \
    }                                                                        \
  } while (0)

/* Refused by the parser and by vstor_open, with `errnum`; `quoted` is
 * the input as quoted in the message (NULL: do not check). */
static void bad_q(const char *text, int errnum, const char *quoted, const char *why)
{
  struct vstor_uri *u = (struct vstor_uri *)1;
  if (vstor__uri_parse(text, &u) != -1) {
    print_error("\"%s\" accepted, should be refused (%s)\n", text, why);
    vstor__uri_free(u);
    fail();
  }
  assert_null(u);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  assert_int_equal(vstor_last_errno(), errnum);
  vstor_vol *v = (vstor_vol *)1;
  assert_int_equal(vstor_open(ctx, text, 0, &v), -1);
  assert_null(v);
  assert_error(VSTOR_E_INVAL, errnum, "vstor_open", quoted);
  if (why && !strstr(vstor_last_error(), why)) {
    print_error("\"%s\": message does not say \"%s\": %s\n", text, why, vstor_last_error());
    fail();
  }
}
static void bad(const char *text, const char *why) { bad_q(text, EINVAL, text, why); }

/* ---- file ---------------------------------------------------------- */

static void test_bare_path(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("/var/lib/images/vm1.raw");
  F(u, backend, "file");
  F(u, path, "/var/lib/images/vm1.raw");
  F(u, spec_type, NULL);
  F(u, vg, NULL);
  F(u, domain, NULL);
  vstor__uri_free(u);
  u = parse("/a/./b c");  /* '.' components and spaces are fine */
  F(u, path, "/a/./b c");
  vstor__uri_free(u);
  u = parse("/a/..b/c..");
  F(u, path, "/a/..b/c..");
  vstor__uri_free(u);
  u = parse("/dev/sda");  /* a plain device: file backend */
  F(u, backend, "file");
  F(u, path, "/dev/sda");
  vstor__uri_free(u);
  u = parse("/dev/disk/by-id/x");
  F(u, backend, "file");
  vstor__uri_free(u);
}

static void test_file_scheme(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("file:/img");
  F(u, backend, "file");
  F(u, path, "/img");
  vstor__uri_free(u);
  u = parse("file:///srv/img.raw");
  F(u, backend, "file");
  F(u, path, "/srv/img.raw");
  vstor__uri_free(u);
}

static void test_loop(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("loop:/dev/loop7");
  F(u, backend, "file");
  F(u, spec_type, "loop");
  F(u, path, "/dev/loop7");
  vstor__uri_free(u);
  u = parse("/dev/loop12");
  F(u, backend, "file");
  F(u, spec_type, "loop");
  F(u, path, "/dev/loop12");
  vstor__uri_free(u);
}

/* ---- lvm ----------------------------------------------------------- */

static void test_lvm(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("lvm:vg0/lv_root");
  F(u, backend, "lvm");
  F(u, vg, "vg0");
  F(u, lv, "lv_root");
  F(u, path, "/dev/vg0/lv_root");
  vstor__uri_free(u);
  u = parse("lvm:my.vg+1/a-b_c.d");
  F(u, vg, "my.vg+1");
  F(u, lv, "a-b_c.d");
  vstor__uri_free(u);
  u = parse("/dev/vg0/data");
  F(u, backend, "lvm");
  F(u, vg, "vg0");
  F(u, lv, "data");
  F(u, path, "/dev/vg0/data");
  vstor__uri_free(u);
}

static void test_mapper(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("/dev/mapper/vg0-lv0");
  F(u, backend, "lvm");
  F(u, vg, "vg0");
  F(u, lv, "lv0");
  F(u, path, "/dev/mapper/vg0-lv0");
  vstor__uri_free(u);
  u = parse("/dev/mapper/my--vg-my--lv");  /* "--" escapes a '-' */
  F(u, vg, "my-vg");
  F(u, lv, "my-lv");
  vstor__uri_free(u);
  u = parse("/dev/mapper/vg-lv--x--");
  F(u, vg, "vg");
  F(u, lv, "lv-x-");
  vstor__uri_free(u);
}

/* ---- libvirt ------------------------------------------------------- */

static void test_libvirt(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("libvirt:vm1/vda");
  F(u, backend, "libvirt");
  F(u, domain, "vm1");
  F(u, disk, "vda");
  F(u, conn, "qemu:///system");  /* the default connection */
  F(u, access, NULL);
  F(u, path, NULL);
  vstor__uri_free(u);
  u = parse("libvirt:4dea22b3-1d52-d8f3-2516-782e98ab3fa0/sdb");
  F(u, domain, "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
  F(u, disk, "sdb");
  vstor__uri_free(u);
}

static void test_libvirt_query(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("libvirt:vm1/vdb?uri=qemu:///session");
  F(u, conn, "qemu:///session");
  F(u, disk, "vdb");
  vstor__uri_free(u);
  u = parse("libvirt:vm1/vdb?uri=qemu%2Bssh%3A%2F%2Froot%40host%2Fsystem&mode=ro");
  F(u, conn, "qemu+ssh://root@host/system");
  F(u, access, "ro");
  vstor__uri_free(u);
  u = parse("libvirt:vm1/vdb?mode=rw&uri=test:///default");
  F(u, conn, "test:///default");
  F(u, access, "rw");
  vstor__uri_free(u);
  /* an RBD network disk: ceph.conf and cephx user of its lower layer */
  u = parse("libvirt:vm1/vdb?conf=/var/lib/ceph/ceph.conf&id=libvirt");
  F(u, conf, "/var/lib/ceph/ceph.conf");
  F(u, client, "libvirt");
  F(u, conn, "qemu:///system");
  vstor__uri_free(u);
}

static void test_libvirt_percent(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("libvirt:my%20vm%2Fx/vda");
  F(u, domain, "my vm/x");
  F(u, disk, "vda");
  vstor__uri_free(u);
  u = parse("libvirt:%41%62c/hd%61");
  F(u, domain, "Abc");
  F(u, disk, "hda");
  vstor__uri_free(u);
}

/* ---- xen ----------------------------------------------------------- */

static void test_xen_vbd(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("xen:guest1/xvda1");
  F(u, backend, "xen");
  F(u, domain, "guest1");
  F(u, disk, "xvda1");
  F(u, conn, NULL);
  vstor__uri_free(u);
  u = parse("xen:7/xvdb");
  F(u, domain, "7");
  vstor__uri_free(u);
}

/* ---- rbd ----------------------------------------------------------- */

static void test_rbd(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("rbd:rbd/vm1-disk0");
  F(u, backend, "rbd");
  F(u, pool, "rbd");
  F(u, image, "vm1-disk0");
  F(u, ns, NULL);
  F(u, snap, NULL);
  F(u, client, NULL);
  F(u, conf, NULL);
  vstor__uri_free(u);
  u = parse("rbd:pool/tenant1/img");
  F(u, pool, "pool");
  F(u, ns, "tenant1");
  F(u, image, "img");
  vstor__uri_free(u);
  u = parse("rbd:pool/img@before-upgrade");
  F(u, image, "img");
  F(u, snap, "before-upgrade");
  vstor__uri_free(u);
  u = parse("rbd:pool/ns/img@s1?id=libvirt&conf=/etc/ceph/ceph.conf");
  F(u, ns, "ns");
  F(u, image, "img");
  F(u, snap, "s1");
  F(u, client, "libvirt");
  F(u, conf, "/etc/ceph/ceph.conf");
  vstor__uri_free(u);
  u = parse("rbd:p/i?conf=/etc/ceph/my%20ceph.conf");
  F(u, conf, "/etc/ceph/my ceph.conf");
  vstor__uri_free(u);
  /* the libvirt connection where a guest using the image is looked for */
  u = parse("rbd:p/i?libvirt=qemu%3A%2F%2F%2Fsystem&id=admin");
  F(u, conn, "qemu:///system");
  F(u, client, "admin");
  vstor__uri_free(u);
}

/* ---- Xen disk specs (xl-disk-configuration(5)) --------------------- */

static void test_spec_phy(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("phy:/dev/vg/lv,xvda1,w");
  F(u, backend, "lvm");     /* the storage below: an LV */
  F(u, vg, "vg");
  F(u, lv, "lv");
  F(u, path, "/dev/vg/lv");
  F(u, spec_type, "phy");
  F(u, format, "raw");
  F(u, vdev, "xvda1");
  F(u, access, "rw");
  vstor__uri_free(u);
  u = parse("phy:/dev/loop3,xvdb,r");
  F(u, backend, "file");
  F(u, path, "/dev/loop3");
  F(u, spec_type, "phy");
  F(u, access, "ro");
  vstor__uri_free(u);
  u = parse("phy:/dev/mapper/vg-lv");  /* no comma: still a spec */
  F(u, backend, "lvm");
  F(u, vg, "vg");
  F(u, vdev, NULL);
  F(u, access, "rw");
  vstor__uri_free(u);
}

static void test_spec_file_tap(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("file:/img,xvda,w");
  F(u, backend, "file");
  F(u, path, "/img");
  F(u, spec_type, "file");
  F(u, format, "raw");
  F(u, vdev, "xvda");
  F(u, access, "rw");
  vstor__uri_free(u);
  u = parse("tap:aio:/img,xvda,r");
  F(u, backend, "file");
  F(u, path, "/img");
  F(u, spec_type, "tap:aio");
  F(u, format, "raw");
  F(u, access, "ro");
  vstor__uri_free(u);
  u = parse("tap:qcow2:/vm/disk.qcow2,xvdb,w");
  F(u, spec_type, "tap:qcow2");
  F(u, format, "qcow2");
  F(u, path, "/vm/disk.qcow2");
  F(u, vdev, "xvdb");
  vstor__uri_free(u);
  u = parse("tap2:vhd:/vm/d.vhd,xvdc,w");
  F(u, spec_type, "tap:vhd");
  F(u, format, "vhd");
  vstor__uri_free(u);
  u = parse("tap:aio:/img");  /* a prefix alone makes it a spec */
  F(u, spec_type, "tap:aio");
  F(u, vdev, NULL);
  vstor__uri_free(u);
}

static void test_spec_positional(void **state)
{
  (void)state;
  /* positional target,format,vdev,access after a key: the first
   * positional is the target */
  struct vstor_uri *u = parse("backendtype=qdisk,/srv/img,qcow2,xvdb,ro");
  F(u, backend, "file");
  F(u, path, "/srv/img");
  F(u, format, "qcow2");
  F(u, vdev, "xvdb");
  F(u, access, "ro");
  F(u, spec_type, "file");
  vstor__uri_free(u);
  u = parse("script=block,/dev/vg/lv,,hda");  /* empty format: raw; access: rw */
  F(u, backend, "lvm");
  F(u, vg, "vg");
  F(u, lv, "lv");
  F(u, format, "raw");
  F(u, vdev, "hda");
  F(u, access, "rw");
  F(u, spec_type, "phy");
  vstor__uri_free(u);
  u = parse("devtype=disk, /img, raw, xvda, w!");  /* spaces after commas */
  F(u, path, "/img");
  F(u, format, "raw");
  F(u, vdev, "xvda");
  F(u, access, "rw");
  vstor__uri_free(u);
  /* after a prefix the next positionals are vdev and access */
  u = parse("file:/img,,");
  F(u, vdev, NULL);
  F(u, access, "rw");
  vstor__uri_free(u);
}

static void test_spec_keys(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("format=raw, vdev=xvdb, access=ro, target=/img,with,commas");
  F(u, backend, "file");
  F(u, path, "/img,with,commas");
  F(u, format, "raw");
  F(u, vdev, "xvdb");
  F(u, access, "ro");
  vstor__uri_free(u);
  u = parse("vdev=xvda,backendtype=qdisk,script=block,devtype=disk,target=/dev/vg/lv");
  F(u, backend, "lvm");
  F(u, vdev, "xvda");
  F(u, spec_type, "phy");
  vstor__uri_free(u);
  u = parse("target=/x");
  F(u, path, "/x");
  vstor__uri_free(u);
}

static void test_spec_legacy(void **state)
{
  (void)state;
  struct vstor_uri *u = parse("raw:/x,hda,w");  /* deprecated format prefix */
  F(u, backend, "file");
  F(u, path, "/x");
  F(u, format, "raw");
  F(u, spec_type, "raw");
  F(u, vdev, "hda");
  F(u, access, "rw");
  vstor__uri_free(u);
  u = parse("file:/isos/debian.iso,hdc:cdrom,r");  /* vdev:cdrom */
  F(u, vdev, "hdc");
  F(u, access, "ro");
  vstor__uri_free(u);
  u = parse("file:/img,xvda,w,cdrom");
  F(u, vdev, "xvda");
  F(u, access, "rw");
  vstor__uri_free(u);
  u = parse("phy:/dev/vg/lv,xvda,w,discard");
  F(u, vdev, "xvda");
  F(u, backend, "lvm");
  vstor__uri_free(u);
  u = parse("phy:/dev/vg/lv,xvda,w,no-discard,direct-io-safe");
  F(u, access, "rw");
  vstor__uri_free(u);
  u = parse("cdrom,devtype=cdrom,vdev=hdc,access=ro,target=/isos/x.iso");
  F(u, vdev, "hdc");
  F(u, path, "/isos/x.iso");
  vstor__uri_free(u);
  u = parse("qcow2:/vm/a.qcow2,xvda,w");
  F(u, format, "qcow2");
  F(u, spec_type, "qcow2");
  vstor__uri_free(u);
}

/* ---- malformed ----------------------------------------------------- */

static void test_bad_general(void **state)
{
  (void)state;
  bad("", "empty");
  bad("img.raw", "relative");
  bad("images/vm1.raw", "relative");
  bad("./img", "relative");
  bad("/a/../etc/shadow", "..");
  bad("/a/b/..", "..");
  bad("/..", "..");
  bad("file:relative", "absolute");
  bad("file://host/img", "absolute");
  bad("file:/a/../b", "..");
  bad("nfs:/export/img", "unknown scheme \"nfs:\"");
  bad("http://example.org/img", "unknown scheme");
  bad("iscsi:iqn.2001-04.com.example:disk", "unknown scheme");
  bad("loop:/dev/loopX", "loop:/dev/loopN");
  bad("loop:/dev/loop", "loop:/dev/loopN");
  bad("loop:/tmp/img", "loop:/dev/loopN");
}

static void test_bad_control(void **state)
{
  (void)state;
  bad("/img\n", "control characters");
  bad("/im\tg", "control characters");
  bad("/img\r", "control characters");
  bad("/a\x7f", "control characters");
  bad("libvirt:vm\x1b/vda", "control characters");
  bad("\n", "control characters");
}

static void test_bad_lvm(void **state)
{
  (void)state;
  bad("lvm:vg", "lvm:VG/LV");
  bad("lvm:vg/lv/x", "one '/'");
  bad("lvm:/lv", "volume group name");
  bad("lvm:vg/", "logical volume name");
  bad("lvm:-vg/lv", "volume group name");
  bad("lvm:vg/-lv", "logical volume name");
  bad("lvm:vg/..", "logical volume name");
  bad("lvm:./lv", "volume group name");
  bad("lvm:vg/l v", "logical volume name");
  bad("lvm:vg/l$v", "logical volume name");
  bad("lvm:vg/l%20v", "logical volume name");
  char name[140] = "lvm:vg/";
  memset(name + 7, 'a', 128);  /* LV names are at most 127 characters */
  name[135] = 0;
  bad(name, "logical volume name");
  bad("/dev/mapper/nodash", "VG-LV");
  bad("/dev/mapper/a-b-c", "VG-LV");
  bad("/dev/mapper/-lv", "VG-LV");
  bad("/dev/mapper/vg-", "VG-LV");
  bad("/dev/mapper/vg-l$v", "VG-LV");
}

static void test_bad_libvirt(void **state)
{
  (void)state;
  bad("libvirt:vm1", "expected libvirt:DOMAIN/DISK");
  bad("libvirt:vm1/", "expected libvirt:DOMAIN/DISK");
  bad("libvirt:/vda", "expected libvirt:DOMAIN/DISK");
  bad("libvirt:", "expected libvirt:DOMAIN/DISK");
  bad("libvirt:a/b/c", "expected libvirt:DOMAIN/DISK");
  bad("libvirt:vm1/vd-a", "disk target");
  bad("libvirt:vm1/vd%20a", "disk target");
  bad("libvirt:vm1/vda?conf=ceph.conf", "absolute");
  bad("libvirt:vm1/vda?libvirt=x", "unknown query parameter \"libvirt\"");
  bad("libvirt:vm%zz/vda", "percent");
  bad("libvirt:vm%2/vda", "percent");
  bad("libvirt:vm%/vda", "percent");
  bad("libvirt:vm%00x/vda", "percent");
  bad("libvirt:vm/vda?uri=%zz", "bad or empty");
  bad("libvirt:vm/vda?uri=", "bad or empty");
  bad("libvirt:vm/vda?uri", "without '='");
  bad("libvirt:vm/vda?conn=qemu:///system", "unknown query parameter \"conn\"");
  bad("libvirt:vm/vda?uri=a:///&uri=b:///", "twice");
  bad("libvirt:vm/vda?mode=ro&mode=rw", "twice");
  bad("xen:dom1", "expected xen:DOMAIN/DISK");
  bad("xen:dom1/xvda?uri=x", "no query");
  bad("xen:dom1/xv.da", "disk target");
}

static void test_bad_rbd(void **state)
{
  (void)state;
  bad("rbd:pool", "POOL");
  bad("rbd:", "POOL");
  bad("rbd:pool//img", "empty");
  bad("rbd:/img", "empty");
  bad("rbd:pool/img@", "snapshot");
  bad("rbd:pool/img?conf=ceph.conf", "absolute");
  bad("rbd:pool/img?user=admin", "unknown query parameter \"user\"");
  bad("rbd:pool/img?id=a&id=b", "twice");
  bad("rbd:pool/img?id=%g0", "bad or empty");
  bad("rbd:pool/img?libvirt=", "bad or empty");
  bad("rbd:pool/img?uri=qemu:///system", "unknown query parameter \"uri\"");
}

static void test_bad_spec(void **state)
{
  (void)state;
  bad("colour=red,target=/img", "unknown disk-spec key \"colour\"");
  bad("file:/img,xvda,w,extra", "too many positional");
  bad("script=block,/img,raw,xvda,w,extra", "too many positional");
  bad("file:/img,xvda,rwx", "access");
  bad("access=write,target=/img", "access");
  bad("format=vmdk,target=/img", "unknown format");
  bad("devtype=disk,/img,iso,xvda", "unknown format");
  bad("file:/img,1xvda,w", "invalid vdev");
  bad("file:/img,xv-da,w", "invalid vdev");
  bad("vdev=xvd_a,target=/img", "invalid vdev");
  bad(",raw,xvda,w", "no target");
  bad("vdev=xvda", "no target");
  bad("format=raw,access=rw", "no target");
  bad("target=", "absolute");
  bad("format=raw,format=qcow2,target=/x", "format given twice");
  bad("vdev=xvda,/img,raw,xvdb", "vdev given twice");
  bad("file:/img,xvda,w,target=/other", "target given twice");
  bad("phy:relative,xvda,w", "absolute");
  bad("phy:/dev/vg/../x,xvda,w", "..");
  bad("tap:aio:img,xvda", "absolute");
  bad("phy:/dev/mapper/novg,xvda", "VG-LV");
}

static void test_bad_long(void **state)
{
  (void)state;
  char *s = malloc(4098);
  s[0] = '/';
  memset(s + 1, 'a', 4096);
  s[4097] = 0;  /* 4097 bytes */
  bad_q(s, ENAMETOOLONG, NULL, "longer than 4096 bytes");
  s[4096] = 0;  /* exactly 4096: parses */
  struct vstor_uri *u = parse(s);
  assert_int_equal(strlen(u->path), 4096);
  vstor__uri_free(u);
  free(s);
}

/* ---- core bugs found by these tests (pending a fix in lib/uri.c) ------ */

static void test_bug_rbd_extra_component(void **state)
{
  (void)state;
  /* parse_rbd stops splitting after 3 parts and drops the rest:
   * "rbd:a/b/c/d" parses as pool a, namespace b, image c */
  bad("rbd:a/b/c/d", "POOL");
  bad("rbd:pool/ns/img/x@snap", "POOL");
}

static void test_bug_libvirt_mode(void **state)
{
  (void)state;
  /* parse_dom_disk copies ?mode= unchecked into access */
  bad("libvirt:vm/vda?mode=banana", "mode");
  bad("libvirt:vm/vda?mode=", "bad or empty");
  struct vstor_uri *u = parse("libvirt:vm/vda?mode=ro");
  F(u, access, "ro");
  vstor__uri_free(u);
}

static void test_bug_spec_leading_slash(void **state)
{
  (void)state;
  /* vstor__uri_parse takes any text starting with '/' as a bare path, so
   * positional specs "TARGET,FORMAT,VDEV,ACCESS" with an absolute target
   * (xl-disk-configuration(5)'s usual form) become a file path with commas */
  struct vstor_uri *u = parse("/dev/vg/lv,,hda");
  F(u, backend, "lvm");
  F(u, vg, "vg");
  F(u, lv, "lv");
  F(u, vdev, "hda");
  F(u, access, "rw");
  vstor__uri_free(u);
  u = parse("/srv/img,qcow2,xvdb,ro");
  F(u, backend, "file");
  F(u, path, "/srv/img");
  F(u, format, "qcow2");
  F(u, vdev, "xvdb");
  F(u, access, "ro");
  vstor__uri_free(u);
  bad("/img,raw,xvda,w,extra", "too many positional");
}

static void test_null(void **state)
{
  (void)state;
  struct vstor_uri *u = (struct vstor_uri *)1;
  assert_int_equal(vstor__uri_parse(NULL, &u), -1);
  assert_null(u);
  assert_int_equal(vstor_last_code(), VSTOR_E_INVAL);
  vstor_vol *v = (vstor_vol *)1;
  assert_int_equal(vstor_open(ctx, NULL, 0, &v), -1);
  assert_error(VSTOR_E_INVAL, EINVAL, "vstor_open", NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bare_path),
    cmocka_unit_test(test_file_scheme),
    cmocka_unit_test(test_loop),
    cmocka_unit_test(test_lvm),
    cmocka_unit_test(test_mapper),
    cmocka_unit_test(test_libvirt),
    cmocka_unit_test(test_libvirt_query),
    cmocka_unit_test(test_libvirt_percent),
    cmocka_unit_test(test_xen_vbd),
    cmocka_unit_test(test_rbd),
    cmocka_unit_test(test_spec_phy),
    cmocka_unit_test(test_spec_file_tap),
    cmocka_unit_test(test_spec_positional),
    cmocka_unit_test(test_spec_keys),
    cmocka_unit_test(test_spec_legacy),
    cmocka_unit_test(test_bad_general),
    cmocka_unit_test(test_bad_control),
    cmocka_unit_test(test_bad_lvm),
    cmocka_unit_test(test_bad_libvirt),
    cmocka_unit_test(test_bad_rbd),
    cmocka_unit_test(test_bad_spec),
    cmocka_unit_test(test_bad_long),
    cmocka_unit_test(test_bug_rbd_extra_component),
    cmocka_unit_test(test_bug_libvirt_mode),
    cmocka_unit_test(test_bug_spec_leading_slash),
    cmocka_unit_test(test_null),
  };
  return cmocka_run_group_tests_name("uri", tests, setup, teardown);
}
