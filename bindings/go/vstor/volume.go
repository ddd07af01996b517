// SPDX-License-Identifier: LGPL-2.1-or-later

package vstor

import (
	"strings"
	"sync"
	"time"

	"libvstor/bindings/go/vstor/internal/capi"
)

// Volume is an open volume; obtain one with Context.Open.
type Volume struct {
	URI string // as given to Open
	ctx *Context
	// mu serializes the calls on one handle: the C volume is not meant to
	// run two operations at once (layers are replaced by an operation).
	// Several Volumes on one volume run concurrently; the library's
	// volume lock arbitrates changes between them.
	mu   sync.Mutex
	h    capi.Struct_SS_vstor_vol
	kids sync.Mutex
	jobs map[*Job]struct{}
}

func (v *Volume) use(op string, f func(h capi.Struct_SS_vstor_vol) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.h == nil {
		return closedError(op, "volume "+v.URI)
	}
	return f(v.h)
}

// Context is the context the volume was opened from.
func (v *Volume) Context() *Context { return v.ctx }

// ID is the canonical id of the volume (its lock and journal key).
func (v *Volume) ID() string {
	s := ""
	v.use("vstor_vol_id", func(h capi.Struct_SS_vstor_vol) error { s = capi.Vstor_vol_id(h); return nil })
	return s
}

// Backend is the backend serving the top layer ("file").
func (v *Volume) Backend() string {
	s := ""
	v.use("vstor_vol_backend", func(h capi.Struct_SS_vstor_vol) error { s = capi.Vstor_vol_backend(h); return nil })
	return s
}

// Size is the current size in bytes, re-read from the storage.
func (v *Volume) Size() (uint64, error) {
	var n uint64
	err := v.use("vstor_vol_size", func(h capi.Struct_SS_vstor_vol) error {
		r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_vol_size(r, h) })
		defer r.free()
		n = r.r.GetU1()
		return err
	})
	return n, err
}

// Refresh re-reads the layers after something outside changed them.
func (v *Volume) Refresh() error {
	return v.use("vstor_vol_refresh", func(h capi.Struct_SS_vstor_vol) error {
		r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_vol_refresh(r, h) })
		r.free()
		return err
	})
}

// Layers lists the layers, bottom (storage) first.
func (v *Volume) Layers() ([]Layer, error) {
	var out []Layer
	err := v.use("vstor_vol_layer", func(h capi.Struct_SS_vstor_vol) error {
		n := capi.Vstor_vol_layer_count(h)
		for i := int64(0); i < n; i++ {
			l := capi.Vstor_vol_layer(h, i)
			ly := Layer{Role: capi.Vstor_layer_role(l), Type: capi.Vstor_layer_type(l),
				Path: capi.Vstor_layer_path(l), Size: capi.Vstor_layer_size(l),
				Props: map[string]string{}}
			for j := int64(0); ; j++ {
				k := capi.Vstor_layer_prop_key(l, j)
				if k == "" {
					break
				}
				ly.Props[k] = capi.Vstor_layer_prop(l, k)
			}
			out = append(out, ly)
		}
		return nil
	})
	return out, err
}

// Can says whether op can be done on this volume now, called with flags
// (the ExtendFlags/SnapshotFlags/MirrorFlags bits the call would use);
// when not, why says why.
func (v *Volume) Can(op Op, flags uint) (ok bool, why string, err error) {
	err = v.use("vstor_vol_can", func(h capi.Struct_SS_vstor_vol) error {
		r, rc, err := call(func(r capi.Vsb_res) int { return capi.Vsb_vol_can(r, h, int(op), flags) })
		defer r.free()
		ok, why = rc == 1, r.r.GetWhy()
		return err
	})
	return
}

// Flag bits, for Volume.Can and the option structs.
const (
	FlagDryRun           uint = 1 << 31
	FlagExtendPrealloc   uint = 1 << 0
	FlagExtendResizeFS   uint = 1 << 1
	FlagSnapshotCrash    uint = 1 << 0
	FlagSnapshotNoRef    uint = 1 << 1
	FlagSnapshotExpedite uint = 1 << 2
	FlagMirrorShallow    uint = 1 << 0
	FlagMirrorReuseDest  uint = 1 << 1
	FlagMirrorVerify     uint = 1 << 2
)

func bit(b bool, f uint) uint {
	if b {
		return f
	}
	return 0
}

// ExtendOptions of Volume.Extend; nil means none.
type ExtendOptions struct {
	ResizeFS bool // grow the filesystem on top too
	Prealloc bool // allocate the new space
	DryRun   bool // plan only
}

func (o *ExtendOptions) flags() uint {
	if o == nil {
		return 0
	}
	return bit(o.ResizeFS, FlagExtendResizeFS) | bit(o.Prealloc, FlagExtendPrealloc) | bit(o.DryRun, FlagDryRun)
}

// Extend grows the volume to newSize bytes through every layer.  Shrinking
// is refused (ErrInval).  On a PARTIAL failure the *Error carries the Report.
func (v *Volume) Extend(newSize uint64, o *ExtendOptions) (*Report, error) {
	var rep *Report
	err := v.use("vstor_extend", func(h capi.Struct_SS_vstor_vol) error {
		rep = nil
		var err error
		rep, err = reportCall(func(r capi.Vsb_res) int {
			return capi.Vsb_extend(r, h, newSize, capi.SwigcptrStruct_SS_vstor_opts(0), o.flags())
		})
		return err
	})
	return rep, err
}

