"""Resuming on another number of ranks: replicated state is copied, error-feedback memory
is re-split so that its total is conserved, and training continues."""

import os
import shutil

import h5py
import numpy as np
import pytest

from hpctrain.checkpoint import list_checkpoints
from mpiutil import HPCTRAIN, run_mpi

COMMON = ["train", "--dataset", "synthetic", "--dtype", "float64", "--compressor", "topk", "--density", "0.05",
          "--batch-size", "64", "-q", "--checkpoint-every", "1epochs", "--keep", "0"]


def read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("params", "state/memory", "state/qs") if k in f}, dict(f.attrs)


@pytest.mark.mpi
@pytest.mark.parametrize("algo,old,new", [("gmc", 2, 3), ("mdsgd", 3, 2), ("mdsgd", 2, 4),
                                                  ("powersgd", 2, 3)])
def test_resume_on_other_world_size_conserves_memory(tmp_path, algo, old, new):
    a = tmp_path / "a"
    run_mpi(old, [HPCTRAIN, *COMMON, "--algo", algo, "--epochs", "1", "--out", a], timeout=120)
    (src,) = list_checkpoints(a)
    before, meta = read(src)
    assert meta["world_size"] == old and np.abs(before["state/memory"]).sum() > 0

    # resume with no further epoch: the end-of-run checkpoint holds the remapped state
    b = tmp_path / "b"
    shutil.copy(src, tmp_path / "ck.h5")
    run_mpi(new, [HPCTRAIN, *COMMON, "--algo", algo, "--epochs", "1", "--out", b, "--resume", tmp_path / "ck.h5"],
            timeout=120)
    (dst,) = list_checkpoints(b)
    after, meta2 = read(dst)
    assert meta2["world_size"] == new and meta2["step"] == meta["step"]
    np.testing.assert_allclose(after["state/memory"].sum(0), before["state/memory"].sum(0), rtol=1e-12, atol=1e-15)
    for r in range(new):
        assert np.array_equal(after["params"][r], before["params"][0])
        if "state/qs" in before:  # PowerSGD's warm-start Q is replicated: copied to every new rank
            assert np.array_equal(after["state/qs"][r], before["state/qs"][0])

    # and it trains on
    c = tmp_path / "c"
    run_mpi(new, [HPCTRAIN, *COMMON, "--algo", algo, "--epochs", "2", "--out", c, "--resume", tmp_path / "ck.h5"],
            timeout=120)
    last, meta3 = read(list_checkpoints(c)[-1])
    assert meta3["epoch"] == 3 and np.isfinite(last["params"]).all()
    assert not np.array_equal(last["params"][0], before["params"][0])
    assert os.path.exists(c / "metrics.jsonl")
