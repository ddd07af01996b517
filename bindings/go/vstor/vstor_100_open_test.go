// SPDX-License-Identifier: LGPL-2.1-or-later

// 100: open a real loop-backed volume, read its size, layers and capabilities.

package vstor

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

func Test100VersionBackends(t *testing.T) {
	if !strings.HasPrefix(Version(), "0.") {
		t.Fatalf("version %q", Version())
	}
	found := false
	for _, b := range Backends() {
		found = found || b == "file"
	}
	if !found {
		t.Fatalf("backends %v lack file", Backends())
	}
}

func Test100OpenSizeLayers(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	if n, err := v.Size(); err != nil || n != imageSize {
		t.Fatalf("size %d %v", n, err)
	}
	if v.Backend() != "file" || v.ID() == "" {
		t.Fatalf("backend %q id %q", v.Backend(), v.ID())
	}
	ls, err := v.Layers()
	if err != nil || len(ls) == 0 {
		t.Fatalf("layers %v %v", ls, err)
	}
	if ls[0].Role != "storage" || ls[0].Type != "file" {
		t.Fatalf("bottom layer %+v", ls[0])
	}
	by := map[string]Layer{}
	for _, l := range ls {
		by[l.Role] = l
	}
	if x := by["exposure"]; x.Type != "loop" || x.Path != e.Loop || x.Size != imageSize {
		t.Fatalf("exposure layer %+v, want loop %s", x, e.Loop)
	}
	if f := by["filesystem"]; f.Type != "xfs" || f.Props["mountpoint"] != e.Mnt {
		t.Fatalf("filesystem layer %+v", f)
	}
}

func Test100OpenLoopURI(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), "loop:"+e.Loop)
	if n, err := v.Size(); err != nil || n != imageSize {
		t.Fatalf("size %d %v", n, err)
	}
}

func Test100Caps(t *testing.T) {
	e := newVolEnv(t)
	c := newCtx(t, e)
	v := openVol(t, c, e.Image)
	for op := OpExtend; op <= OpPivot; op++ {
		ok, why, err := v.Can(op, 0)
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if !ok && why == "" {
			t.Fatalf("%s: a no must say why", op)
		}
	}
	for _, op := range []Op{OpExtendOnline, OpSnapshot, OpMirror} {
		if ok, why, err := v.Can(op, 0); !ok || err != nil {
			t.Fatalf("%s: %v %s %v", op, ok, why, err)
		}
	}
	if ok, why, err := c.BackendCan("file", OpExtend); !ok || err != nil {
		t.Fatalf("file extend: %s %v", why, err)
	}
}

func Test100CloseAndLifetimes(t *testing.T) {
	e := newVolEnv(t)
	c, err := NewContext(&Options{StateDir: e.StateDir})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Open(e.Image, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Closing the context closes the volume first; the volume handle stays
	// a safe Go value that reports STATE.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = v.Size()
	wantErr(t, err, CodeState, "vstor_vol_size")
	if !errors.Is(err, ErrState) {
		t.Fatal("errors.Is(ErrState)")
	}
	if _, err := v.Layers(); !errors.Is(err, ErrState) {
		t.Fatalf("layers after close: %v", err)
	}
	if err := v.Close(); err != nil { // double close
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(e.Image, 0); !errors.Is(err, ErrState) {
		t.Fatalf("open on closed context: %v", err)
	}
	// Many contexts and volumes, some dropped without Close, then GC.
	for i := 0; i < 20; i++ {
		c, _ := NewContext(&Options{StateDir: e.StateDir})
		if v, err := c.Open(e.Image, 0); err != nil || i%2 == 0 {
			c.Close()
		} else {
			v.Close()
			c.Close()
		}
	}
	runtime.GC()
}
