// SPDX-License-Identifier: LGPL-2.1-or-later

// Test fixtures: real loop-backed XFS volumes made by the tests
// themselves and always torn down (t.Cleanup), like python/t/conftest.py.
// Missing tools or privileges fail the test: a lab that cannot run is not
// a pass.

package vstor

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const imageSize = 512 << 20 // XFS needs >= 300 MiB

type volEnv struct {
	Dir, Image, Loop, Mnt, StateDir string
	Digest                          string // sha256 of the seed data.bin
}

func (e *volEnv) path(name string) string { return filepath.Join(e.Dir, name) }

func run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func labOK(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"losetup", "mkfs.xfs", "mount", "umount", "truncate", "blockdev"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("lab tool %s missing (apt install util-linux xfsprogs)", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("the binding tests need root (loop devices, mount)")
	}
}

func loopsOf(path string) []string {
	out, _ := exec.Command("losetup", "-j", path).Output()
	var devs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if i := strings.IndexByte(l, ':'); i > 0 {
			devs = append(devs, l[:i])
		}
	}
	return devs
}

func loopBacking(t testing.TB, dev string) string {
	b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func blockdevSize(t testing.TB, dev string) uint64 {
	n, err := strconv.ParseUint(run(t, "blockdev", "--getsize64", dev), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newVolEnv: a read-write loop device, mounted read-write.
func newVolEnv(t testing.TB) *volEnv { return newEnv(t, 0, true) }

// newIdleEnv: seedMB MiB of random data in data.bin (Digest), then the
// loop device left attached but not mounted, so that pivot can rebind it.
func newIdleEnv(t testing.TB, seedMB int64) *volEnv { return newEnv(t, seedMB, false) }

func newEnv(t testing.TB, seedMB int64, mounted bool) *volEnv {
	t.Helper()
	labOK(t)
	d, err := os.MkdirTemp("/var/tmp", "vstor-gotest-")
	if err != nil {
		t.Fatal(err)
	}
	e := &volEnv{Dir: d, Image: filepath.Join(d, "disk.img"), Mnt: filepath.Join(d, "mnt"),
		StateDir: filepath.Join(d, "state")}
	t.Cleanup(func() { teardown(t, e) })
	if err := os.Mkdir(e.Mnt, 0755); err != nil {
		t.Fatal(err)
	}
	run(t, "truncate", "-s", strconv.Itoa(imageSize), e.Image)
	run(t, "mkfs.xfs", "-q", e.Image)
	e.Loop = run(t, "losetup", "-f", "--show", e.Image)
	run(t, "mount", "-t", "xfs", e.Loop, e.Mnt)
	if seedMB > 0 {
		e.Digest = e.writeData(t, "data.bin", seedMB<<20)
	}
	if !mounted {
		run(t, "umount", e.Mnt)
	}
	return e
}

func teardown(t testing.TB, e *volEnv) {
	// /proc/mounts, not a stat of the mount point: a filesystem that shut
	// down (EIO) must be unmounted too.
	b, _ := os.ReadFile("/proc/mounts")
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 1 && (f[1] == e.Dir || strings.HasPrefix(f[1], e.Dir+"/")) {
			if err := exec.Command("umount", f[1]).Run(); err != nil {
				exec.Command("umount", "-l", f[1]).Run()
			}
		}
	}
	devs := map[string]bool{}
	if e.Loop != "" {
		devs[e.Loop] = true // even if its file was replaced or deleted
	}
	ents, _ := os.ReadDir(e.Dir)
	for _, ent := range ents {
		if ent.Type().IsRegular() {
			for _, dev := range loopsOf(filepath.Join(e.Dir, ent.Name())) {
				devs[dev] = true
			}
		}
	}
	for dev := range devs {
		// Only a device still backed by a file of ours (perhaps deleted):
		// a freed loop device may already serve someone else.
		b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file")
		if err != nil || !strings.HasPrefix(string(b), e.Dir+"/") {
			continue
		}
		if err := exec.Command("losetup", "-d", dev).Run(); err != nil {
			t.Errorf("could not detach %s", dev)
		}
	}
	os.RemoveAll(e.Dir)
}

// writeData writes size random bytes to a file in the mounted filesystem
// and returns their sha256.
func (e *volEnv) writeData(t testing.TB, name string, size int64) string {
	t.Helper()
	f, err := os.Create(filepath.Join(e.Mnt, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func newCtx(t testing.TB, e *volEnv) *Context {
	t.Helper()
	c, err := NewContext(&Options{StateDir: e.StateDir, BackendDir: os.Getenv("VSTOR_BACKEND_DIR")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func openVol(t testing.TB, c *Context, uri string) *Volume {
	t.Helper()
	v, err := c.Open(uri, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// wantErr checks err is a *Error with code and op, matched by errors.Is.
func wantErr(t testing.TB, err error, code Code, op string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s from %s, got success", code, op)
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("want *vstor.Error, got %T %v", err, err)
	}
	if e.Code != code || e.Op != op || !strings.HasPrefix(e.Msg, op+":") {
		t.Fatalf("want %s from %s, got %s from %s: %q", code, op, e.Code, e.Op, e.Msg)
	}
	if !errors.Is(err, code) {
		t.Fatalf("errors.Is(err, %s) is false", code)
	}
	return e
}
