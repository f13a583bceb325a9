"""``--fp16-allreduce``: the dense 16-bit baseline. Every hand-made allreduce through
float16 against a NumPy oracle (bit for bit on 2 ranks, within the rounding bound of n-1
float16 additions on more), half the ring's bytes, and a training run whose buckets
(reduced during or after backward) equal the unbucketed run bit for bit on 2 ranks, close
to the float32 run, with half its traffic."""

import json
import os

import numpy as np
import pytest

from mpiutil import HPCTRAIN, WORKERS
from test_models_train import image_h5
from test_overlap_train import SPEC, _run


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3, 4])
def test_every_allreduce_in_float16_against_the_oracle(mpirun, tmp_path, n):
    mpirun(n, [os.path.join(WORKERS, "half_wire.py"), tmp_path], timeout=180)
    for r in range(n):
        checks = json.loads((tmp_path / f"rank{r}.json").read_text())["checks"]
        assert len(checks) >= 3 * 7
        bad = {k: v for k, v in checks.items() if not v[0]}
        assert not bad, bad


@pytest.mark.mpi
def test_training_in_float16_buckets_equal_the_whole_vector_and_halve_the_bytes(mpirun, tmp_path):
    data = image_h5(tmp_path / "img.h5", n=160, n_test=32)
    common = dict(model=SPEC, dataset=data, algo="dmsgd", epochs=1, max_steps=6, batch_size=10, lr=0.05,
                  weight_decay=1e-3, collective="ring", seed=3)
    on, s_on = _run(mpirun, tmp_path / "on", 2, overlap=True, bucket_size=0.002, fp16_allreduce=True, **common)
    after, _ = _run(mpirun, tmp_path / "after", 2, overlap=False, bucket_size=0.002, fp16_allreduce=True, **common)
    whole, s_whole = _run(mpirun, tmp_path / "whole", 2, overlap=False, fp16_allreduce=True, **common)
    f32, s_f32 = _run(mpirun, tmp_path / "f32", 2, overlap=False, **common)
    assert s_on["overlap"] and s_on["buckets"] > 2
    for r in range(2):  # 2 ranks: one float16 addition per coordinate, whatever the chunking
        np.testing.assert_array_equal(on[r], whole[r])
        np.testing.assert_array_equal(after[r], whole[r])
        np.testing.assert_array_equal(whole[r], whole[0])
    assert not np.array_equal(whole[0], f32[0])  # the wire's precision shows
    rel = np.abs(whole[0].astype(np.float64) - f32[0]).max() / np.abs(f32[0]).max()
    assert rel < 1e-2, rel
    ratio = s_whole["bytes_sent_per_rank"][0] / s_f32["bytes_sent_per_rank"][0]
    assert 0.49 < ratio < 0.51, ratio
    assert s_on["bytes_sent_per_rank"] == s_whole["bytes_sent_per_rank"]


@pytest.mark.mpi
def test_banner_summary_and_compress_time(mpirun, tmp_path):
    out = tmp_path / "run"
    res = mpirun(2, [HPCTRAIN, "train", "--dataset", "synthetic", "--model", "mlp", "--epochs", "1", "--max-steps",
                     "8", "--collective", "ring", "--fp16-allreduce", "--out", out], timeout=120)
    assert "over ring in float16 (--fp16-allreduce)" in res.stdout
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["compression_ratio"] == pytest.approx(0.5) and last["compress_time"] > 0
    parts = sum(last[k] for k in ("compute_time", "compress_time", "comm_time", "other_time"))
    assert parts == pytest.approx(last["step_time"], rel=0.05)
