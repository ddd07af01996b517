// SPDX-License-Identifier: LGPL-2.1-or-later

// Package vstor is the Go binding of libvstor: live storage operations on
// virtual machine disks (open by URI, extend online through every layer,
// freeze-and-snapshot, mirror and pivot).
//
//	ctx, err := vstor.NewContext(nil)
//	if err != nil { ... }
//	defer ctx.Close()
//	vol, err := ctx.Open("/var/lib/images/vm1.img", 0)
//	if err != nil { ... }
//	defer vol.Close()
//	if _, err := vol.ExtendTo("+10G", &vstor.ExtendOptions{ResizeFS: true}); errors.Is(err, vstor.ErrNoSpace) { ... }
//	rep, err := vol.Snapshot("/backup/vm1.snap", nil)  // rep.Frozen() is the frozen window
//	job, err := vol.Mirror("/fast/vm1.img", &vstor.MirrorOptions{Speed: 200 << 20,
//		Progress: func(done, total uint64) { ... }})
//	if _, err := job.Wait(context.Background()); err == nil { err = job.Pivot() }
//	job.Close()
//
// Errors are values: every failure is a *Error carrying the stable Code,
// the Errno and the C call (Op); test them with errors.Is(err, vstor.ErrBusy)
// (or errors.Is(err, syscall.ENOSPC) for the errno) and errors.As.
//
// Lifetimes: a Volume keeps its Context alive and a Job its Volume.
// Closing a parent closes its children first (closing a Volume cancels its
// unfinished jobs); Close may be called any number of times; a call on a
// closed object returns a STATE error.  All objects are safe for
// concurrent use by several goroutines.
//
// Progress: the callback in MirrorOptions is called from the goroutine
// running Job.Wait (or Job.Poll), never from the library's copy thread.
//
// Build: the package uses cgo with a SWIG-generated wrapper (internal/capi)
// and links -lvstor; meson generates the wrapper (see doc/bindings.md).
package vstor
