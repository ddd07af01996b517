# libvstor - Python binding
#
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Live storage operations on virtual machine disks (libvstor).

Open a volume by URI, then extend it online through every layer, take a
consistent snapshot with a bounded frozen window, or mirror it elsewhere
and pivot onto the copy::

    import vstor

    with vstor.Context() as ctx, ctx.open("/var/lib/images/vm1.img") as vol:
        print(vol.size, [l.type for l in vol.layers])
        ok, why = vol.can("extend-online")
        vol.extend("+10G", resize_fs=True)
        rep = vol.snapshot("/backup/vm1.snap")
        print("frozen for", rep.frozen_us, "us")
        with vol.mirror("/fast/vm1.img", speed=200 << 20,
                        progress=lambda done, total: print(done, total)) as job:
            job.wait()
            job.pivot()

Errors raise subclasses of :class:`vstor.Error` (``BusyError``,
``NotSupportedError``, ``NoSpaceError``...), each carrying ``.code`` (a
stable :class:`Code`), ``.errno`` and ``.op`` (the C call that failed).

Objects and threads: a :class:`Volume` keeps its :class:`Context` alive and
a :class:`Job` keeps its Volume alive; closing a parent closes its children
first (closing a volume cancels its unfinished jobs).  ``close()`` may be
called any number of times.  Every object has a lock, so one object may be
shared between threads; calls on one volume (and its jobs' pivot, complete,
cancel) run one at a time, since a libvstor volume handle runs one
operation at a time.  Open the volume twice to work on it from two threads
at once; the library's volume lock then arbitrates.

Progress: the progress callback of :meth:`Volume.mirror` is called from the
thread that calls :meth:`Job.wait` or :meth:`Job.poll`, never from the
library's copy thread, so it may do anything a normal Python function does.
"""

from __future__ import annotations

import enum
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

from . import capi as _c

__all__ = [
    "Code", "Op", "JobState", "StepStatus", "Consistency",
    "Error", "InvalidError", "NotFoundError", "ExistsError", "BusyError",
    "NoSpaceError", "PermissionDeniedError", "NotSupportedError",
    "TryAgainError", "TimedOutError", "StateError", "BackendError",
    "InputOutputError", "CancelledError", "InternalError", "PartialError",
    "Context", "Volume", "Job", "Report", "Step", "Layer",
    "parse_size", "version", "__version__", "backends",
]

ProgressFn = Callable[[int, int], None]
SizeLike = Union[int, str]

# ---- enums -------------------------------------------------------------


class Code(enum.IntEnum):
    """Stable error codes (``enum vstor_code``)."""
    OK = _c.VSTOR_E_OK
    INVAL = _c.VSTOR_E_INVAL
    NOENT = _c.VSTOR_E_NOENT
    EXIST = _c.VSTOR_E_EXIST
    BUSY = _c.VSTOR_E_BUSY
    NOSPC = _c.VSTOR_E_NOSPC
    PERM = _c.VSTOR_E_PERM
    NOTSUP = _c.VSTOR_E_NOTSUP
    AGAIN = _c.VSTOR_E_AGAIN
    TIMEOUT = _c.VSTOR_E_TIMEOUT
    STATE = _c.VSTOR_E_STATE
    BACKEND = _c.VSTOR_E_BACKEND
    IO = _c.VSTOR_E_IO
    CANCELLED = _c.VSTOR_E_CANCELLED
    INTERNAL = _c.VSTOR_E_INTERNAL
    PARTIAL = _c.VSTOR_E_PARTIAL


class Op(enum.IntEnum):
    """Operations a volume or backend may be asked about (:meth:`Volume.can`)."""
    EXTEND = _c.VSTOR_OP_EXTEND
    EXTEND_ONLINE = _c.VSTOR_OP_EXTEND_ONLINE
    RESIZE_FS = _c.VSTOR_OP_RESIZE_FS
    SNAPSHOT = _c.VSTOR_OP_SNAPSHOT
    FREEZE = _c.VSTOR_OP_FREEZE
    MIRROR = _c.VSTOR_OP_MIRROR
    PIVOT = _c.VSTOR_OP_PIVOT

    @property
    def label(self) -> str:
        """The library's name of the operation ("extend-online")."""
        return _c.vstor_op_name(int(self)) or self.name.lower()

    @classmethod
    def coerce(cls, op: Union["Op", int, str]) -> "Op":
        """Op from an Op, its number, or a name ("extend-online", "EXTEND_ONLINE")."""
        if isinstance(op, str):
            key = op.strip().lower().replace("_", "-")
            for o in cls:
                if o.label == key or o.name.lower().replace("_", "-") == key:
                    return o
            raise InvalidError(Code.INVAL, 0, "vstor_vol_can",
                               f"vstor_vol_can: unknown operation {op!r}")
        return cls(op)


