# 200: extend online through every layer, dry run, refusals.
# SPDX-License-Identifier: LGPL-2.1-or-later

import os

import pytest

import vstor
from conftest import IMAGE_SIZE, blockdev_size


def fs_size(mnt: str) -> int:
    st = os.statvfs(mnt)
    return st.f_blocks * st.f_frsize


def test_200_extend_relative_with_fs(vol, vol_env):
    fs_before = fs_size(vol_env.mnt)
    rep = vol.extend("+64M", resize_fs=True)
    assert isinstance(rep, vstor.Report)
    assert rep.old_size == IMAGE_SIZE
    assert rep.new_size == IMAGE_SIZE + (64 << 20)
    assert vol.size == rep.new_size
    assert os.path.getsize(vol_env.image) == rep.new_size
    # What users care about: the device and the filesystem see the space.
    assert blockdev_size(vol_env.loop) == rep.new_size
    assert fs_size(vol_env.mnt) > fs_before + (32 << 20)
    assert rep.steps and all(s.status in (vstor.StepStatus.DONE, vstor.StepStatus.SKIPPED)
                             for s in rep.steps)


def test_200_extend_bytes_and_prealloc(vol, vol_env):
    new = IMAGE_SIZE + (16 << 20)
    rep = vol.extend(new, prealloc=True)
    assert rep.new_size == new == vol.size
    assert blockdev_size(vol_env.loop) == new
    # prealloc allocated the new tail of the file
    assert os.stat(vol_env.image).st_blocks * 512 >= 16 << 20


def test_200_extend_same_size_is_noop(vol):
    rep = vol.extend(IMAGE_SIZE)
    assert vol.size == IMAGE_SIZE
    assert rep.new_size in (0, IMAGE_SIZE)


def test_200_dry_run_changes_nothing(vol, vol_env):
    rep = vol.extend("+1G", resize_fs=True, dry_run=True)
    assert rep.steps
    assert all(s.status == vstor.StepStatus.PLANNED for s in rep.steps)
    assert vol.size == IMAGE_SIZE
    assert os.path.getsize(vol_env.image) == IMAGE_SIZE


def test_200_shrink_refused(vol, vol_env):
    with pytest.raises(vstor.InvalidError) as ei:
        vol.extend(IMAGE_SIZE - (1 << 20))
    assert ei.value.code == vstor.Code.INVAL
    assert ei.value.op == "vstor_extend"
    assert vol.size == IMAGE_SIZE


def test_200_bad_size_text(vol):
    with pytest.raises(vstor.InvalidError) as ei:
        vol.extend("+12Q")
    assert ei.value.op == "vstor_parse_size"
    assert vstor.parse_size("1G") == 1 << 30
    assert vstor.parse_size("+1M", 1) == (1 << 20) + 1
