// SPDX-License-Identifier: LGPL-2.1-or-later

package vstor

import (
	"strconv"
	"strings"
	"syscall"

	"libvstor/bindings/go/vstor/internal/capi"
)

// Code is a stable libvstor error code (enum vstor_code).  A Code is also
// an error, so the Err* constants below work as sentinels with errors.Is.
type Code int

// The codes; values never change.
const (
	CodeOK        Code = 0
	CodeInval     Code = 1
	CodeNoEnt     Code = 2
	CodeExist     Code = 3
	CodeBusy      Code = 4
	CodeNoSpace   Code = 5
	CodePerm      Code = 6
	CodeNotSup    Code = 7
	CodeAgain     Code = 8
	CodeTimeout   Code = 9
	CodeState     Code = 10
	CodeBackend   Code = 11
	CodeIO        Code = 12
	CodeCancelled Code = 13
	CodeInternal  Code = 14
	CodePartial   Code = 15
)

// Sentinels for errors.Is(err, vstor.ErrBusy).
const (
	ErrInval     = CodeInval     // bad argument, URI, size or flag
	ErrNoEnt     = CodeNoEnt     // no such volume, domain, disk
	ErrExist     = CodeExist     // destination already exists
	ErrBusy      = CodeBusy      // locked by another process or in use
	ErrNoSpace   = CodeNoSpace   // not enough space to grow or copy
	ErrPerm      = CodePerm      // permission denied, or refused by the kernel
	ErrNotSup    = CodeNotSup    // missing module, tool, daemon, kernel feature
	ErrAgain     = CodeAgain     // a retry may succeed
	ErrTimeout   = CodeTimeout   // a bounded wait ran out
	ErrState     = CodeState     // not permitted in the object's state, or closed
	ErrBackend   = CodeBackend   // an external tool or daemon failed
	ErrIO        = CodeIO        // I/O error
	ErrCancelled = CodeCancelled // the operation was cancelled
	ErrInternal  = CodeInternal  // a bug in libvstor
	ErrPartial   = CodePartial   // some layers changed, a later one failed
)

// String is the library's name of the code ("BUSY").
func (c Code) String() string {
	if n := capi.Vstor_code_name(int(c)); n != "" {
		return n
	}
	return "CODE_" + strconv.Itoa(int(c))
}

// Error makes a Code usable as a sentinel error.
func (c Code) Error() string { return "vstor: " + c.String() }

// Error is the error returned by every failing call.
type Error struct {
	Code   Code          // stable code: compare with errors.Is(err, vstor.ErrBusy)
	Errno  syscall.Errno // system errno behind it, 0 if none applies
	Op     string        // the C call that failed ("vstor_extend")
	Msg    string        // the library's message, naming the call and the object
	Report *Report       // for PARTIAL failures: what ran
}

func (e *Error) Error() string { return e.Msg }

// Is matches a Code sentinel (ErrBusy) or another *Error with the same code.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case Code:
		return e.Code == t
	case *Error:
		return e.Code == t.Code
	}
	return false
}

// Unwrap gives the errno, so errors.Is(err, syscall.ENOSPC) works too.
func (e *Error) Unwrap() error {
	if e.Errno != 0 {
		return e.Errno
	}
	return nil
}

func newError(code, errno int, msg string) *Error {
	op := ""
	if i := strings.IndexByte(msg, ':'); i > 0 {
		op = msg[:i]
	}
	return &Error{Code: Code(code), Errno: syscall.Errno(errno), Op: op, Msg: msg}
}

func closedError(op, what string) *Error {
	return &Error{Code: CodeState, Op: op, Msg: op + ": " + what + " is closed"}
}

// result wraps one capi.Vsb_res: the outcome of one helper call, with the
// error captured in the same C call (a goroutine may change OS thread
// between two cgo calls, so the C thread-local error cannot be read later).
type result struct{ r capi.Vsb_res }

func newResult() *result { return &result{capi.NewVsb_res()} }

func (r *result) free() { capi.DeleteVsb_res(r.r) }

func (r *result) err(rc int) error {
	if rc >= 0 {
		return nil
	}
	return newError(r.r.GetCode(), r.r.GetErr(), r.r.GetMsg())
}

// call runs one helper and returns its rc and error; the caller reads
// out-values from r before r.free().
func call(f func(capi.Vsb_res) int) (*result, int, error) {
	r := newResult()
	rc := f(r.r)
	return r, rc, r.err(rc)
}
