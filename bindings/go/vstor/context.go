// SPDX-License-Identifier: LGPL-2.1-or-later

package vstor

import (
	"sync"

	"libvstor/bindings/go/vstor/internal/capi"
)

// Options of a Context; the zero value uses $VSTOR_STATE_DIR (or
// /var/lib/vstor) and $VSTOR_BACKEND_DIR (or the installed modules).
type Options struct {
	StateDir   string // lock files and operation journal (absolute)
	BackendDir string // backend modules (absolute)
}

// Context is a library context.  Close it when done; closing it closes
// the volumes (and jobs) opened from it.
type Context struct {
	mu   sync.RWMutex // RLock: a call is using h; Lock: closing
	h    capi.Struct_SS_vstor_ctx
	kids sync.Mutex
	vols map[*Volume]struct{}
}

// NewContext creates a context.  opts may be nil.
func NewContext(opts *Options) (*Context, error) {
	r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_ctx_new(r, 0) })
	h := r.r.GetCtx()
	r.free()
	if err != nil {
		return nil, err
	}
	c := &Context{h: h, vols: map[*Volume]struct{}{}}
	if opts != nil {
		if opts.StateDir != "" {
			if err := c.simple(func(r capi.Vsb_res) int { return capi.Vsb_ctx_set_state_dir(r, h, opts.StateDir) }); err != nil {
				c.Close()
				return nil, err
			}
		}
		if opts.BackendDir != "" {
			if err := c.simple(func(r capi.Vsb_res) int { return capi.Vsb_ctx_set_backend_dir(r, h, opts.BackendDir) }); err != nil {
				c.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *Context) simple(f func(capi.Vsb_res) int) error {
	r, _, err := call(f)
	r.free()
	return err
}

// use runs f with the handle held against Close.
func (c *Context) use(op string, f func(h capi.Struct_SS_vstor_ctx) error) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.h == nil {
		return closedError(op, "context")
	}
	return f(c.h)
}

// StateDir is the state directory in use ("" once closed).
func (c *Context) StateDir() string {
	s := ""
	c.use("vstor_ctx_state_dir", func(h capi.Struct_SS_vstor_ctx) error {
		s = capi.Vstor_ctx_state_dir(h)
		return nil
	})
	return s
}

// OpenFlags of Context.Open.
type OpenFlags uint

const (
	OpenReadOnly  OpenFlags = 1 << 0 // refuse every changing operation
	OpenExclusive OpenFlags = 1 << 1 // hold the volume lock until Close
)

// Open opens a volume by URI ("/img", "file:/img", "loop:/dev/loop0",
// "lvm:vg/lv", "libvirt:dom/vda", ...).
func (c *Context) Open(uri string, flags OpenFlags) (*Volume, error) {
	var v *Volume
	err := c.use("vstor_open", func(h capi.Struct_SS_vstor_ctx) error {
		r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_open(r, h, uri, uint(flags)) })
		vh := r.r.GetVol()
		r.free()
		if err != nil {
			return err
		}
		v = &Volume{ctx: c, h: vh, URI: uri, jobs: map[*Job]struct{}{}}
		c.kids.Lock()
		c.vols[v] = struct{}{}
		c.kids.Unlock()
		return nil
	})
	return v, err
}

// BackendCan says whether backend `name` can do op on this machine at all;
// when not, why says what is missing.
func (c *Context) BackendCan(name string, op Op) (ok bool, why string, err error) {
	err = c.use("vstor_backend_can", func(h capi.Struct_SS_vstor_ctx) error {
		r, rc, err := call(func(r capi.Vsb_res) int { return capi.Vsb_backend_can(r, h, name, int(op)) })
		defer r.free()
		ok, why = rc == 1, r.r.GetWhy()
		return err
	})
	return
}

// Recover finishes or rolls back what a crashed process left half-done.
func (c *Context) Recover() (*Report, error) {
	var rep *Report
	err := c.use("vstor_recover", func(h capi.Struct_SS_vstor_ctx) error {
		r, _, err := call(func(r capi.Vsb_res) int { return capi.Vsb_recover(r, h, 0) })
		defer r.free()
		rep = takeReport(r.r.GetReport())
		if e, ok := err.(*Error); ok {
			e.Report = rep
		}
		return err
	})
	return rep, err
}

func (c *Context) forget(v *Volume) {
	c.kids.Lock()
	delete(c.vols, v)
	c.kids.Unlock()
}

// Close closes the volumes still open from this context, then frees it.
// Closing twice is harmless.
func (c *Context) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h == nil {
		return nil
	}
	c.kids.Lock()
	vols := make([]*Volume, 0, len(c.vols))
	for v := range c.vols {
		vols = append(vols, v)
	}
	c.kids.Unlock()
	var first error
	for _, v := range vols {
		if err := v.Close(); err != nil && first == nil {
			first = err
		}
	}
	capi.Vstor_ctx_free(c.h)
	c.h = nil
	return first
}
