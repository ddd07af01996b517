// SPDX-License-Identifier: LGPL-2.1-or-later

// 200: extend online through every layer, dry run, refusals.

package vstor

import (
	"os"
	"syscall"
	"testing"
)

func fsSize(t *testing.T, mnt string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * uint64(st.Frsize)
}

func Test200ExtendRelativeWithFS(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	before := fsSize(t, e.Mnt)
	rep, err := v.ExtendTo("+64M", &ExtendOptions{ResizeFS: true})
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(imageSize + 64<<20)
	if rep.OldSize != imageSize || rep.NewSize != want {
		t.Fatalf("report %+v", rep)
	}
	if n, _ := v.Size(); n != want {
		t.Fatalf("size %d", n)
	}
	if fi, _ := os.Stat(e.Image); uint64(fi.Size()) != want {
		t.Fatalf("image %d", fi.Size())
	}
	if n := blockdevSize(t, e.Loop); n != want {
		t.Fatalf("loop sees %d", n)
	}
	if after := fsSize(t, e.Mnt); after < before+32<<20 {
		t.Fatalf("filesystem %d -> %d", before, after)
	}
	for _, s := range rep.Steps {
		if s.Status != StepDone && s.Status != StepSkipped {
			t.Fatalf("step %+v", s)
		}
	}
}

func Test200ExtendBytesPrealloc(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	want := uint64(imageSize + 16<<20)
	if _, err := v.Extend(want, &ExtendOptions{Prealloc: true}); err != nil {
		t.Fatal(err)
	}
	if n := blockdevSize(t, e.Loop); n != want {
		t.Fatalf("loop sees %d", n)
	}
}

func Test200DryRun(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	rep, err := v.ExtendTo("+1G", &ExtendOptions{ResizeFS: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Steps) == 0 {
		t.Fatal("no plan")
	}
	for _, s := range rep.Steps {
		if s.Status != StepPlanned {
			t.Fatalf("step %+v", s)
		}
	}
	if n, _ := v.Size(); n != imageSize {
		t.Fatalf("dry run changed size to %d", n)
	}
}

func Test200ShrinkAndBadSize(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	_, err := v.Extend(imageSize-1<<20, nil)
	wantErr(t, err, CodeInval, "vstor_extend")
	_, err = v.ExtendTo("+12Q", nil)
	wantErr(t, err, CodeInval, "vstor_parse_size")
	if n, _ := v.Size(); n != imageSize {
		t.Fatalf("size %d", n)
	}
	if n, err := ParseSize("+1M", 1); err != nil || n != 1<<20+1 {
		t.Fatalf("ParseSize %d %v", n, err)
	}
}
