# Fixtures of the Python binding tests: real loop-backed XFS volumes.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Each test that asks for `vol_env` gets a fresh sparse image file with XFS
# on it, attached to a loop device and mounted, created here and always
# torn down (unmount, detach every loop device backing a file of the test,
# remove the files) even when the test fails.  Missing tools or privileges
# FAIL the test: a lab that cannot run is not a pass.

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import List

import pytest

import vstor

IMAGE_SIZE = 512 << 20      # XFS needs >= 300 MiB


def pytest_sessionfinish(session, exitstatus):
    # "No tests collected" (5) must never count as success.
    if exitstatus == 5:
        session.exitstatus = 1


def run(*argv: str, check: bool = True) -> str:
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout.strip()


@pytest.fixture(scope="session")
def lab_ok():
    missing = [t for t in ("losetup", "mkfs.xfs", "mount", "umount", "truncate")
               if shutil.which(t) is None]
    if missing:
        pytest.fail(f"lab tools missing: {missing} (apt install util-linux xfsprogs)")
    if os.geteuid() != 0:
        pytest.fail("the binding tests need root (loop devices, mount)")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def loops_of(path: str) -> List[str]:
    out = run("losetup", "-j", path, check=False)
    return [line.split(":", 1)[0] for line in out.splitlines() if line]


def loop_backing(dev: str) -> str:
    name = os.path.basename(dev)
    with open(f"/sys/block/{name}/loop/backing_file") as f:
        return f.read().strip()


def blockdev_size(dev: str) -> int:
    return int(run("blockdev", "--getsize64", dev))


@dataclass
class VolEnv:
    dir: str
    image: str
    loop: str
    mnt: str
    state_dir: str

    @property
    def uri(self) -> str:
        return self.image

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def write_data(self, name: str, size: int) -> str:
        """A file of random data inside the mounted filesystem; its sha256."""
        p = os.path.join(self.mnt, name)
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(left, 1 << 20)
                f.write(os.urandom(n))
                left -= n
            f.flush()
            os.fsync(f.fileno())
        return sha256(p)


def _teardown(d: str, mnt: str) -> None:
    errors = []
    if os.path.ismount(mnt):
        if subprocess.run(["umount", mnt]).returncode != 0:
            subprocess.run(["umount", "-l", mnt])
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            for dev in loops_of(p):
                if subprocess.run(["losetup", "-d", dev]).returncode != 0:
                    errors.append(dev)
    shutil.rmtree(d, ignore_errors=True)
    if errors:
        raise RuntimeError(f"could not detach {errors}")


@pytest.fixture
def vol_env(lab_ok):
    d = tempfile.mkdtemp(prefix="vstor-pytest-", dir="/var/tmp")
    mnt = os.path.join(d, "mnt")
    img = os.path.join(d, "disk.img")
    state = os.path.join(d, "state")
    os.mkdir(mnt)
    try:
        run("truncate", "-s", str(IMAGE_SIZE), img)
        run("mkfs.xfs", "-q", img)
        loop = run("losetup", "-f", "--show", img)
        run("mount", "-t", "xfs", loop, mnt)
        yield VolEnv(d, img, loop, mnt, state)
    finally:
        _teardown(d, mnt)


@pytest.fixture
def ctx(vol_env):
    backend_dir = os.environ.get("VSTOR_BACKEND_DIR")
    with vstor.Context(state_dir=vol_env.state_dir, backend_dir=backend_dir) as c:
        yield c


@pytest.fixture
def vol(ctx, vol_env):
    with ctx.open(vol_env.uri) as v:
        yield v