// ExtendTo is Extend with a size text: "+10G" (relative to the current
// size), "50G", "512MiB".
func (v *Volume) ExtendTo(size string, o *ExtendOptions) (*Report, error) {
	var cur uint64
	if strings.HasPrefix(strings.TrimSpace(size), "+") {
		var err error
		if cur, err = v.Size(); err != nil {
			return nil, err
		}
	}
	n, err := ParseSize(size, cur)
	if err != nil {
		return nil, err
	}
	return v.Extend(n, o)
}

// SnapshotOptions of Volume.Snapshot; nil means defaults.
type SnapshotOptions struct {
	CrashConsistent bool          // allow no freeze
	NoReflink       bool          // always copy the data
	Expedite        bool          // shorten the kernel's FIFREEZE (VSTOR_SNAPSHOT_EXPEDITE)
	FreezeTimeout   time.Duration // bound on the frozen window (0: library default, 10 s)
	SnapshotSize    uint64        // where the storage needs one (LVM classic)
	DryRun          bool
}

// Snapshot quiesces, snapshots to dest, thaws.  Report.Frozen() is the
// frozen window.
func (v *Volume) Snapshot(dest string, o *SnapshotOptions) (*Report, error) {
	if o == nil {
		o = &SnapshotOptions{}
	}
	flags := bit(o.CrashConsistent, FlagSnapshotCrash) | bit(o.NoReflink, FlagSnapshotNoRef) |
		bit(o.Expedite, FlagSnapshotExpedite) | bit(o.DryRun, FlagDryRun)
	var rep *Report
	err := v.use("vstor_snapshot", func(h capi.Struct_SS_vstor_vol) error {
		opts, err := newOpts(o.FreezeTimeout, 0, o.SnapshotSize)
		if err != nil {
			return err
		}
		defer capi.Vstor_opts_free(opts)
		rep, err = reportCall(func(r capi.Vsb_res) int { return capi.Vsb_snapshot(r, h, dest, opts, flags) })
		return err
	})
	return rep, err
}

// MirrorOptions of Volume.Mirror; nil means defaults.
type MirrorOptions struct {
	Speed     uint64 // bytes per second, 0 unlimited
	Verify    bool   // checksum the copy before pivot
	Shallow   bool   // top layer only
	ReuseDest bool   // dest exists with the right size
	DryRun    bool   // plan only: no job, the Report is returned
	// Progress is called with (done, total) bytes from the goroutine running
	// Job.Wait or Job.Poll whenever they changed; total is 0 while unknown.
	Progress func(done, total uint64)
}

// Mirror starts copying the volume to dest and returns the running Job.
// With DryRun no job is started and the plan is returned instead.
func (v *Volume) Mirror(dest string, o *MirrorOptions) (*Job, *Report, error) {
	if o == nil {
		o = &MirrorOptions{}
	}
	flags := bit(o.Verify, FlagMirrorVerify) | bit(o.Shallow, FlagMirrorShallow) |
		bit(o.ReuseDest, FlagMirrorReuseDest) | bit(o.DryRun, FlagDryRun)
	var job *Job
	var rep *Report
	err := v.use("vstor_mirror", func(h capi.Struct_SS_vstor_vol) error {
		opts, err := newOpts(0, o.Speed, 0)
		if err != nil {
			return err
		}
		defer capi.Vstor_opts_free(opts)
		r, rc, err := call(func(r capi.Vsb_res) int { return capi.Vsb_mirror(r, h, dest, opts, flags) })
		defer r.free()
		rep = takeReport(r.r.GetReport())
		jh := r.r.GetJob()
		if jh == nil || jh.Swigcptr() == 0 {
			if e, ok := err.(*Error); ok {
				e.Report = rep
			}
			return err
		}
		if rc < 0 { // defensive: the C API sets no job on failure
			capi.Vstor_job_free(jh)
			return err
		}
		job = &Job{vol: v, h: jh, Dest: capi.Vstor_job_dest(jh), progress: o.Progress}
		v.kids.Lock()
		v.jobs[job] = struct{}{}
		v.kids.Unlock()
		return nil
	})
	return job, rep, err
}

func reportCall(f func(capi.Vsb_res) int) (*Report, error) {
	r, _, err := call(f)
	defer r.free()
	rep := takeReport(r.r.GetReport())
	if e, ok := err.(*Error); ok {
		e.Report = rep
	}
	return rep, err
}

func (v *Volume) forget(j *Job) {
	v.kids.Lock()
	delete(v.jobs, j)
	v.kids.Unlock()
}

// Close frees the volume's jobs (cancelling unfinished ones), then closes
// it.  Closing twice is harmless.
func (v *Volume) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.h == nil {
		return nil
	}
	v.kids.Lock()
	jobs := make([]*Job, 0, len(v.jobs))
	for j := range v.jobs {
		jobs = append(jobs, j)
	}
	v.kids.Unlock()
	for _, j := range jobs {
		j.closeLocked()
	}
	h := v.h
	r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_close(r, h) })
	r.free()
	if err != nil {
		return err
	}
	v.h = nil
	v.ctx.forget(v)
	return nil
}
