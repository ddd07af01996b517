// SPDX-License-Identifier: LGPL-2.1-or-later

package vstor

import (
	"context"
	"sync"
	"time"

	"libvstor/bindings/go/vstor/internal/capi"
)

// Job is a mirror job; obtain one with Volume.Mirror.  Close it when done
// (closing a job that has not ended cancels it).
type Job struct {
	Dest     string
	vol      *Volume
	mu       sync.Mutex
	h        capi.Struct_SS_vstor_job
	progress func(done, total uint64)
	last     [2]uint64
	seen     bool
}

// slice bounds each wait on the job's fd, so cancellation of a Wait and a
// concurrent Close are noticed within it.
const slice = 100 * time.Millisecond

func (j *Job) use(op string, f func(h capi.Struct_SS_vstor_job) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.h == nil {
		return closedError(op, "job to "+j.Dest)
	}
	return f(j.h)
}

// Volume is the volume the job copies.
func (j *Job) Volume() *Volume { return j.vol }

// State is the current state.
func (j *Job) State() (JobState, error) {
	var s JobState
	err := j.use("vstor_job_state", func(h capi.Struct_SS_vstor_job) error {
		s = JobState(capi.Vsb_job_state(h))
		return nil
	})
	return s, err
}

// Progress is (done, total) bytes; total is 0 while not yet measured.
func (j *Job) Progress() (done, total uint64, err error) {
	err = j.use("vstor_job_progress", func(h capi.Struct_SS_vstor_job) error {
		r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_job_progress(r, h) })
		defer r.free()
		done, total = r.r.GetU1(), r.r.GetU2()
		return err
	})
	return
}

// Fd is a file descriptor (owned by the job) readable on every change of
// state or progress; -1 once closed.  After it polled readable, call Poll.
func (j *Job) Fd() int {
	fd := -1
	j.use("vstor_job_fd", func(h capi.Struct_SS_vstor_job) error { fd = capi.Vstor_job_fd(h); return nil })
	return fd
}

// step waits up to ms for an event, resets the fd, and reads the state
// and progress; the progress callback runs after the lock is dropped.
func (j *Job) step(ms int) (JobState, error) {
	var s JobState
	var cur [2]uint64
	err := j.use("vstor_job_wait", func(h capi.Struct_SS_vstor_job) error {
		capi.Vsb_job_event(h, ms)
		s = JobState(capi.Vsb_job_state(h))
		r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_job_progress(r, h) })
		defer r.free()
		cur = [2]uint64{r.r.GetU1(), r.r.GetU2()}
		return err
	})
	if err != nil {
		return s, err
	}
	j.mu.Lock()
	changed := !j.seen || cur != j.last
	j.seen, j.last = true, cur
	j.mu.Unlock()
	if changed && j.progress != nil {
		j.progress(cur[0], cur[1])
	}
	return s, nil
}

// Poll resets the fd's event, delivers progress to the callback if it
// changed, and returns the state.  It never blocks.
func (j *Job) Poll() (JobState, error) { return j.step(0) }

// Wait waits until the job is READY or has ended, calling the progress
// callback along the way.  It returns ctx.Err() if ctx is done first, the
// job's own *Error if it FAILED, and the state otherwise.
func (j *Job) Wait(ctx context.Context) (JobState, error) {
	for {
		s, err := j.step(0)
		if err != nil {
			return s, err
		}
		if s >= JobReady {
			break
		}
		ms := int(slice / time.Millisecond)
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl); left < slice {
				ms = int(left / time.Millisecond)
			}
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		default:
		}
		if ms > 0 {
			if _, err := j.step(ms); err != nil {
				return s, err
			}
		}
	}
	var s JobState
	err := j.use("vstor_job_wait", func(h capi.Struct_SS_vstor_job) error {
		r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_job_wait(r, h, 0) })
		r.free()
		s = JobState(capi.Vsb_job_state(h))
		return err
	})
	return s, err
}

// simple runs a state-changing call.  Pivot, complete and cancel change
// the volume too, so the volume's lock is held as well (always taken
// before the job's, as Volume.Close does).
func (j *Job) simple(op string, f func(r capi.Vsb_res, h capi.Struct_SS_vstor_job) int) error {
	j.vol.mu.Lock()
	defer j.vol.mu.Unlock()
	return j.use(op, func(h capi.Struct_SS_vstor_job) error {
		r, _, err := call(func(r capi.Vsb_res) int { return f(r, h) })
		r.free()
		return err
	})
}

// SetSpeed changes the speed limit (bytes/s, 0 unlimited).
func (j *Job) SetSpeed(bytesPerSec uint64) error {
	return j.simple("vstor_job_set_speed", func(r capi.Vsb_res, h capi.Struct_SS_vstor_job) int {
		return capi.Vsb_job_set_speed(r, h, bytesPerSec)
	})
}

// Pivot switches the volume onto the copy; only in READY (else ErrState).
func (j *Job) Pivot() error {
	return j.simple("vstor_job_pivot", func(r capi.Vsb_res, h capi.Struct_SS_vstor_job) int {
		return capi.Vsb_job_pivot(r, h, 0)
	})
}

// Complete ends the job keeping a point-in-time copy; the volume stays on
// its source.  Only in READY (else ErrState).
func (j *Job) Complete() error {
	return j.simple("vstor_job_complete", func(r capi.Vsb_res, h capi.Struct_SS_vstor_job) int {
		return capi.Vsb_job_complete(r, h, 0)
	})
}

// Cancel stops the job and removes the partial copy; the source is untouched.
func (j *Job) Cancel() error {
	return j.simple("vstor_job_cancel", func(r capi.Vsb_res, h capi.Struct_SS_vstor_job) int {
		return capi.Vsb_job_cancel(r, h, 0)
	})
}

// Close frees the job, cancelling it if it has not ended.  Closing twice
// is harmless.
func (j *Job) Close() error {
	j.vol.mu.Lock()
	defer j.vol.mu.Unlock()
	return j.closeLocked()
}

// closeLocked frees the job; the caller holds j.vol.mu.
func (j *Job) closeLocked() error {
	j.mu.Lock()
	h := j.h
	j.h = nil
	j.mu.Unlock()
	if h == nil {
		return nil
	}
	capi.Vstor_job_free(h)
	j.vol.forget(j)
	return nil
}