class JobState(enum.IntEnum):
    """State of a mirror :class:`Job` (``enum vstor_job_state``)."""
    PENDING = _c.VSTOR_JOB_PENDING
    RUNNING = _c.VSTOR_JOB_RUNNING
    READY = _c.VSTOR_JOB_READY
    PIVOTED = _c.VSTOR_JOB_PIVOTED
    COMPLETED = _c.VSTOR_JOB_COMPLETED
    CANCELLED = _c.VSTOR_JOB_CANCELLED
    FAILED = _c.VSTOR_JOB_FAILED

    @property
    def ended(self) -> bool:
        """True once the job can change no more."""
        return self >= JobState.PIVOTED


class StepStatus(enum.IntEnum):
    """Status of one step of a :class:`Report`."""
    PLANNED = _c.VSTOR_STEP_PLANNED
    DONE = _c.VSTOR_STEP_DONE
    SKIPPED = _c.VSTOR_STEP_SKIPPED
    FAILED = _c.VSTOR_STEP_FAILED
    UNDONE = _c.VSTOR_STEP_UNDONE


class Consistency(enum.IntEnum):
    """How consistent a snapshot is."""
    NONE = _c.VSTOR_CONSISTENT_NONE
    IDLE = _c.VSTOR_CONSISTENT_IDLE
    FS = _c.VSTOR_CONSISTENT_FS
    CRASH = _c.VSTOR_CONSISTENT_CRASH


def _enum_or_int(cls, v: int):
    try:
        return cls(v)
    except ValueError:
        return v


# ---- errors ------------------------------------------------------------


class Error(Exception):
    """A libvstor call failed.

    Attributes:
      code:   stable :class:`Code` (compare with ``Code.BUSY``...)
      errno:  the system errno behind it, 0 if none applies
      op:     the C call that failed ("vstor_extend")
      msg:    the library's message, naming the call and the object
      report: for PARTIAL failures of extend, the :class:`Report` of what ran
    """
    code: Code = Code.INTERNAL

    def __init__(self, code: int, errno: int, op: str, msg: str,
                 report: Optional["Report"] = None) -> None:
        super().__init__(msg)
        self.code = _enum_or_int(Code, code)
        self.errno = errno
        self.op = op
        self.msg = msg
        self.report = report

    @property
    def code_name(self) -> str:
        """The library's name of the code ("BUSY")."""
        return _c.vstor_code_name(int(self.code)) or str(int(self.code))

    def __str__(self) -> str:
        return self.msg

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code_name}, "
                f"errno={self.errno}, op={self.op!r}, msg={self.msg!r})")


class InvalidError(Error, ValueError):
    """Bad argument, URI, size or flag (INVAL)."""


class NotFoundError(Error, LookupError):
    """No such volume, domain or disk (NOENT)."""


class ExistsError(Error):
    """The destination already exists (EXIST)."""


class BusyError(Error):
    """Locked by another process or in use (BUSY)."""


class NoSpaceError(Error):
    """Not enough space to grow or copy (NOSPC)."""


class PermissionDeniedError(Error):
    """Permission denied, or refused by the kernel (PERM)."""


class NotSupportedError(Error):
    """Missing module, tool, daemon or kernel feature (NOTSUP)."""


class TryAgainError(Error):
    """A retry may succeed (AGAIN)."""


class TimedOutError(Error):
    """A bounded wait ran out (TIMEOUT)."""


class StateError(Error):
    """Call not permitted in the object's state, or object closed (STATE)."""


class BackendError(Error):
    """An external tool or daemon failed (BACKEND)."""


