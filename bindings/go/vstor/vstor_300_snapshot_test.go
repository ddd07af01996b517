// SPDX-License-Identifier: LGPL-2.1-or-later

// 300: freeze-and-snapshot of a mounted XFS, frozen window reported.

package vstor

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func Test300SnapshotConsistent(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	digest := e.writeData(t, "data.bin", 4<<20)
	dest := e.path("snap.img")
	rep, err := v.Snapshot(dest, &SnapshotOptions{FreezeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Frozen() <= 0 || rep.Frozen() >= 5*time.Second {
		t.Fatalf("frozen window %v", rep.Frozen())
	}
	if rep.Consistency != ConsistentFS || rep.Method == "" {
		t.Fatalf("report %+v", rep)
	}
	mnt := e.path("snapmnt")
	os.Mkdir(mnt, 0755)
	loop := run(t, "losetup", "-f", "--show", "-r", dest)
	defer exec.Command("losetup", "-d", loop).Run()
	run(t, "mount", "-t", "xfs", "-o", "ro,nouuid,norecovery", loop, mnt)
	defer exec.Command("umount", mnt).Run()
	if got := sha256File(t, filepath.Join(mnt, "data.bin")); got != digest {
		t.Fatal("snapshot data differs")
	}
	e.writeData(t, "after.bin", 4096) // thawed
}

func Test300SnapshotDestExists(t *testing.T) {
	e := newVolEnv(t)
	v := openVol(t, newCtx(t, e), e.Image)
	dest := e.path("exists.img")
	os.WriteFile(dest, nil, 0644)
	_, err := v.Snapshot(dest, nil)
	wantErr(t, err, CodeExist, "vstor_snapshot")
	if _, err := v.Snapshot(e.path("never.img"), &SnapshotOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.path("never.img")); !os.IsNotExist(err) {
		t.Fatal("dry run made the snapshot")
	}
}
