# 300: freeze-and-snapshot of a mounted XFS, frozen window reported.
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import subprocess

import pytest

import vstor
from conftest import run, sha256


def test_300_snapshot_consistent(vol, vol_env):
    digest = vol_env.write_data("data.bin", 4 << 20)
    dest = vol_env.path("snap.img")
    rep = vol.snapshot(dest, timeout_ms=5000)
    assert isinstance(rep.frozen_us, int)
    assert 0 < rep.frozen_us < 5_000_000
    assert rep.consistency == vstor.Consistency.FS
    assert rep.method
    assert os.path.getsize(dest) == os.path.getsize(vol_env.image)
    # The copy is a mountable XFS with the data as it was.
    mnt = vol_env.path("snapmnt")
    os.mkdir(mnt)
    loop = run("losetup", "-f", "--show", "-r", dest)
    try:
        run("mount", "-t", "xfs", "-o", "ro,nouuid,norecovery", loop, mnt)
        try:
            assert sha256(os.path.join(mnt, "data.bin")) == digest
        finally:
            run("umount", mnt)
    finally:
        subprocess.run(["losetup", "-d", loop])
    # The source filesystem was thawed: it takes writes again.
    vol_env.write_data("after.bin", 4096)


def test_300_snapshot_dest_exists(vol, vol_env):
    dest = vol_env.path("exists.img")
    open(dest, "w").close()
    with pytest.raises(vstor.ExistsError) as ei:
        vol.snapshot(dest)
    assert ei.value.code == vstor.Code.EXIST
    assert ei.value.op == "vstor_snapshot"
    assert os.path.getsize(dest) == 0


def test_300_dry_run(vol, vol_env):
    dest = vol_env.path("never.img")
    rep = vol.snapshot(dest, dry_run=True)
    assert rep.steps
    assert not os.path.exists(dest)


def test_300_snapshot_expedite(vol, vol_env):
    # expedite=True reaches the library: the freeze step says so, and the
    # kernel knob is back to what it was afterwards.
    knob = "/sys/kernel/rcu_expedited"
    with open(knob) as f:
        before = f.read().strip()
    dest = vol_env.path("snap-expedite.img")
    rep = vol.snapshot(dest, timeout_ms=5000, expedite=True)
    assert rep.consistency == vstor.Consistency.FS
    assert "expedited" in rep.steps[0].detail
    with open(knob) as f:
        assert f.read().strip() == before
    vol_env.write_data("after-expedite.bin", 4096)
