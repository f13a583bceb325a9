"""Paper 001's compression ratio and the exact wire ratio against first principles.

Runs real 2- and 4-rank trainings (softmax on the synthetic set: d = 650, float32) and
checks ``wire_ratio`` (bytes really sent / p d T dense vectors) against the bytes each
algorithm's messages must take, and ``compression_ratio`` against 001's definition.
"""

import json

import pytest

from hpctrain.compress.topk import k_for_density
from mpiutil import HPCTRAIN

D, ITEM = 650, 4
BASE = ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "200", "--quiet"]


def _epoch(mpirun, tmp_path, n, *args):
    out = tmp_path / f"run{n}"
    mpirun(n, [HPCTRAIN, "train", *BASE, "--out", str(out), *args], timeout=120)
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])


@pytest.mark.parametrize("n", [2, 4])
def test_dense_ring_dmsgd(mpirun, tmp_path, n):
    rec = _epoch(mpirun, tmp_path, n, "--algo", "dmsgd", "--collective", "ring")
    # reduce-scatter + allgather: every rank sends n - 1 chunks twice; d floats up and down
    assert sum(rec["bytes_sent_per_rank"]) == rec["step"] * 2 * (n - 1) * D * ITEM
    assert rec["wire_ratio"] == pytest.approx(2 * (n - 1) / n, rel=1e-12)
    assert rec["compression_ratio"] == pytest.approx(1.0, rel=1e-12)  # 001 Table 1: DMSGD = 1


@pytest.mark.parametrize("n", [2, 4])
def test_sparse_allgather_gmc(mpirun, tmp_path, n):
    rec = _epoch(mpirun, tmp_path, n, "--algo", "gmc", "--compressor", "topk", "--density", "0.05")
    k, steps = k_for_density(0.05, D), rec["step"]
    # ring allgather of the n counts (int64), then n - 1 blocks of k (int32 index, value) pairs
    per_step = (n - 1) * (8 * n + n * k * (4 + ITEM))
    assert sum(rec["bytes_sent_per_rank"]) == steps * per_step
    assert rec["wire_ratio"] == pytest.approx(steps * per_step / (n * D * ITEM * steps), rel=1e-12)
    # CR = (sum_k ||m||_0 + p ||dw||_0) / (p d): k <= ||dw||_0 <= min(n k, d) as long as
    # the masks' values do not cancel
    assert k / D * 2 - 1e-12 <= rec["compression_ratio"] <= (k + min(n * k, D)) / D + 1e-12


@pytest.mark.parametrize("n", [2, 4])
def test_ps_round_csgd_randk(mpirun, tmp_path, n):
    rec = _epoch(mpirun, tmp_path, n, "--algo", "csgd", "--compressor", "randk", "--density", "0.05",
                 "--aggregation", "ps")
    k, steps = k_for_density(0.05, D), rec["step"]
    msg = 8 + 32 + k * ITEM  # length, payload header, k values (indices are regenerated)
    assert sum(rec["bytes_sent_per_rank"]) == steps * 2 * (n - 1) * msg  # n - 1 up, n - 1 down
    # up k values per worker, down the server's k values to each: (k + k) p / (2 p d)
    assert rec["compression_ratio"] == pytest.approx(k / D, rel=1e-12)