class InputOutputError(Error):
    """I/O error (IO)."""


class CancelledError(Error):
    """The operation was cancelled (CANCELLED)."""


class InternalError(Error):
    """A bug in libvstor (INTERNAL)."""


class PartialError(Error):
    """Some layers changed, a later one failed; ``.report`` says which (PARTIAL)."""


_ERROR_CLASSES: Dict[int, type] = {
    Code.INVAL: InvalidError, Code.NOENT: NotFoundError,
    Code.EXIST: ExistsError, Code.BUSY: BusyError,
    Code.NOSPC: NoSpaceError, Code.PERM: PermissionDeniedError,
    Code.NOTSUP: NotSupportedError, Code.AGAIN: TryAgainError,
    Code.TIMEOUT: TimedOutError, Code.STATE: StateError,
    Code.BACKEND: BackendError, Code.IO: InputOutputError,
    Code.CANCELLED: CancelledError, Code.INTERNAL: InternalError,
    Code.PARTIAL: PartialError,
}


def error_class(code: int) -> type:
    """The :class:`Error` subclass raised for a code (Error if unknown)."""
    return _ERROR_CLASSES.get(code, Error)


def _make_error(code: int, errno: int, msg: str,
                report: Optional["Report"] = None) -> Error:
    op = msg.split(":", 1)[0].strip() if ":" in msg else ""
    return error_class(code)(code, errno, op, msg, report)


def _closed(op: str, what: str) -> StateError:
    return StateError(Code.STATE, 0, op, f"{op}: {what} is closed")


class _Res:
    """One vsb_res: the result of one helper call (see bindings/vstor.i)."""
    __slots__ = ("r",)

    def __init__(self) -> None:
        self.r = _c.vsb_res()

    def check(self, rc: int, report: Optional["Report"] = None) -> int:
        if rc < 0:
            raise _make_error(self.r.code, self.r.err, self.r.msg or "", report)
        return rc


def _call(fn, *args) -> Tuple[int, "_c.vsb_res"]:
    res = _Res()
    return res.check(fn(res.r, *args)), res.r


# ---- plain data --------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of an operation, bottom layer first."""
    layer: str
    action: str
    status: StepStatus
    reversible: bool
    detail: str


@dataclass(frozen=True)
class Report:
    """What an operation planned (dry run) or did."""
    steps: List[Step] = field(default_factory=list)
    frozen_us: int = 0
    consistency: Consistency = Consistency.NONE
    old_size: int = 0
    new_size: int = 0
    method: str = ""

    @classmethod
    def _take(cls, rep) -> Optional["Report"]:
        """Copy a C report and free it."""
        if rep is None:
            return None
        try:
            steps = [Step(_c.vstor_report_step_layer(rep, i) or "",
                          _c.vstor_report_step_action(rep, i) or "",
                          _enum_or_int(StepStatus, _c.vstor_report_step_status(rep, i)),
                          _c.vstor_report_step_reversible(rep, i) == 1,
                          _c.vstor_report_step_detail(rep, i) or "")
                     for i in range(_c.vstor_report_step_count(rep))]
            return cls(steps, _c.vstor_report_frozen_us(rep),
                       _enum_or_int(Consistency, _c.vstor_report_consistency(rep)),
                       _c.vstor_report_old_size(rep), _c.vstor_report_new_size(rep),
                       _c.vstor_report_method(rep) or "")
        finally:
            _c.vstor_report_free(rep)

    def __str__(self) -> str:
        lines = [f"{s.status.name.lower():8} {s.layer}: {s.action}"
                 + (f" ({s.detail})" if s.detail else "") for s in self.steps]
        return "\n".join(lines)


@dataclass(frozen=True)
class Layer:
    """One layer of a volume: role ("storage", "exposure", "hypervisor",
    "filesystem"), type ("file", "loop", "xfs"...), path, size, properties."""
    role: str
    type: str
    path: str
    size: int
    props: Dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str):
        """``layer["role"]`` works too, for code that prefers dicts."""
        return getattr(self, key)


def _opts(freeze_timeout_ms: Optional[int] = None, speed: int = 0,
          snapshot_size: int = 0):
    _, r = _call(_c.vsb_opts_new, int(freeze_timeout_ms or 0), int(speed),
                 int(snapshot_size))
    return r.opts


