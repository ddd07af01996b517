// SPDX-License-Identifier: LGPL-2.1-or-later

package vstor

import (
	"time"

	"libvstor/bindings/go/vstor/internal/capi"
)

// Op is an operation a volume or backend may be asked about (Volume.Can).
type Op int

// Operations (enum vstor_op).
const (
	OpExtend       Op = 0
	OpExtendOnline Op = 1 // extend while the volume is in use
	OpResizeFS     Op = 2 // grow the filesystem on the volume
	OpSnapshot     Op = 3
	OpFreeze       Op = 4 // quiesce for an application-consistent snapshot
	OpMirror       Op = 5
	OpPivot        Op = 6
)

// String is the library's name of the operation ("extend-online").
func (o Op) String() string { return capi.Vstor_op_name(int(o)) }

// JobState is the state of a mirror Job.
type JobState int

// Job states (enum vstor_job_state).
const (
	JobPending   JobState = 0 // created, not copying yet
	JobRunning   JobState = 1 // copying
	JobReady     JobState = 2 // in sync: Pivot or Complete permitted
	JobPivoted   JobState = 3 // the volume now uses the copy
	JobCompleted JobState = 4 // copy kept, the volume stays on its source
	JobCancelled JobState = 5 // copy removed, source untouched
	JobFailed    JobState = 6
)

func (s JobState) String() string { return capi.Vstor_job_state_name(int(s)) }

// Ended is true once the job can change no more.
func (s JobState) Ended() bool { return s >= JobPivoted }

// StepStatus is the status of one step of a Report.
type StepStatus int

const (
	StepPlanned StepStatus = 0
	StepDone    StepStatus = 1
	StepSkipped StepStatus = 2
	StepFailed  StepStatus = 3
	StepUndone  StepStatus = 4
)

// Consistency of a snapshot.
type Consistency int

const (
	ConsistentNone  Consistency = 0 // no snapshot was taken
	ConsistentIdle  Consistency = 1 // nothing had it open
	ConsistentFS    Consistency = 2 // filesystem frozen
	ConsistentCrash Consistency = 3 // crash-consistent only
)

// Step is one step of an operation, bottom layer first.
type Step struct {
	Layer, Action string
	Status        StepStatus
	Reversible    bool
	Detail        string
}

// Report says what an operation planned (dry run) or did.
type Report struct {
	Steps       []Step
	FrozenUS    uint64 // frozen (or paused) window of a snapshot, microseconds
	Consistency Consistency
	OldSize     uint64
	NewSize     uint64
	Method      string // "reflink", "sparse-copy", ...
}

// Frozen is the frozen window as a Duration.
func (r *Report) Frozen() time.Duration { return time.Duration(r.FrozenUS) * time.Microsecond }

// takeReport copies a C report and frees it.
func takeReport(rep capi.Struct_SS_vstor_report) *Report {
	if rep == nil || rep.Swigcptr() == 0 {
		return nil
	}
	defer capi.Vstor_report_free(rep)
	out := &Report{
		FrozenUS:    capi.Vstor_report_frozen_us(rep),
		Consistency: Consistency(capi.Vstor_report_consistency(rep)),
		OldSize:     capi.Vstor_report_old_size(rep),
		NewSize:     capi.Vstor_report_new_size(rep),
		Method:      capi.Vstor_report_method(rep),
	}
	n := capi.Vstor_report_step_count(rep)
	for i := int64(0); i < n; i++ {
		out.Steps = append(out.Steps, Step{
			Layer:      capi.Vstor_report_step_layer(rep, i),
			Action:     capi.Vstor_report_step_action(rep, i),
			Status:     StepStatus(capi.Vstor_report_step_status(rep, i)),
			Reversible: capi.Vstor_report_step_reversible(rep, i) == 1,
			Detail:     capi.Vstor_report_step_detail(rep, i),
		})
	}
	return out
}

// Layer is one layer of a volume, bottom (storage) first.
type Layer struct {
	Role  string // "storage", "exposure", "hypervisor", "filesystem"
	Type  string // "file", "loop", "xfs", ...
	Path  string
	Size  uint64 // 0 when it has none (a mount)
	Props map[string]string
}

// Version of the libvstor library in use ("0.1.0").
func Version() string { return capi.Vstor_version() }

// Backends lists the backends libvstor knows of ("file", "lvm", ...).
func Backends() []string {
	n := capi.Vstor_backend_count()
	out := make([]string, 0, n)
	for i := int64(0); i < n; i++ {
		out = append(out, capi.Vstor_backend_name(i))
	}
	return out
}

// ParseSize parses "50G", "+10G" (relative to current), "512MiB", "1048576".
func ParseSize(text string, current uint64) (uint64, error) {
	r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_parse_size(r, text, current) })
	defer r.free()
	if err != nil {
		return 0, err
	}
	return r.r.GetU1(), nil
}

func newOpts(freezeTimeout time.Duration, speed, snapshotSize uint64) (capi.Struct_SS_vstor_opts, error) {
	ms := uint(0)
	if freezeTimeout > 0 {
		ms = uint((freezeTimeout + time.Millisecond - 1) / time.Millisecond)
	}
	r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_opts_new(r, ms, speed, snapshotSize) })
	defer r.free()
	if err != nil {
		return nil, err
	}
	return r.r.GetOpts(), nil
}
