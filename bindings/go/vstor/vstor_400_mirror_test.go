// SPDX-License-Identifier: LGPL-2.1-or-later

// 400: mirror to a new file, progress observed, pivot onto the copy.

package vstor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const speed = 64 << 20 // bytes/s: slow enough to watch progress

func Test400MirrorPivotProgress(t *testing.T) {
	e := newIdleEnv(t, 64)
	v := openVol(t, newCtx(t, e), e.Image)
	dest := e.path("copy.img")
	var mu sync.Mutex
	var seen [][2]uint64
	job, _, err := v.Mirror(dest, &MirrorOptions{Speed: speed, Progress: func(d, tot uint64) {
		mu.Lock()
		seen = append(seen, [2]uint64{d, tot})
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := job.Wait(ctx)
	if err != nil || st != JobReady {
		t.Fatalf("wait: %s %v", st, err)
	}
	if err := job.Pivot(); err != nil {
		t.Fatal(err)
	}
	if st, _ := job.State(); st != JobPivoted {
		t.Fatalf("state %s", st)
	}
	if len(seen) < 3 {
		t.Fatalf("progress seen %v", seen)
	}
	mid := false
	for i := range seen {
		if i > 0 && seen[i][0] < seen[i-1][0] {
			t.Fatalf("progress went back: %v", seen)
		}
		mid = mid || (seen[i][0] > 0 && seen[i][0] < seen[i][1])
	}
	last := seen[len(seen)-1]
	if !mid || last[0] != last[1] || last[1] == 0 {
		t.Fatalf("progress %v", seen)
	}
	real1, _ := filepath.EvalSymlinks(loopBacking(t, e.Loop))
	real2, _ := filepath.EvalSymlinks(dest)
	if real1 != real2 {
		t.Fatalf("loop backs %s, want %s", real1, real2)
	}
	if err := v.Refresh(); err != nil {
		t.Fatal(err)
	}
	if ls, _ := v.Layers(); len(ls) == 0 || ls[0].Path != dest {
		t.Fatalf("layers after pivot %+v", ls)
	}
	run(t, "mount", "-t", "xfs", e.Loop, e.Mnt)
	if sha256File(t, filepath.Join(e.Mnt, "data.bin")) != e.Digest {
		t.Fatal("data differs after pivot")
	}
}

func Test400PivotRefusedOnRWMount(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	job, _, err := v.Mirror(e.path("copy.img"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if st, err := job.Wait(context.Background()); st != JobReady || err != nil {
		t.Fatalf("wait %s %v", st, err)
	}
	err = job.Pivot()
	x := wantErr(t, err, CodeNotSup, "vstor_job_pivot")
	if !strings.Contains(x.Msg, e.Loop) {
		t.Fatalf("message does not name %s: %s", e.Loop, x.Msg)
	}
	if st, _ := job.State(); st != JobReady {
		t.Fatalf("state after refused pivot %s", st)
	}
	if err := job.Complete(); err != nil {
		t.Fatal(err)
	}
}

func Test400FdAndComplete(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	e.writeData(t, "data.bin", 16<<20)
	job, _, err := v.Mirror(e.path("copy.img"), &MirrorOptions{Speed: speed})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if job.Fd() < 0 {
		t.Fatal("no fd")
	}
	if _, err := job.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := job.Complete(); err != nil {
		t.Fatal(err)
	}
	if st, _ := job.State(); st != JobCompleted {
		t.Fatalf("state %s", st)
	}
	if loopBacking(t, e.Loop) != e.Image {
		t.Fatal("complete moved the volume")
	}
}

func Test400CancelWaitContext(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	e.writeData(t, "data.bin", 32<<20)
	dest := e.path("copy.img")
	job, _, err := v.Mirror(dest, &MirrorOptions{Speed: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Wait honours the context.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	t0 := time.Now()
	_, err = job.Wait(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 2*time.Second {
		t.Fatalf("wait: %v after %v", err, time.Since(t0))
	}
	err = job.Pivot()
	wantErr(t, err, CodeState, "vstor_job_pivot")
	if err := job.Cancel(); err != nil {
		t.Fatal(err)
	}
	job.Close()
	job.Close()
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("cancel left the copy")
	}
	if _, err := job.State(); !errors.Is(err, ErrState) {
		t.Fatalf("state after close: %v", err)
	}
}

func Test400JobOutlivesVolume(t *testing.T) {
	e := newVolEnv(t)
	c := newCtx(t, e)
	e.writeData(t, "data.bin", 32<<20)
	v, err := c.Open(e.Image, 0)
	if err != nil {
		t.Fatal(err)
	}
	job, _, err := v.Mirror(e.path("copy.img"), &MirrorOptions{Speed: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// A Wait running while the volume is closed under it returns an error,
	// never touches freed memory.
	done := make(chan error, 1)
	go func() { _, err := job.Wait(context.Background()); done <- err }()
	time.Sleep(200 * time.Millisecond)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrState) {
		t.Fatalf("wait after close: %v", err)
	}
	if err := job.Pivot(); !errors.Is(err, ErrState) {
		t.Fatalf("pivot after close: %v", err)
	}
	job.Close()
	// Dry run: a plan, no job.
	v = openVol(t, c, e.Image)
	j, rep, err := v.Mirror(e.path("plan.img"), &MirrorOptions{DryRun: true})
	if err != nil || j != nil || rep == nil || len(rep.Steps) == 0 {
		t.Fatalf("dry run: %v %v %v", j, rep, err)
	}
}