# ---- module functions --------------------------------------------------


def version() -> str:
    """Version of the libvstor library in use ("0.1.0")."""
    return _c.vstor_version()


__version__ = "%d.%d.%d" % (_c.VSTOR_VERSION_MAJOR, _c.VSTOR_VERSION_MINOR,
                            _c.VSTOR_VERSION_MICRO)


def parse_size(text: SizeLike, current: int = 0) -> int:
    """Bytes from "50G", "+10G" (relative to `current`), "512MiB" or an int."""
    if isinstance(text, int):
        if text < 0:
            raise InvalidError(Code.INVAL, 0, "vstor_parse_size",
                               f"vstor_parse_size: negative size {text}")
        return text
    _, r = _call(_c.vsb_parse_size, str(text), int(current))
    return r.u1


def backends() -> List[str]:
    """Names of the backends libvstor knows of ("file", "lvm", ...)."""
    return [_c.vstor_backend_name(i) for i in range(_c.vstor_backend_count())]


# ---- objects -----------------------------------------------------------


class _Closeable:
    """close() on leaving a ``with`` block and when garbage-collected."""

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class Context(_Closeable):
    """A library context: state directory (locks, journal), backend modules.

    Use as a context manager, or call :meth:`close`.  Closing a context
    closes the volumes (and jobs) opened from it.
    """

    def __init__(self, state_dir: Optional[str] = None,
                 backend_dir: Optional[str] = None) -> None:
        self._lock = threading.RLock()
        self._vols: "weakref.WeakSet[Volume]" = weakref.WeakSet()
        _, r = _call(_c.vsb_ctx_new, 0)
        self._h = r.ctx
        try:
            if state_dir is not None:
                _call(_c.vsb_ctx_set_state_dir, self._h, os.fspath(state_dir))
            if backend_dir is not None:
                _call(_c.vsb_ctx_set_backend_dir, self._h, os.fspath(backend_dir))
        except Error:
            self.close()
            raise

    def _handle(self, op: str):
        if self._h is None:
            raise _closed(op, "context")
        return self._h

    @property
    def state_dir(self) -> str:
        """The state directory in use."""
        with self._lock:
            return _c.vstor_ctx_state_dir(self._handle("vstor_ctx_state_dir"))

    def open(self, uri: str, readonly: bool = False,
             exclusive: bool = False) -> "Volume":
        """Open a volume by URI ("/img", "file:/img", "loop:/dev/loop0",
        "lvm:vg/lv", "libvirt:dom/vda", ...).  Usable as a context manager."""
        flags = ((_c.VSTOR_OPEN_READONLY if readonly else 0)
                 | (_c.VSTOR_OPEN_EXCLUSIVE if exclusive else 0))
        with self._lock:
            _, r = _call(_c.vsb_open, self._handle("vstor_open"), os.fspath(uri), flags)
            vol = Volume(self, r.vol, os.fspath(uri))
            self._vols.add(vol)
            return vol

    def backend_can(self, backend: str, op: Union[Op, int, str]) -> Tuple[bool, str]:
        """Can `backend` do `op` on this machine at all?  (ok, why-not)."""
        o = Op.coerce(op)
        with self._lock:
            rc, r = _call(_c.vsb_backend_can, self._handle("vstor_backend_can"),
                          backend, int(o))
            return rc == 1, (r.why or "")

    def recover(self) -> Report:
        """Finish or roll back what a crashed process left half-done."""
        with self._lock:
            res = _Res()
            rc = _c.vsb_recover(res.r, self._handle("vstor_recover"), 0)
            rep = Report._take(res.r.report)
            res.check(rc, rep)
            return rep or Report()

    def close(self) -> None:
        """Close the volumes still open from this context, then free it."""
        with self._lock:
            if self._h is None:
                return
            for vol in list(self._vols):
                vol.close()
            _c.vstor_ctx_free(self._h)
            self._h = None

    def __repr__(self) -> str:
        return f"<vstor.Context {'closed' if self._h is None else self.state_dir}>"


