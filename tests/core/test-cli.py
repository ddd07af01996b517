#!/usr/bin/python3
"""libvstor core tests - the `vstor` command line (TAP output).

Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 partial.  Every
command with --json prints exactly one JSON object (parsed by json.loads)
with "ok" and, on failure, error.code naming a libvstor code.  Runs on
plain image files in a temporary directory with a temporary --state-dir:
no root, no loop device.
    test-cli.py PATH/TO/vstor
SPDX-License-Identifier: LGPL-2.1-or-later"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

VSTOR = sys.argv[1] if len(sys.argv) > 1 else "vstor"
MiB = 1 << 20
CODES = {"OK", "INVAL", "NOENT", "EXIST", "BUSY", "NOSPC", "PERM", "NOTSUP", "AGAIN",
         "TIMEOUT", "STATE", "BACKEND", "IO", "CANCELLED", "INTERNAL", "PARTIAL"}
BACKENDS = ["file", "lvm", "libvirt", "xen", "rbd"]
OPS = ["extend", "extend-online", "resize-fs", "snapshot", "freeze", "mirror", "pivot"]

tmp = tempfile.mkdtemp(prefix="vstor-cli-")
state = os.path.join(tmp, "state")
tests = []


def test(fn):
    tests.append(fn)
    return fn


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def run(*args, state_dir=True, timeout=60):
    argv = [VSTOR] + (["--state-dir", state] if state_dir else []) + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    p.argv = argv
    return p


def run_json(*args, rc=0, ok=None, code=None, **kw):
    """Run with --json; exactly one JSON object on stdout, exit status rc."""
    p = run("--json", *args, **kw)
    desc = f"{' '.join(p.argv)}: exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    check(p.returncode == rc, f"expected exit {rc}; {desc}")
    try:
        obj = json.loads(p.stdout)  # fails on "Extra data" if two objects
    except ValueError as e:
        raise Failed(f"not one JSON object ({e}); {desc}")
    check(isinstance(obj, dict), f"not a JSON object; {desc}")
    check(p.stdout.count("\n") == 1, f"expected one line of JSON; {desc}")
    check(obj.get("ok") is (rc == 0 if ok is None else ok), f"ok should be {rc == 0}; {desc}")
    if not obj["ok"]:
        err = obj.get("error")
        check(isinstance(err, dict) and err.get("code") in CODES, f"bad error object; {desc}")
        check(isinstance(err.get("message"), str) and err["message"], f"no message; {desc}")
        if code:
            check(err["code"] == code, f"expected error {code}; {desc}")
    return obj


def usage(*args):
    p = run(*args)
    desc = f"{' '.join(p.argv)}: exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    check(p.returncode == 2, f"expected usage error (2); {desc}")
    check(p.stdout == "", f"usage error printed on stdout; {desc}")
    check("--help" in p.stderr, f"no hint to --help; {desc}")
    return p


def image(name, mib=8, data=b"", fill=None):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.truncate(mib * MiB)
        if data:
            f.write(data)
        if fill:
            f.seek(2 * MiB)
            f.write(fill)
    return path


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- usage errors -------------------------------------------------------

@test
def help_and_version():
    for a in ("--help", "-h"):
        p = run(a)
        check(p.returncode == 0 and p.stdout.startswith("Usage: vstor"), f"{a}: {p}")
        for cmd in ("info", "caps", "extend", "snapshot", "mirror", "pivot", "recover"):
            check(cmd in p.stdout, f"--help does not mention {cmd}")
        check("Exit status" in p.stdout, "--help does not explain exit codes")
    for a in ("--version", "-V"):
        p = run(a)
        check(p.returncode == 0 and p.stdout.strip() == "vstor 0.1.0", f"{a}: {p.stdout!r}")


@test
def usage_errors():
    img = image("usage.img")
    usage()                                   # no command
    usage("--json")                           # options only
    usage("frobnicate")                       # unknown command
    usage("--json", "frobnicate", img)
    usage("--no-such-option", "info", img)    # unknown option
    usage("info", img, "--bogus")
    usage("info")                             # missing arguments
    usage("info", img, img)
    usage("caps", img, img)
    usage("extend", img)
    usage("extend")
    usage("snapshot", img)
    usage("mirror", img)
    usage("recover", "extra")
    usage("pivot")
    usage("cancel", img, img)
    usage("--timeout", "0", "snapshot", img, img + ".s")   # bad --timeout
    usage("--timeout", "600001", "snapshot", img, img + ".s")
    usage("--timeout", "10ms", "snapshot", img, img + ".s")
    usage("--timeout", "", "snapshot", img, img + ".s")
    usage("--timeout")                         # missing option argument
    usage("--speed", "fast", "mirror", img, img + ".m")    # bad --speed
    usage("--speed", "+10M", "mirror", img, img + ".m")
    usage("--speed", "-1", "mirror", img, img + ".m")
    check(not os.path.exists(img + ".s") and not os.path.exists(img + ".m"),
          "a usage error created a file")
    check(os.path.getsize(img) == 8 * MiB, "a usage error changed the image")


# ---- info and caps ------------------------------------------------------

@test
def info():
    img = image("info.img", 8, fill=b"x" * 4096)
    o = run_json("info", img)
    check(o["command"] == "info" and o["backend"] == "file", o)
    check(o["size"] == 8 * MiB, o)
    check(o["layers"][0]["role"] == "storage" and o["layers"][0]["path"] == img, o)
    check(o["layers"][0]["size"] == 8 * MiB, o)
    o2 = run_json("info", "file://" + img)
    check(o2["id"] == o["id"], "file:// and the bare path are not the same volume")
    p = run("info", img)
    check(p.returncode == 0 and img in p.stdout and "storage" in p.stdout, p)


@test
def info_errors():
    o = run_json("info", os.path.join(tmp, "missing.img"), rc=1, code="NOENT")
    check(o["error"]["message"].startswith("vstor_open: "), o)
    o = run_json("info", "relative.img", rc=1, code="INVAL")
    check('"relative.img"' in o["error"]["message"], o)
    run_json("info", "lvm:vg", rc=1, code="INVAL")
    run_json("info", "nfs:/x", rc=1, code="INVAL")
    empty = os.path.join(tmp, "no-modules")
    os.makedirs(empty, exist_ok=True)
    o = run_json("--backend-dir", empty, "info", "lvm:vg0/lv0", rc=1, code="NOTSUP")
    check("vstor-lvm.so" in o["error"]["message"], o)
    p = run("info", "relative.img")
    check(p.returncode == 1 and "INVAL" in p.stderr and p.stdout == "", p)


@test
def caps_backends():
    o = run_json("caps")
    names = [b["name"] for b in o["backends"]]
    check(names == BACKENDS, f"caps lists {names}")
    for b in o["backends"]:
        check(list(b["ops"]) == OPS, f"{b['name']}: ops {list(b['ops'])}")
        for op, v in b["ops"].items():
            check(isinstance(v["can"], bool), f"{b['name']} {op}: {v}")
            if not v["can"]:
                check(isinstance(v["why"], str) and len(v["why"]) > 5,
                      f"{b['name']} {op}: no reason given: {v}")
    check(o["backends"][0]["ops"]["extend"]["can"], "the file backend cannot extend?")
    # without modules: every other backend says which module is missing
    empty = os.path.join(tmp, "no-modules")
    os.makedirs(empty, exist_ok=True)
    o = run_json("--backend-dir", empty, "caps")
    for b in o["backends"][1:]:
        for v in b["ops"].values():
            check(not v["can"] and f"vstor-{b['name']}.so" in v["why"], f"{b['name']}: {v}")
    p = run("caps")
    check(p.returncode == 0, p)
    for n in BACKENDS:
        check(any(line.strip() == n for line in p.stdout.splitlines()), f"caps text lacks {n}")


@test
def caps_volume():
    img = image("caps.img")
    o = run_json("caps", img)
    check(o["uri"] == img and list(o["ops"]) == OPS, o)
    check(o["ops"]["extend"]["can"] is True, o)
    check(o["ops"]["resize-fs"]["can"] is False and o["ops"]["resize-fs"]["why"], o)


# ---- extend --------------------------------------------------------------

@test
def extend():
    img = image("ext.img", 8)
    o = run_json("extend", img, "+1M")
    check(o["command"] == "extend" and o["dry_run"] is False, o)
    check(o["old_size"] == 8 * MiB and o["new_size"] == 9 * MiB, o)
    check(os.path.getsize(img) == 9 * MiB, "the image did not grow")
    check(any(s["status"] == "done" for s in o["steps"]), o)
    o = run_json("extend", img, "16M")
    check(os.path.getsize(img) == 16 * MiB and o["new_size"] == 16 * MiB, o)
    p = run("extend", img, "+1M")
    check(p.returncode == 0 and "size:" in p.stdout, p)
    check(os.path.getsize(img) == 17 * MiB, "text mode extend")


@test
def extend_dry_run():
    img = image("dry.img", 8)
    for flag in ("--dry-run", "-n"):
        o = run_json(flag, "extend", img, "+10G")
        check(o["dry_run"] is True and o["steps"], o)
        check(all(s["status"] in ("planned", "skipped") for s in o["steps"]), o)
        check(o["new_size"] == 8 * MiB + 10 * 1024 * MiB, o)
    p = run("-n", "extend", img, "+1M")
    check(p.returncode == 0 and p.stdout.startswith("plan for extend:") and "planned" in p.stdout, p)
    check(os.path.getsize(img) == 8 * MiB, "a dry run changed the image")


@test
def extend_failures():
    img = image("extf.img", 8)
    o = run_json("extend", img, "1M", rc=1, code="INVAL")           # shrink
    check("shrink" in o["error"]["message"], o)
    o = run_json("extend", img, "10X", rc=1, code="INVAL")          # bad size
    check(o["error"]["message"].startswith("vstor_parse_size: "), o)
    run_json("extend", img, "+99999999999999999999", rc=1, code="INVAL")
    run_json("extend", img, "+8E", rc=1, code="INVAL")
    run_json("--resize-fs", "extend", img, "+1M", rc=1, code="NOTSUP")  # no filesystem
    check(os.path.getsize(img) == 8 * MiB, "a failed extend changed the image")
    p = run("extend", img, "1M")
    check(p.returncode == 1 and "INVAL" in p.stderr, p)


@test
def extend_partial():
    """Exit 3: the image grew, the filesystem step failed (an ext4 whose
    root inode is cleared: e2fsck -p refuses it)."""
    for tool in ("mkfs.ext4", "debugfs"):
        check(shutil.which(tool) or os.path.exists("/sbin/" + tool),
              f"{tool} missing (e2fsprogs, tests/deps/core.txt)")
    img = image("partial.img", 16)
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/sbin:/usr/sbin")
    subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True, env=env)
    subprocess.run(["debugfs", "-w", "-R", "clri <2>", img], check=True, env=env,
                   capture_output=True)
    o = run_json("--resize-fs", "extend", img, "+1M", rc=3, code="PARTIAL")
    check(o["ok"] is False, o)
    st = [s["status"] for s in o["steps"]]
    check("done" in st and "failed" in st, f"steps {st}")
    check(os.path.getsize(img) == 17 * MiB, "PARTIAL but the image did not grow")


# ---- snapshot, mirror, recover ------------------------------------------

@test
def snapshot():
    img = image("snap.img", 8, data=b"vstor" * 1000, fill=os.urandom(MiB))
    dest = os.path.join(tmp, "snap.copy")
    o = run_json("snapshot", img, dest)
    check(o["command"] == "snapshot" and o["consistency"] == "idle", o)
    check(isinstance(o["frozen_us"], int) and o["method"], o)
    check(sha(dest) == sha(img), "the snapshot differs from the image")
    o = run_json("snapshot", img, dest, rc=1, code="EXIST")
    check(dest in o["error"]["message"], o)
    run_json("snapshot", img, "relative.copy", rc=1, code="INVAL")
    run_json("snapshot", img, os.path.join(tmp, "nodir", "x"), rc=1, code="NOENT")
    dest2 = os.path.join(tmp, "snap.dry")
    o = run_json("-n", "snapshot", img, dest2)
    check(o["dry_run"] is True and not os.path.exists(dest2), o)
    p = run("--timeout", "5000", "--crash-consistent", "snapshot", img, dest2)
    check(p.returncode == 0 and "frozen window" in p.stdout, p)
    check(sha(dest2) == sha(img), "text-mode snapshot differs")


@test
def mirror_complete():
    img = image("mir.img", 8, fill=os.urandom(2 * MiB))
    dest = os.path.join(tmp, "mir.copy")
    o = run_json("-n", "mirror", img, dest)
    check(o["dry_run"] is True and o["steps"] and not os.path.exists(dest), o)
    o = run_json("--complete", "mirror", img, dest)
    check(o["command"] == "mirror" and o["state"] == "COMPLETED", o)
    check(o["action"] == "complete" and o["bytes_total"] > 0 and o["bytes_done"] == o["bytes_total"], o)
    check(sha(dest) == sha(img), "the copy differs")
    run_json("--complete", "mirror", img, dest, rc=1, code="EXIST")
    o = run_json("--pivot", "mirror", img, os.path.join(tmp, "nodir", "x"), rc=1)
    check(o["error"]["code"] in ("NOENT", "IO"), o)


@test
def mirror_control_and_busy():
    """A `vstor mirror` waiting at READY holds the volume: extend is BUSY;
    `vstor complete URI` from another process finishes it."""
    img = image("ctl.img", 8, fill=os.urandom(MiB))
    dest = os.path.join(tmp, "ctl.copy")
    o = run_json("complete", img, rc=1, code="NOENT")      # nothing running yet
    bg = subprocess.Popen([VSTOR, "--json", "--state-dir", state, "mirror", img, dest],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not os.path.isdir(os.path.join(state, "jobs")):
            time.sleep(0.05)
        sock_ready = False
        while time.time() < deadline and not sock_ready:
            d = os.path.join(state, "jobs")
            sock_ready = os.path.isdir(d) and any(n.endswith(".sock") for n in os.listdir(d))
            time.sleep(0.05)
        check(sock_ready, "the mirror's control socket never appeared")
        o = run_json("extend", img, "+1M", rc=1, code="BUSY")
        check("busy" in o["error"]["message"], o)
        check(os.path.getsize(img) == 8 * MiB, "extend while BUSY changed the image")
        o = run_json("complete", img)
        check(o["state"] == "COMPLETED", o)
        out, err = bg.communicate(timeout=30)
    finally:
        if bg.poll() is None:
            bg.kill()
            bg.wait()
    check(bg.returncode == 0, f"mirror exited {bg.returncode}: {err}")
    obj = json.loads(out)
    check(obj["ok"] and obj["state"] == "COMPLETED" and obj["action"] == "complete", obj)
    check(sha(dest) == sha(img), "the copy differs")
    run_json("extend", img, "+1M")                 # free again


@test
def recover():
    o = run_json("recover")
    check(o["command"] == "recover" and o["steps"] == [], o)
    o = run_json("-n", "recover")
    check(o["dry_run"] is True, o)
    p = run("recover")
    check(p.returncode == 0 and "nothing to recover" in p.stdout, p)


@test
def state_dir_errors():
    o = run_json("--state-dir", "relative/state", "recover", rc=1, code="INVAL", state_dir=False)
    check("relative/state" in o["error"]["message"], o)
    o = run_json("--backend-dir", "rel", "caps", rc=1, code="INVAL")


def main():
    print(f"1..{len(tests)}", flush=True)
    failed = 0
    for i, fn in enumerate(tests, 1):
        t0 = time.time()
        try:
            fn()
            print(f"ok {i} - {fn.__name__} ({time.time() - t0:.2f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure as TAP
            failed += 1
            print(f"not ok {i} - {fn.__name__}", flush=True)
            detail = str(e) if isinstance(e, Failed) else traceback.format_exc()
            for line in detail.splitlines():
                print(f"# {line}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
