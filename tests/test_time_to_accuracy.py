"""jobs/time_to_accuracy.py table: wall time, bytes, final accuracy and time to target from
run directories (fake runs with known numbers)."""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jobs", "time_to_accuracy.py")


def fake(root, name, accs, wall, sent, compress=0.0):
    d = root / name
    d.mkdir(parents=True)
    # the epoch's parts: compute 0.1 of the wall time, then compress (epoch e: compress * e), comm takes the rest
    # but 0.5 s of other
    recs = [{"epoch": e + 1, "train_loss": 1.0, "test_accuracy": a, "wall_time": wall, "bytes_sent_per_rank": [sent, sent],
             "compute_time": 0.1 * wall, "compress_time": compress * (e + 1),
             "comm_time": 0.9 * wall - compress * (e + 1) - 0.5, "other_time": 0.5}
            for e, a in enumerate(accs)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (d / "summary.json").write_text(json.dumps({"config": {"algo": name}}))


def test_table_times_to_target(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    fake(tmp_path, "dmsgd", [0.80, 0.85, 0.86], 100.0, 1000)
    fake(tmp_path, "gmc-d0.01", [0.84, 0.856, 0.87], 10.0, 10, compress=1.0)  # target 0.855 at epoch 2: 20 s
    fake(tmp_path, "local-sgd-H8", [0.5, 0.6, 0.7], 5.0, 1)         # never
    res = subprocess.run([sys.executable, SCRIPT, "table", "--root", tmp_path], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    table = (tmp_path / "table.md").read_text()
    assert "target test accuracy 0.8550" in table
    # the last column: each part's mean over the epochs (gmc's compress: (1 + 2 + 3) / 3 = 2 s, so comm 9 - 2 - 0.5)
    assert "| dmsgd | 3 | 300.0 | 3e+03 | 0.8600 | 300.0 | 1.000 | 10.0 / 0 / 89.5 / 0.5 |" in table
    assert "| gmc-d0.01 | 3 | 30.0 | 30 | 0.8700 | 20.0 | 0.067 | 1.0 / 2.0 / 6.5 / 0.5 |" in table
    assert "| local-sgd-H8 | 3 | 15.0 | 3 | 0.7000 | not reached | - | 0.5 / 0 / 4.0 / 0.5 |" in table
    assert (tmp_path / "accuracy-time.png").exists() and (tmp_path / "accuracy-bytes.png").exists()


def test_sweep_picks_each_methods_best_lr(tmp_path):
    # finished sweep runs (summary.json present) are read, not re-run
    # each method's own family grid: heavy-ball momentum, plain steps, sign steps (signsgd moves every coordinate by lr)
    for name, accs in (("dmsgd", {0.02: 0.84, 0.05: 0.86, 0.1: 0.85}), ("ecsgd-sign", {0.1: 0.80, 0.2: 0.79, 0.5: 0.83}),
                       ("signsgd", {0.0003: 0.81, 0.001: 0.85, 0.003: 0.84})):
        for lr, acc in accs.items():
            d = tmp_path / "sweep" / name / f"lr{lr}"
            d.mkdir(parents=True)
            (d / "summary.json").write_text(json.dumps({"final_test_accuracy": acc}))
    res = subprocess.run([sys.executable, SCRIPT, "sweep", "--root", tmp_path, "--algos", "dmsgd,ecsgd-sign,signsgd"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "lr.json").read_text()) == {"dmsgd": 0.05, "ecsgd-sign": 0.5, "signsgd": 0.001}
    assert "| dmsgd | 0.02: 0.8400 | 0.05: 0.8600 | 0.1: 0.8500 | 0.05 |" in (tmp_path / "sweep.md").read_text()
