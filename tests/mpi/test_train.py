"""Multi-rank training: every rank ends with the same weights, equal to a single-process
run that averages the ranks' gradients by hand (the DSGD-momentum definition)."""

import json
import os

import numpy as np
import pytest

from hpctrain.config import load_config
from hpctrain.data import load_dataset
from hpctrain.models import get_model
from hpctrain.train import epoch_order
from mpiutil import WORKERS


def reference_dmsgd(cfg, size):
    """Single process: per step, each simulated rank's gradient on its own batch, averaged."""
    shards = [load_dataset(cfg.dataset, r, size, cfg.seed) for r in range(size)]
    model = get_model(cfg.model, shards[0].n_features, shards[0].n_classes)
    w = np.zeros(model.size)
    v = np.zeros_like(w)
    steps = (shards[0].n_train_total // size) // cfg.batch_size
    g = np.zeros_like(w)
    for epoch in range(1, cfg.epochs + 1):
        orders = [epoch_order(s.x_train.shape[0], cfg.seed, epoch, r) for r, s in enumerate(shards)]
        for i in range(steps):
            total = np.zeros_like(w)
            for s, order in zip(shards, orders):
                idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                model.loss_grad(w, s.x_train[idx].astype(np.float64), s.y_train[idx], g, cfg.weight_decay)
                total += g
            v = cfg.momentum * v + total / size
            w = w - cfg.lr * v
    return w, steps


@pytest.mark.mpi
@pytest.mark.parametrize("collective,n", [("ring", 2), ("ring", 3), ("mpi", 2)])
def test_training_matches_single_process_average(mpirun, tmp_path, collective, n):
    args = dict(dataset="synthetic", dtype="float64", epochs=2, batch_size=200, lr=0.1,
                momentum=0.9, weight_decay=1e-3, seed=4, collective=collective)
    mpirun(n, [os.path.join(WORKERS, "train_params.py"), tmp_path] + [f"{k}={v}" for k, v in args.items()],
           timeout=120)
    ws = [np.load(tmp_path / f"params{r}.npy") for r in range(n)]
    for r in range(1, n):
        assert np.array_equal(ws[0], ws[r]), f"rank {r} differs from rank 0"
    ref, steps = reference_dmsgd(load_config(None, args), n)
    assert steps > 10
    np.testing.assert_allclose(ws[0], ref, rtol=1e-10, atol=1e-12)
    assert np.abs(ref).max() > 1e-3  # training moved the weights

    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    rec = json.loads(lines[-1])
    for key in ("epoch", "train_loss", "test_loss", "test_accuracy", "wall_time", "comm_time",
                "compute_time", "bytes_sent_per_rank"):
        assert key in rec
    assert len(rec["bytes_sent_per_rank"]) == n
    # ring: each step sends 2(n-1)/n of the gradient per rank (chunks differ by <= 1 element)
    if collective == "ring":
        d = ws[0].size
        per_step = 2 * (n - 1) * (d // n) * 8
        assert all(per_step * steps <= b <= (per_step + 2 * (n - 1) * 8) * steps for b in rec["bytes_sent_per_rank"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["config"]["collective"] == collective and summary["world_size"] == n
    assert (tmp_path / "run" / "config.toml").exists()


@pytest.mark.mpi
def test_synthetic_training_converges(mpirun, tmp_path):
    mpirun(4, [os.path.join(WORKERS, "train_params.py"), tmp_path, "dataset=synthetic", "epochs=3"], timeout=120)
    rec = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rec[-1]["test_accuracy"] > 0.9
    assert rec[-1]["train_loss"] < rec[0]["train_loss"]
