"""Stateful, layer-wise operators: their state joins the algorithm's declared state
(``state/compressor.NAME`` in checkpoints), resumes bit-identically, follows its resize
policy on another world size, and a resume whose operator state does not match gets one
line and exit status 2. The operator is the test-only ``memo`` of
tests/workers/stateful_operator_cli.py."""

import os
import shutil

import h5py
import numpy as np
import pytest

from hpctrain.checkpoint import list_checkpoints
from mpiutil import WORKERS, run_mpi

CLI = os.path.join(WORKERS, "stateful_operator_cli.py")
COMMON = ["train", "--dataset", "synthetic", "--dtype", "float64", "--model", "linear:16,relu,linear:8,relu,linear:10",
          "--algo", "mdsgd", "--compressor", "memo", "--density", "0.1", "--batch-size", "128", "-q",
          "--checkpoint-every", "1epochs", "--keep", "0"]


def read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("params", "state/compressor.norms", "state/memory")}, dict(f.attrs)


@pytest.mark.mpi
def test_operator_state_resumes_bit_identically_and_resizes(tmp_path):
    straight = tmp_path / "straight"
    run_mpi(2, [CLI, *COMMON, "--epochs", "2", "--out", straight], timeout=180)
    first, last = list_checkpoints(straight)
    s1, meta = read(first)
    assert meta["world_size"] == 2
    norms = s1["state/compressor.norms"]
    assert norms.shape[1] % 8 == 0 and norms.shape[1] > 8  # per layer x bits slots
    assert np.all(norms.any(axis=1)) and not np.array_equal(norms[0], norms[1])  # per-rank state

    shutil.copy(first, tmp_path / "ck.h5")
    resumed = tmp_path / "resumed"
    run_mpi(2, [CLI, *COMMON, "--epochs", "2", "--out", resumed, "--resume", tmp_path / "ck.h5"], timeout=180)
    a, _ = read(last)
    b, _ = read(list_checkpoints(resumed)[-1])
    for k in a:
        assert np.array_equal(a[k], b[k]), k

    # another world size: the operator's policy (mean) maps its state
    grown = tmp_path / "grown"
    run_mpi(3, [CLI, *COMMON, "--epochs", "1", "--out", grown, "--resume", tmp_path / "ck.h5"], timeout=180)
    g, meta3 = read(list_checkpoints(grown)[-1])
    assert meta3["world_size"] == 3
    for r in range(3):
        assert np.allclose(g["state/compressor.norms"][r], norms.mean(0), rtol=1e-12, atol=0)


@pytest.mark.mpi
@pytest.mark.parametrize("change,fragment", [
    (["--bits", "4"], "state/compressor.norms"),     # operator state shaped otherwise
    (["--compressor", "topk"], "state/compressor.norms"),  # no operator state in this run
])
def test_operator_state_mismatch_is_one_line(tmp_path, change, fragment):
    a = tmp_path / "a"
    run_mpi(1, [CLI, *COMMON, "--epochs", "1", "--out", a], timeout=120)
    (ck,) = list_checkpoints(a)
    res = run_mpi(1, [CLI, *COMMON, *change, "--epochs", "2", "--out", tmp_path / "b", "--resume", ck], timeout=120,
                  check=False)
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert fragment in lines[0], lines[0]
