"""compress_time apart from compute_time: one definition (metrics.StepClock) in the epoch
line, metrics.jsonl, summary.json and the trace summary; the parts add up to the time of
the steps (the training loop's time, measured on its own clock) within 5 %."""

import json

import pytest

from hpctrain.metrics import StepClock
from hpctrain.trace import summarize
from mpiutil import HPCTRAIN, run_mpi

PARTS = [f"{p}_time" for p in StepClock.PARTS]


def _run(tmp_path, *args):
    out = tmp_path / "run"
    res = run_mpi(2, [HPCTRAIN, "train", "--dataset", "synthetic", "--model", "mlp", "--hidden", "256",
                      "--epochs", "2", "--batch-size", "64", "--threads", "1", "--out", out, *args], timeout=240)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return res, recs, json.loads((out / "summary.json").read_text())


@pytest.mark.mpi
@pytest.mark.parametrize("algo", [
    ("--algo", "ecsgd", "--compressor", "sign"),                 # a compression operator
    ("--algo", "powersgd", "--rank", "2"),                       # compress_methods: the projections
    ("--algo", "signsgd", "--lr", "0.001"),                      # the packing and the vote
    ("--algo", "signsgd", "--lr", "0.001", "--aggregation", "ps"),  # the vote at the server
], ids=["ecsgd-sign", "powersgd", "signsgd", "signsgd-ps"])
def test_compressed_job_parts_add_up_to_the_step_time(tmp_path, algo):
    res, recs, summary = _run(tmp_path, *algo, "--trace", tmp_path / "t.json")
    for r in recs:
        parts = [r[p] for p in PARTS]
        assert all(v >= 0 for v in parts[:3]), r
        assert r["compress_time"] > 0, r
        total = sum(parts)
        assert abs(total - r["step_time"]) <= 0.05 * r["step_time"], (parts, r["step_time"])
        assert r["step_time"] <= r["wall_time"] * 1.05  # rank 0's epoch; the loop is most of it
    # the epoch line shows the same split, compression apart from compute
    lines = [x for x in res.stdout.splitlines() if x.startswith("epoch") and "train_loss" in x]
    assert len(lines) == 2 and all("compress" in x and "compute" in x and "other" in x for x in lines), res.stdout
    for p in StepClock.PARTS:
        assert summary[f"{p}_time_s"] == pytest.approx(sum(r[f"{p}_time"] for r in recs))
    # the trace summary has the same four parts (and io), compression apart
    rows = summarize(json.loads((tmp_path / "t.json").read_text()))
    assert len(rows) == 2 and all(row["compress"] > 0 and row["compute"] > 0 for row in rows)


@pytest.mark.mpi
def test_uncompressed_job_has_no_compress_time(tmp_path):
    _, recs, _ = _run(tmp_path, "--algo", "dmsgd", "-q")
    assert all(r["compress_time"] == 0 and r["compute_time"] > 0 and r["comm_time"] > 0 for r in recs)


def test_declared_compress_methods_are_the_algorithms_own():
    """Every name in an algorithm's compress_methods is a method of that class and says
    compress or decompress (a misspelt one would go untimed in the trace)."""
    from hpctrain.algorithms import ALGORITHMS

    declared = 0
    for cls in ALGORITHMS.values():
        for meth, kind in cls.__dict__.get("compress_methods", {}).items():
            assert callable(cls.__dict__.get(meth)), (cls.name, meth)
            assert kind in ("compress", "decompress"), (cls.name, meth, kind)
            declared += 1
    assert declared >= 6  # PowerSGD's three, signSGD's three