class Volume(_Closeable):
    """An open volume.  Obtain one with :meth:`Context.open`."""

    def __init__(self, ctx: Context, handle, uri: str) -> None:
        self._ctx = ctx           # keeps the context alive
        self._h = handle
        self._lock = threading.RLock()
        self._jobs: "weakref.WeakSet[Job]" = weakref.WeakSet()
        self.uri = uri

    def _handle(self, op: str):
        if self._h is None:
            raise _closed(op, f"volume {self.uri}")
        return self._h

    # -- read-only properties

    @property
    def id(self) -> str:
        """Canonical id of the volume (its lock and journal key)."""
        with self._lock:
            return _c.vstor_vol_id(self._handle("vstor_vol_id"))

    @property
    def backend(self) -> str:
        """Backend serving the top layer ("file")."""
        with self._lock:
            return _c.vstor_vol_backend(self._handle("vstor_vol_backend"))

    @property
    def size(self) -> int:
        """Current size in bytes, re-read from the storage."""
        with self._lock:
            _, r = _call(_c.vsb_vol_size, self._handle("vstor_vol_size"))
            return r.u1

    @property
    def layers(self) -> List[Layer]:
        """The layers, bottom (storage) first, as read at open or refresh."""
        with self._lock:
            h = self._handle("vstor_vol_layer")
            out = []
            for i in range(_c.vstor_vol_layer_count(h)):
                ly = _c.vstor_vol_layer(h, i)
                props = {}
                j = 0
                while True:
                    k = _c.vstor_layer_prop_key(ly, j)
                    if k is None:
                        break
                    props[k] = _c.vstor_layer_prop(ly, k)
                    j += 1
                out.append(Layer(_c.vstor_layer_role(ly) or "",
                                 _c.vstor_layer_type(ly) or "",
                                 _c.vstor_layer_path(ly) or "",
                                 _c.vstor_layer_size(ly), props))
            return out

    def refresh(self) -> None:
        """Re-read the layers after something outside changed them."""
        with self._lock:
            _call(_c.vsb_vol_refresh, self._handle("vstor_vol_refresh"))

    def can(self, op: Union[Op, int, str], dry_run: bool = False,
            **flags: bool) -> Tuple[bool, str]:
        """Can `op` ("extend", "snapshot", Op.MIRROR...) be done now?

        Returns (True, "") or (False, reason).  Keyword flags are those the
        operation would be called with (resize_fs=True, crash_consistent=True...).
        """
        o = Op.coerce(op)
        f = _flags_for(o, flags) | (_c.VSTOR_DRY_RUN if dry_run else 0)
        with self._lock:
            rc, r = _call(_c.vsb_vol_can, self._handle("vstor_vol_can"), int(o), f)
            return rc == 1, (r.why or "")

    # -- operations

    def extend(self, size: SizeLike, resize_fs: bool = False,
               prealloc: bool = False, dry_run: bool = False) -> Report:
        """Grow the volume through every layer to `size`.

        `size` is bytes (int) or a string: "+10G" (relative to the current
        size), "50G", "512MiB".  Never shrinks (InvalidError).  With
        resize_fs the filesystem on top grows too; prealloc allocates the
        new space; dry_run only plans.  Returns the :class:`Report`; a
        PartialError carries the report of what ran.
        """
        flags = ((_c.VSTOR_EXTEND_RESIZE_FS if resize_fs else 0)
                 | (_c.VSTOR_EXTEND_PREALLOC if prealloc else 0)
                 | (_c.VSTOR_DRY_RUN if dry_run else 0))
        with self._lock:
            h = self._handle("vstor_extend")
            if isinstance(size, str) and size.strip().startswith("+"):
                new = parse_size(size, self.size)
            else:
                new = parse_size(size)
            return self._report_call(_c.vsb_extend, h, new, None, flags)

    def snapshot(self, dest: str, crash_consistent: bool = False,
                 no_reflink: bool = False, timeout_ms: Optional[int] = None,
                 snapshot_size: SizeLike = 0, dry_run: bool = False,
                 expedite: bool = False) -> Report:
        """Quiesce, snapshot to `dest`, thaw.  ``report.frozen_us`` is the
        frozen window; ``timeout_ms`` bounds it (default 10 s).  A volume
        that cannot be quiesced is refused unless crash_consistent.
        ``expedite`` shortens the kernel's FIFREEZE (VSTOR_SNAPSHOT_EXPEDITE)."""
        flags = ((_c.VSTOR_SNAPSHOT_CRASH_CONSISTENT if crash_consistent else 0)
                 | (_c.VSTOR_SNAPSHOT_NO_REFLINK if no_reflink else 0)
                 | (_c.VSTOR_SNAPSHOT_EXPEDITE if expedite else 0)
                 | (_c.VSTOR_DRY_RUN if dry_run else 0))
        with self._lock:
            h = self._handle("vstor_snapshot")
            opts = _opts(freeze_timeout_ms=timeout_ms,
                         snapshot_size=parse_size(snapshot_size))
            try:
                return self._report_call(_c.vsb_snapshot, h, os.fspath(dest), opts, flags)
            finally:
                _c.vstor_opts_free(opts)

    def mirror(self, dest: str, speed: int = 0, verify: bool = False,
               shallow: bool = False, reuse_dest: bool = False,
               progress: Optional[ProgressFn] = None,
               dry_run: bool = False) -> Union["Job", Report]:
        """Start copying the volume to `dest`; returns a running :class:`Job`.

        speed is a limit in bytes/s (0: none).  progress(done, total) is
        called from :meth:`Job.wait` / :meth:`Job.poll` in the caller's
        thread whenever the copied amount changed.  With dry_run no job is
        started and the plan (a :class:`Report`) is returned.
        """
        flags = ((_c.VSTOR_MIRROR_VERIFY if verify else 0)
                 | (_c.VSTOR_MIRROR_SHALLOW if shallow else 0)
                 | (_c.VSTOR_MIRROR_REUSE_DEST if reuse_dest else 0)
                 | (_c.VSTOR_DRY_RUN if dry_run else 0))
        with self._lock:
            h = self._handle("vstor_mirror")
            opts = _opts(speed=speed)
            try:
                res = _Res()
                rc = _c.vsb_mirror(res.r, h, os.fspath(dest), opts, flags)
                rep = Report._take(res.r.report)
                if rc < 0 and res.r.job is not None:   # defensive: never leak
                    _c.vstor_job_free(res.r.job)
                res.check(rc, rep)
            finally:
                _c.vstor_opts_free(opts)
            if res.r.job is None:
                return rep or Report()
            job = Job(self, res.r.job, progress)
            self._jobs.add(job)
            return job

    def _report_call(self, fn, *args) -> Report:
        res = _Res()
        rc = fn(res.r, *args)
        rep = Report._take(res.r.report)
        res.check(rc, rep)
        return rep or Report()

    def close(self) -> None:
        """Free the volume's jobs (cancelling unfinished ones), then close it."""
        with self._lock:
            if self._h is None:
                return
            for job in list(self._jobs):
                job.close()
            _call(_c.vsb_close, self._h)
            self._h = None

    def __repr__(self) -> str:
        return f"<vstor.Volume {self.uri}{' closed' if self._h is None else ''}>"


