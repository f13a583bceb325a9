"""Checkpoint files: atomic write, checksums, corruption detection, world-size remapping."""

import os

import h5py
import numpy as np
import pytest

from hpctrain.checkpoint import (
    FORMAT_VERSION,
    Snapshot,
    list_checkpoints,
    prune_checkpoints,
    read_checkpoint,
    remap_world_size,
    resolve_resume,
    verify_checkpoint,
    write_checkpoint,
)
from hpctrain.errors import CheckpointError


def meta(n=3, d=5):
    return {"world_size": n, "step": 7, "epoch": 2, "step_in_epoch": 3, "steps_per_epoch": 4, "n_params": d,
            "algo": "dmsgd", "model": "softmax"}


def snap(n=3, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return Snapshot(meta(n, d), "[train]\nlr = 0.1\n",
                    {"params": rng.standard_normal((n, d)), "state/memory": rng.standard_normal((n, d)),
                     "train/loss_sum": rng.standard_normal((n, 1))})


def test_roundtrip_is_exact(tmp_path):
    s = snap()
    p = tmp_path / "c.h5"
    write_checkpoint(str(p), s)
    back = read_checkpoint(str(p))
    assert back.meta["format_version"] == FORMAT_VERSION and back.meta["step"] == 7
    assert back.config_toml == s.config_toml
    for k, v in s.arrays.items():
        assert np.array_equal(back.arrays[k], v) and back.arrays[k].dtype == v.dtype
    assert verify_checkpoint(str(p)) == []
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    p = tmp_path / "c.h5"
    write_checkpoint(str(p), snap(seed=1))
    before = p.read_bytes()
    import hpctrain.checkpoint as ck

    monkeypatch.setattr(ck, "verify_checkpoint", lambda path: ["injected: checksum mismatch"])
    with pytest.raises(CheckpointError, match="failed verification"):
        write_checkpoint(str(p), snap(seed=2))
    assert p.read_bytes() == before
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_flipped_byte_is_detected(tmp_path):
    p = tmp_path / "c.h5"
    s = snap()
    write_checkpoint(str(p), s)
    with h5py.File(p, "r") as f:
        offset = f["state/memory"].id.get_offset()
    data = bytearray(p.read_bytes())
    data[offset + 3] ^= 0xFF
    p.write_bytes(bytes(data))
    problems = verify_checkpoint(str(p))
    assert len(problems) == 1 and "checksum mismatch in dataset state/memory" in problems[0]
    with pytest.raises(CheckpointError, match="checksum mismatch in dataset state/memory"):
        read_checkpoint(str(p))


def test_truncated_file(tmp_path):
    p = tmp_path / "c.h5"
    write_checkpoint(str(p), snap())
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or not HDF5"):
        read_checkpoint(str(p))
    assert verify_checkpoint(str(p))


def test_newer_format_is_refused(tmp_path):
    p = tmp_path / "c.h5"
    write_checkpoint(str(p), snap())
    with h5py.File(p, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(CheckpointError, match="newer than this hpctrain supports"):
        read_checkpoint(str(p))


def test_latest_and_pruning(tmp_path):
    d = tmp_path / "checkpoints"
    for step in (5, 40, 100, 7):
        write_checkpoint(str(d / f"ckpt-{step:09d}.h5"), snap())
        os.utime(d / f"ckpt-{step:09d}.h5", ns=(step, 10**9 + step if step != 7 else 2 * 10**9))
    assert [os.path.basename(p) for p in list_checkpoints(tmp_path)] == [
        "ckpt-000000005.h5", "ckpt-000000007.h5", "ckpt-000000040.h5", "ckpt-000000100.h5"]
    # without a LATEST pointer, latest is the file written last (7 was resumed from 5: a new line)
    assert resolve_resume("latest", str(tmp_path)).endswith("ckpt-000000007.h5")
    prune_checkpoints(str(tmp_path), 2)
    assert len(list_checkpoints(tmp_path)) == 2
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_resume("latest", str(tmp_path / "other"))


@pytest.mark.parametrize("new", [1, 2, 4, 5])
def test_remap_conserves_memory_and_keeps_replicated_state(new):
    s = snap(n=3)
    s.arrays["params"][:] = s.arrays["params"][0]
    out = remap_world_size(s, new, {"params": "replicated", "state/memory": "sum", "train/loss_sum": "mean"})
    assert out.arrays["params"].shape == (new, 5)
    assert np.array_equal(out.arrays["params"], np.repeat(s.arrays["params"][:1], new, 0))
    np.testing.assert_allclose(out.arrays["state/memory"].sum(0), s.arrays["state/memory"].sum(0), rtol=1e-14, atol=1e-15)
    with pytest.raises(CheckpointError, match="cannot be remapped"):
        remap_world_size(s, new, {"params": "refuse"})
