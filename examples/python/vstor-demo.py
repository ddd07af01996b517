#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""libvstor demo: open a volume, extend it, snapshot it, mirror and pivot.

    vstor-demo.py VOLUME WORKDIR [--grow +64M] [--speed 64M]

VOLUME is a URI ("/var/lib/images/vm1.img", "loop:/dev/loop0", ...);
the snapshot and the mirror copy are written into WORKDIR.  Run from the
build tree with LD_LIBRARY_PATH=build/lib PYTHONPATH=build/bindings/python.
"""

import argparse
import os
import sys

import vstor


def bar(done: int, total: int) -> None:
    if total:
        n = done * 40 // total
        print(f"\r  [{'#' * n}{'.' * (40 - n)}] {done >> 20}/{total >> 20} MiB",
              end="", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("volume")
    ap.add_argument("workdir")
    ap.add_argument("--grow", default="+64M", help="size or +delta (default +64M)")
    ap.add_argument("--speed", default="0", help="mirror speed limit per second")
    a = ap.parse_args()

    with vstor.Context() as ctx, ctx.open(a.volume) as vol:
        # 1. open: what is this volume made of?
        print(f"{a.volume}: {vol.size} bytes, backend {vol.backend}")
        for layer in vol.layers:
            print(f"  {layer.role:10} {layer.type:6} {layer.path} {layer.props}")

        # 2. extend through every layer (and the filesystem when mounted)
        grow_fs, _ = vol.can("resize-fs")
        plan = vol.extend(a.grow, resize_fs=grow_fs, dry_run=True)
        print("extend plan:\n" + "\n".join("  " + l for l in str(plan).splitlines()))
        rep = vol.extend(a.grow, resize_fs=grow_fs)
        print(f"extended {rep.old_size} -> {rep.new_size}")

        # 3. snapshot: frozen if it can be, crash-consistent otherwise
        can_freeze, why = vol.can("freeze")
        snap = os.path.join(a.workdir, "snapshot.img")
        rep = vol.snapshot(snap, crash_consistent=not can_freeze)
        print(f"snapshot {snap}: {rep.consistency.name}, frozen {rep.frozen_us} us,"
              f" {rep.method}" + ("" if can_freeze else f" (no freeze: {why})"))

        # 4. mirror, then pivot onto the copy (or keep it, if pivot is refused)
        copy = os.path.join(a.workdir, "mirror.img")
        with vol.mirror(copy, speed=vstor.parse_size(a.speed), progress=bar) as job:
            job.wait()
            print()
            try:
                job.pivot()
                print(f"pivoted: the volume now runs on {copy}")
            except vstor.NotSupportedError as e:
                print(f"pivot refused ({e}); keeping the copy instead")
                job.complete()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except vstor.Error as e:
        print(f"error: {e} [{e.code_name}]", file=sys.stderr)
        sys.exit(1)