def _flags_for(op: Op, kw: Dict[str, bool]) -> int:
    table = {
        "resize_fs": _c.VSTOR_EXTEND_RESIZE_FS, "prealloc": _c.VSTOR_EXTEND_PREALLOC,
        "crash_consistent": _c.VSTOR_SNAPSHOT_CRASH_CONSISTENT,
        "no_reflink": _c.VSTOR_SNAPSHOT_NO_REFLINK,
        "expedite": _c.VSTOR_SNAPSHOT_EXPEDITE,
        "shallow": _c.VSTOR_MIRROR_SHALLOW, "reuse_dest": _c.VSTOR_MIRROR_REUSE_DEST,
        "verify": _c.VSTOR_MIRROR_VERIFY,
    }
    f = 0
    for k, v in kw.items():
        if k not in table:
            raise InvalidError(Code.INVAL, 0, "vstor_vol_can",
                               f"vstor_vol_can: unknown flag {k!r}")
        if v:
            f |= table[k]
    return f


class Job(_Closeable):
    """A mirror job.  Obtain one with :meth:`Volume.mirror`.

    Usable with ``select``: :meth:`fileno` becomes readable when the state or
    progress changes; then call :meth:`poll`.  Closing a job that has not
    ended cancels it.
    """

    def __init__(self, vol: Volume, handle, progress: Optional[ProgressFn]) -> None:
        self._vol = vol           # keeps the volume (and context) alive
        self._h = handle
        self._lock = threading.RLock()
        self._progress_fn = progress
        self._last: Optional[Tuple[int, int]] = None
        self.dest: str = _c.vstor_job_dest(handle) or ""

    def _handle(self, op: str):
        if self._h is None:
            raise _closed(op, f"job to {self.dest}")
        return self._h

    @property
    def state(self) -> JobState:
        """Current :class:`JobState`."""
        with self._lock:
            return _enum_or_int(JobState, _c.vsb_job_state(self._handle("vstor_job_state")))

    @property
    def progress(self) -> Tuple[int, int]:
        """(done, total) bytes; total is 0 while not yet measured."""
        with self._lock:
            _, r = _call(_c.vsb_job_progress, self._handle("vstor_job_progress"))
            return r.u1, r.u2

    def fileno(self) -> int:
        """File descriptor readable on every change (for select/poll)."""
        with self._lock:
            return _c.vstor_job_fd(self._handle("vstor_job_fd"))

    def poll(self) -> JobState:
        """Reset the fd's event, deliver progress to the callback if it
        changed, and return the state.  Never blocks."""
        return self._step(0)

    def _step(self, timeout_ms: int) -> JobState:
        # The lock is held across the (short, <= 100 ms) fd wait so that a
        # close() from another thread can never free the fd under it.
        with self._lock:
            h = self._handle("vstor_job_wait")
            _c.vsb_job_event(h, timeout_ms)
            st = _enum_or_int(JobState, _c.vsb_job_state(h))
            _, r = _call(_c.vsb_job_progress, h)
            cur = (r.u1, r.u2)
        if self._progress_fn is not None and cur != self._last:
            self._last = cur
            self._progress_fn(*cur)
        return st

    def wait(self, timeout: Optional[float] = None) -> JobState:
        """Wait until the job is READY or has ended, at most `timeout`
        seconds (None: no bound), calling the progress callback along the
        way.  Raises TimedOutError if the bound ran out, the job's own error
        if it FAILED; returns the state otherwise."""
        import time
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self._step(0)
            if st >= JobState.READY:
                break
            left = 100 if deadline is None else int((deadline - time.monotonic()) * 1000)
            if left <= 0:
                break
            # Short slices: a core that signals the fd late costs 100 ms at most.
            self._step(min(left, 100))
        with self._lock:
            _call(_c.vsb_job_wait, self._handle("vstor_job_wait"), 0)
            return _enum_or_int(JobState, _c.vsb_job_state(self._h))

    def set_speed(self, bytes_per_sec: int) -> None:
        """Change the speed limit (bytes/s, 0 unlimited)."""
        with self._lock:
            _call(_c.vsb_job_set_speed, self._handle("vstor_job_set_speed"), int(bytes_per_sec))

    def pivot(self) -> None:
        """Switch the volume onto the copy (only when READY, else StateError)."""
        with self._vol._lock, self._lock:
            _call(_c.vsb_job_pivot, self._handle("vstor_job_pivot"), 0)
        self.poll()

    def complete(self) -> None:
        """End keeping a point-in-time copy; the volume stays on its source."""
        with self._vol._lock, self._lock:
            _call(_c.vsb_job_complete, self._handle("vstor_job_complete"), 0)
        self.poll()

    def cancel(self) -> None:
        """Stop and remove the partial copy; the source is untouched."""
        with self._vol._lock, self._lock:
            _call(_c.vsb_job_cancel, self._handle("vstor_job_cancel"), 0)

    def close(self) -> None:
        """Free the job (cancelling it if it has not ended).  Idempotent."""
        # Freeing may cancel, which changes the volume: hold its lock first
        # (the order Volume.close uses).
        with self._vol._lock, self._lock:
            if self._h is None:
                return
            h, self._h = self._h, None
            _c.vstor_job_free(h)

    def __repr__(self) -> str:
        st = "closed" if self._h is None else self.state.name
        return f"<vstor.Job to {self.dest} {st}>"
