# 100: open a real loop-backed volume, read its size, layers and capabilities.
# SPDX-License-Identifier: LGPL-2.1-or-later

import gc
import pydoc

import pytest

import vstor
from conftest import IMAGE_SIZE


def test_100_version_and_backends():
    assert vstor.version().startswith(vstor.__version__.rsplit(".", 1)[0])
    assert "file" in vstor.backends()


def test_100_open_size_layers(vol, vol_env):
    assert vol.size == IMAGE_SIZE
    assert vol.backend == "file"
    assert vol.id
    layers = vol.layers
    assert layers, "a volume has at least its storage layer"
    assert layers[0].role == "storage"
    assert layers[0].type == "file"
    assert layers[0]["path"] == layers[0].path
    by_role = {l.role: l for l in layers}
    # The image is exposed by our loop device and carries a mounted XFS.
    assert by_role["exposure"].type == "loop"
    assert by_role["exposure"].path == vol_env.loop
    assert by_role["exposure"].size == IMAGE_SIZE
    assert by_role["filesystem"].type == "xfs"
    assert by_role["filesystem"].props.get("mountpoint") == vol_env.mnt


def test_100_open_as_loop_uri(ctx, vol_env):
    with ctx.open("loop:" + vol_env.loop) as v:
        assert v.size == IMAGE_SIZE


def test_100_caps(vol, ctx):
    for op in vstor.Op:
        ok, why = vol.can(op)
        assert isinstance(ok, bool) and isinstance(why, str)
        assert ok or why, f"{op.label}: a no must say why"
    ok, why = vol.can("extend-online")
    assert ok, why
    ok, why = vol.can("snapshot")
    assert ok, why
    ok, why = vol.can(vstor.Op.MIRROR)
    assert ok, why
    ok, why = ctx.backend_can("file", "extend")
    assert ok, why


def test_100_unknown_op_name(vol):
    with pytest.raises(vstor.InvalidError):
        vol.can("defragment")


def test_100_context_manager_closes(ctx, vol_env):
    with ctx.open(vol_env.uri) as v:
        assert v.size == IMAGE_SIZE
    with pytest.raises(vstor.StateError) as ei:
        v.size
    assert ei.value.code == vstor.Code.STATE
    assert ei.value.op == "vstor_vol_size"
    v.close()                                   # double close: no-op


def test_100_volume_outlives_context_object(vol_env):
    c = vstor.Context(state_dir=vol_env.state_dir)
    v = c.open(vol_env.uri)
    del c
    gc.collect()
    assert v.size == IMAGE_SIZE                 # the volume kept it alive
    v._ctx.close()                              # closing the context closes v
    with pytest.raises(vstor.StateError):
        v.layers
    v.close()


def test_100_gc_frees_everything(vol_env):
    # Handles dropped without close() are freed by the garbage collector in
    # a safe order (job, then volume, then context).
    for _ in range(20):
        c = vstor.Context(state_dir=vol_env.state_dir)
        v = c.open(vol_env.uri)
        del c, v
    gc.collect()


def test_100_help_is_useful():
    text = pydoc.render_doc(vstor, renderer=pydoc.plaintext)
    for word in ("Context", "Volume", "Job", "BusyError", "extend", "frozen_us",
                 "select"):
        assert word in text, word
