// SPDX-License-Identifier: LGPL-2.1-or-later

// 500: every error class, provoked for real where the file backend can be
// made to fail, with the right code, errno and call name.

package vstor

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func Test500Inval(t *testing.T) {
	e := newVolEnv(t)
	c := newCtx(t, e)
	v := openVol(t, c, e.Image)
	_, err := ParseSize("-5G", 0)
	wantErr(t, err, CodeInval, "vstor_parse_size")
	_, err = v.Extend(1<<20, nil)
	wantErr(t, err, CodeInval, "vstor_extend")
	_, err = NewContext(&Options{StateDir: "relative/dir"})
	wantErr(t, err, CodeInval, "vstor_ctx_set_state_dir")
	_, err = c.Open("nosuchscheme:whatever", 0)
	wantErr(t, err, CodeInval, "vstor_open")
}

func Test500NoEnt(t *testing.T) {
	e := newVolEnv(t)
	_, err := newCtx(t, e).Open(e.path("missing.img"), 0)
	x := wantErr(t, err, CodeNoEnt, "vstor_open")
	if x.Errno != syscall.ENOENT || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("errno %v", x.Errno)
	}
	if !strings.Contains(x.Msg, e.path("missing.img")) {
		t.Fatalf("message does not name the object: %q", x.Msg)
	}
}

func Test500Exist(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	dest := e.path("taken.img")
	os.WriteFile(dest, nil, 0644)
	_, err := v.Snapshot(dest, nil)
	wantErr(t, err, CodeExist, "vstor_snapshot")
	_, _, err = v.Mirror(dest, nil)
	wantErr(t, err, CodeExist, "vstor_mirror")
}

// TestHelperHold is not a test: run as a child process (VSTOR_HOLD set) it
// holds the volume lock until its stdin closes.
func TestHelperHold(t *testing.T) {
	uri := os.Getenv("VSTOR_HOLD")
	if uri == "" {
		return
	}
	c, err := NewContext(&Options{StateDir: os.Getenv("VSTOR_HOLD_STATE")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(uri, OpenExclusive); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("held\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
	c.Close()
}

func Test500Busy(t *testing.T) {
	e := newVolEnv(t)
	c := newCtx(t, e)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperHold$")
	cmd.Env = append(os.Environ(), "VSTOR_HOLD="+e.Image, "VSTOR_HOLD_STATE="+e.StateDir)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		t.Fatalf("holder said %q", line)
	}
	_, err := c.Open(e.Image, OpenExclusive)
	wantErr(t, err, CodeBusy, "vstor_open")
	v := openVol(t, c, e.Image)
	_, err = v.ExtendTo("+1M", nil)
	wantErr(t, err, CodeBusy, "vstor_extend")
}

func Test500NoSpace(t *testing.T) {
	e := newVolEnv(t)
	c := newCtx(t, e)
	small := e.path("small")
	os.Mkdir(small, 0755)
	run(t, "mount", "-t", "tmpfs", "-o", "size=400m", "tmpfs", small)
	defer exec.Command("umount", small).Run()
	img := filepath.Join(small, "img")
	run(t, "truncate", "-s", "64M", img)
	v, err := c.Open(img, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, err = v.ExtendTo("+1G", &ExtendOptions{Prealloc: true})
	wantErr(t, err, CodeNoSpace, "vstor_extend")
	if n, _ := v.Size(); n != 64<<20 {
		t.Fatalf("size changed to %d", n)
	}
}

// TestHelperPerm is not a test: as a child running as nobody it tries to
// open a root-only image and prints the error.
func TestHelperPerm(t *testing.T) {
	img := os.Getenv("VSTOR_PERM")
	if img == "" {
		return
	}
	c, err := NewContext(&Options{StateDir: os.Getenv("VSTOR_PERM_STATE")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Open(img, 0)
	var e *Error
	if errors.As(err, &e) {
		os.Stdout.WriteString("ERR " + e.Code.String() + " " + e.Op + " " + e.Errno.Error() + "\n")
	}
}

func Test500Perm(t *testing.T) {
	e := newVolEnv(t)
	img := e.path("private.img")
	run(t, "truncate", "-s", "1M", img)
	os.Chmod(img, 0600)
	os.Chmod(e.Dir, 0755)
	st := e.path("nobody-state")
	os.Mkdir(st, 0700)
	os.Chown(st, 65534, 65534)
	// The test binary sits in a root-only temp dir: run a copy nobody can reach.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := e.path("vstor.test")
	if err := os.WriteFile(bin, self, 0755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^TestHelperPerm$")
	cmd.Env = append(os.Environ(), "VSTOR_PERM="+img, "VSTOR_PERM_STATE="+st)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Logf("child: %v", err)
	}
	want := "ERR PERM vstor_open " + syscall.EACCES.Error()
	if !strings.Contains(string(out), want) {
		t.Fatalf("child said %q, want %q", out, want)
	}
}

func Test500NotSup(t *testing.T) {
	e := newVolEnv(t)
	_, err := newCtx(t, e).Open("rbd:pool/image", 0)
	wantErr(t, err, CodeNotSup, "vstor_open")
}

func Test500TimeoutState(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	e.writeData(t, "data.bin", 32<<20)
	job, _, err := v.Mirror(e.path("copy.img"), &MirrorOptions{Speed: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := job.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v", err)
	}
	err = job.Complete()
	wantErr(t, err, CodeState, "vstor_job_complete")
	if err := job.Cancel(); err != nil {
		t.Fatal(err)
	}
	err = job.Pivot()
	wantErr(t, err, CodeState, "vstor_job_pivot")
	job.Close()
	err = job.Pivot()
	wantErr(t, err, CodeState, "vstor_job_pivot")
}

func Test500ReadOnly(t *testing.T) {
	e := newVolEnv(t)
	c := newCtx(t, e)
	v, err := c.Open(e.Image, OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, err = v.ExtendTo("+1M", nil)
	var x *Error
	if !errors.As(err, &x) || (x.Code != CodePerm && x.Code != CodeState) || x.Op != "vstor_extend" {
		t.Fatalf("read-only extend: %v", err)
	}
}

func Test500EveryCode(t *testing.T) {
	// AGAIN, BACKEND, IO, CANCELLED, INTERNAL and PARTIAL cannot be provoked
	// on demand with the file backend; the mapping is checked here.
	for c := CodeInval; c <= CodePartial; c++ {
		err := error(newError(int(c), 5, "vstor_extend: /img: x"))
		var x *Error
		if !errors.As(err, &x) || x.Op != "vstor_extend" || x.Errno != 5 {
			t.Fatalf("%s: %+v", c, x)
		}
		if !errors.Is(err, c) || errors.Is(err, c+1) || !errors.Is(err, syscall.Errno(5)) {
			t.Fatalf("%s: errors.Is", c)
		}
		if c.String() == "" || strings.HasPrefix(c.String(), "CODE_") {
			t.Fatalf("%d has no name", c)
		}
	}
}
