#!/usr/bin/python3
"""Generate doc/vstor.3 from include/vstor.h: the introduction below, then
one subsection per public function with its prototype and the comment
written above it in the header.  Run after changing the header:
    /usr/bin/python3 doc/gen-vstor3.py > doc/vstor.3
(tests/core checks every exported symbol has its entry here)."""
import re, sys, pathlib
hdr = (pathlib.Path(__file__).parent.parent / "include" / "vstor.h").read_text()

def esc(s):
    return s.replace("\\", "\\e").replace("-", "\\-")

out = [r""".TH VSTOR 3 "2026" "libvstor 0.1" "libvstor manual"
.SH NAME
libvstor \- live storage operations on virtual machine disks
.SH SYNOPSIS
.nf
.B #include <vstor.h>
.PP
.B cc ... $(pkg-config --cflags --libs libvstor)
.fi
.SH DESCRIPTION
libvstor opens a volume by one URI (see
.BR vstor-uri (7))
and operates on it through every layer of its stack: storage (image file,
LVM logical volume, RBD image), exposure (loop device, device-mapper),
hypervisor (libvirt/QEMU disk, Xen vbd) and filesystem.
.PP
A
.I context
(\fBvstor_ctx\fR) holds the state directory (per-volume lock files and the
operation journal; default \fI$VSTOR_STATE_DIR\fR or \fI/var/lib/vstor\fR),
the backend module directory and a log callback.  A
.I volume
(\fBvstor_vol\fR) is opened from a context; operations on it are
\fBvstor_extend\fR(), \fBvstor_snapshot\fR() and \fBvstor_mirror\fR(), which
returns a
.I job
(\fBvstor_job\fR) with a state machine: PENDING, RUNNING, READY (in sync),
then PIVOTED, COMPLETED, CANCELLED or FAILED.  Pivot and complete are
permitted only in READY.
.PP
All types are opaque.  Unknown flag bits are refused.  Every call that can
fail returns \-1 (or NULL) and sets a thread-local error read with
\fBvstor_last_error\fR(), \fBvstor_last_errno\fR() and
\fBvstor_last_code\fR(); a successful call leaves it untouched.  Calls on one
volume handle are serialised by the library; a job runs on one thread of
its own, the only thread the library starts.
.SH ERRORS
Stable codes (\fBenum vstor_code\fR), never renumbered:
.BR VSTOR_E_INVAL ", " VSTOR_E_NOENT ", " VSTOR_E_EXIST ", " VSTOR_E_BUSY ", "
.BR VSTOR_E_NOSPC ", " VSTOR_E_PERM ", " VSTOR_E_NOTSUP ", " VSTOR_E_AGAIN ", "
.BR VSTOR_E_TIMEOUT ", " VSTOR_E_STATE ", " VSTOR_E_BACKEND ", " VSTOR_E_IO ", "
.BR VSTOR_E_CANCELLED ", " VSTOR_E_INTERNAL ", " VSTOR_E_PARTIAL .
PARTIAL means some layers changed and a later one failed: the report says
which steps are done.
.SH FUNCTIONS
All functions below appeared in version 0.1 (symbol version VSTOR_0.1)."""]

# Walk declarations: a comment block followed by one or more prototypes.
pending = []
for m in re.finditer(r"(/\*\*?(?:.|\n)*?\*/)|(^[a-zA-Z_][^;#{}]*?\b(vstor_[a-z0-9_]+)\s*\(([^;]*?)\)\s*;)", hdr, re.M):
    if m.group(1):
        pending = [m.group(1)]
        continue
    proto = " ".join(m.group(2).split())
    name = m.group(3)
    comment = ""
    if pending:
        c = pending[0]
        c = re.sub(r"^/\*\*?|\*/$", "", c)
        c = "\n".join(l.strip().lstrip("*").strip() for l in c.splitlines())
        comment = " ".join(c.split())
    out.append(".SS %s" % name)
    out.append(".nf\n.B %s\n.fi" % esc(proto))
    if comment:
        out.append(esc(comment))
out.append(r""".SH ENVIRONMENT
.TP
.B VSTOR_STATE_DIR
default state directory.
.TP
.B VSTOR_BACKEND_DIR
directory of the backend modules (vstor\-NAME.so), e.g. a build tree's lib/backends.
.TP
.B VSTOR_FAULT
fault injection for tests: POINT[:kill|exit|sleep=MS] stops (or stalls) the
process at a named step; see doc/crash-safety.md.
.SH SEE ALSO
.BR vstor (1),
.BR vstor-uri (7)""")
sys.stdout.write("\n".join(out) + "\n")
