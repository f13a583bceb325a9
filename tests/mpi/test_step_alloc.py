"""The hot path allocates nothing full-size per step (NumPy, 2 ranks, tracemalloc), and
the compressor is built once per run, so ``--seed`` reaches approximate top-k's sample."""

import json
import os

import numpy as np

from hpctrain.algorithms import AlgoContext, get_algorithm
from hpctrain.collectives import get_allreduce
from hpctrain.comm import world
from hpctrain.config import load_config
from mpiutil import WORKERS


def test_no_full_size_allocation_per_step(mpirun, tmp_path):
    out = tmp_path / "alloc.json"
    mpirun(2, [os.path.join(WORKERS, "step_alloc.py"), str(out)], timeout=240)
    res = json.loads(out.read_text())
    dense = res.pop("_dense_bytes")
    assert len(res) == 10
    # at density 0.01 a step may allocate k-sized pieces (indices, values, gathered pairs:
    # ~7% of d here); one float32 temporary of size d would be 100%, int64 indices 200%
    big = {case: peaks for case, peaks in res.items() if max(peaks) >= dense / 8}
    assert not big, f"steps allocating >= 1/8 of a dense vector (bytes per rank; dense = {dense}): {big}"


def test_seed_reaches_approx_topk_sample():
    d = 100_000
    x = np.random.default_rng(0).normal(size=d).astype(np.float32)
    picked = []
    for seed in (0, 5):
        cfg = load_config(None, {"algo": "gmc", "compressor": "approx-topk", "density": 0.01, "seed": seed})
        alg = get_algorithm("gmc")(AlgoContext(cfg, world(), get_allreduce("ring"), d, 10, np), np.zeros(d, np.float32))
        assert alg.comp.seed == seed
        payload = alg.comp.compress(x, step=3, rank=0)
        picked.append(set(payload["indices"].tolist()))
    assert picked[0] != picked[1]  # another seed, another sample, another threshold
