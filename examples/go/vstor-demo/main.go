// SPDX-License-Identifier: LGPL-2.1-or-later

// vstor-demo: open a volume, extend it, snapshot it, mirror and pivot.
//
//	vstor-demo VOLUME WORKDIR [-grow +64M] [-speed 64M]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"libvstor/bindings/go/vstor"
)

func main() {
	grow := flag.String("grow", "+64M", "size or +delta")
	speed := flag.String("speed", "0", "mirror speed limit per second")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: vstor-demo VOLUME WORKDIR [-grow +64M] [-speed 64M]")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *grow, *speed); err != nil {
		var e *vstor.Error
		if errors.As(err, &e) {
			fmt.Fprintf(os.Stderr, "error: %s [%s]\n", e.Msg, e.Code)
		} else {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

func run(uri, workdir, grow, speedText string) error {
	ctx, err := vstor.NewContext(nil)
	if err != nil {
		return err
	}
	defer ctx.Close()
	vol, err := ctx.Open(uri, 0)
	if err != nil {
		return err
	}
	defer vol.Close()

	// 1. open: what is this volume made of?
	size, err := vol.Size()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, backend %s\n", uri, size, vol.Backend())
	layers, _ := vol.Layers()
	for _, l := range layers {
		fmt.Printf("  %-10s %-6s %s %v\n", l.Role, l.Type, l.Path, l.Props)
	}

	// 2. extend through every layer (and the filesystem when mounted)
	growFS, _, _ := vol.Can(vstor.OpResizeFS, 0)
	rep, err := vol.ExtendTo(grow, &vstor.ExtendOptions{ResizeFS: growFS})
	if err != nil {
		return err
	}
	fmt.Printf("extended %d -> %d\n", rep.OldSize, rep.NewSize)

	// 3. snapshot: frozen if it can be, crash-consistent otherwise
	canFreeze, why, _ := vol.Can(vstor.OpFreeze, 0)
	snap := filepath.Join(workdir, "snapshot.img")
	rep, err = vol.Snapshot(snap, &vstor.SnapshotOptions{CrashConsistent: !canFreeze})
	if err != nil {
		return err
	}
	fmt.Printf("snapshot %s: frozen %v, method %s", snap, rep.Frozen(), rep.Method)
	if !canFreeze {
		fmt.Printf(" (no freeze: %s)", why)
	}
	fmt.Println()

	// 4. mirror, then pivot onto the copy (or keep it, if pivot is refused)
	speed, err := vstor.ParseSize(speedText, 0)
	if err != nil {
		return err
	}
	copyPath := filepath.Join(workdir, "mirror.img")
	job, _, err := vol.Mirror(copyPath, &vstor.MirrorOptions{Speed: speed,
		Progress: func(done, total uint64) {
			if total > 0 {
				n := int(done * 40 / total)
				fmt.Printf("\r  [%s%s] %d/%d MiB", strings.Repeat("#", n),
					strings.Repeat(".", 40-n), done>>20, total>>20)
			}
		}})
	if err != nil {
		return err
	}
	defer job.Close()
	// Ctrl-C cancels the wait (and Close then cancels the job).
	wctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := job.Wait(wctx); err != nil {
		return err
	}
	fmt.Println()
	if err := job.Pivot(); errors.Is(err, vstor.ErrNotSup) {
		fmt.Printf("pivot refused (%v); keeping the copy instead\n", err)
		return job.Complete()
	} else if err != nil {
		return err
	}
	fmt.Printf("pivoted: the volume now runs on %s\n", copyPath)
	return nil
}
