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
    digest: str = ""

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


def _mounts_under(d: str) -> List[str]:
    # /proc/mounts, not os.path.ismount(): a filesystem that shut down
    # (EIO) fails the stat ismount relies on, and would be left mounted.
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    return sorted((p for p in points if p == d or p.startswith(d + "/")), reverse=True)


def _teardown(d: str, loops: List[str]) -> None:
    errors = []
    for m in _mounts_under(d):
        if subprocess.run(["umount", m]).returncode != 0:
            subprocess.run(["umount", "-l", m])
    devs = set(loops)
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            devs.update(loops_of(p))
    for dev in sorted(devs):
        # Only a device still backed by a file of ours (perhaps deleted):
        # a freed loop device may already serve someone else.
        try:
            back = loop_backing(dev)
        except OSError:
            continue
        if back.startswith(d + "/"):
            if subprocess.run(["losetup", "-d", dev]).returncode != 0:
                errors.append(dev)
    shutil.rmtree(d, ignore_errors=True)
    if errors:
        raise RuntimeError(f"could not detach {errors}")


def _make_env(seed_mb: int, ro_loop: bool, mounted: bool):
    """An image with XFS, attached to a loop device (read-only if ro_loop),
    mounted if asked; seed_mb MiB of random data in data.bin."""
    d = tempfile.mkdtemp(prefix="vstor-pytest-", dir="/var/tmp")
    mnt = os.path.join(d, "mnt")
    img = os.path.join(d, "disk.img")
    os.mkdir(mnt)
    env = None
    try:
        run("truncate", "-s", str(IMAGE_SIZE), img)
        run("mkfs.xfs", "-q", img)
        env = VolEnv(d, img, "", mnt, os.path.join(d, "state"))
        if seed_mb:
            loop = run("losetup", "-f", "--show", img)
            run("mount", "-t", "xfs", loop, mnt)
            env.digest = env.write_data("data.bin", seed_mb << 20)
            run("umount", mnt)
            run("losetup", "-d", loop)
        env.loop = run("losetup", "-f", "--show", *(["-r"] if ro_loop else []), img)
        if mounted:
            run("mount", "-t", "xfs", *(["-o", "ro"] if ro_loop else []), env.loop, mnt)
        yield env
    finally:
        _teardown(d, [env.loop] if env else [])


@pytest.fixture
def vol_env(lab_ok):
    """Read-write loop device, mounted read-write."""
    yield from _make_env(0, ro_loop=False, mounted=True)


@pytest.fixture
def idle_env(lab_ok):
    """Loop device attached but not mounted (pivot rebinds it), 64 MiB of data."""
    yield from _make_env(64, ro_loop=False, mounted=False)


@pytest.fixture
def ro_env(lab_ok):
    """Read-only loop device mounted read-only (pivot uses LOOP_CHANGE_FD)."""
    yield from _make_env(32, ro_loop=True, mounted=True)


@pytest.fixture
def ctx(vol_env):
    backend_dir = os.environ.get("VSTOR_BACKEND_DIR")
    with vstor.Context(state_dir=vol_env.state_dir, backend_dir=backend_dir) as c:
        yield c


@pytest.fixture
def vol(ctx, vol_env):
    with ctx.open(vol_env.uri) as v:
        yield v
