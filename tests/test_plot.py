"""`hpctrain plot` draws several runs on one figure."""

import json
import subprocess

import pytest

from mpiutil import HPCTRAIN


def fake_run(d, scale):
    d.mkdir()
    recs = [{"epoch": e, "train_loss": scale / e, "test_accuracy": 0.5 + 0.1 * e, "bytes_sent_per_rank": [100, 300],
             "wall_time": 1.5 * e} for e in (1, 2, 3)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (d / "summary.json").write_text(json.dumps({"config": {"algo": "dmsgd", "collective": "ring"}}))


def test_plot_two_runs(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    fake_run(tmp_path / "a", 1.0)
    fake_run(tmp_path / "b", 2.0)
    out = tmp_path / "p.png"
    res = subprocess.run([HPCTRAIN, "plot", tmp_path / "a", tmp_path / "b", "-o", out], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_plot_rejects_non_run_directory(tmp_path):
    res = subprocess.run([HPCTRAIN, "plot", tmp_path, "-o", tmp_path / "p.png"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "no metrics.jsonl" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("x", ["epoch", "time", "bytes"])
def test_plot_x_axis(tmp_path, x):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    fake_run(tmp_path / "a", 1.0)
    out = tmp_path / "p.png"
    res = subprocess.run([HPCTRAIN, "plot", tmp_path / "a", "--x", x, "-o", out], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_series_are_cumulative(tmp_path):
    from hpctrain.plot import load_run, series

    fake_run(tmp_path / "a", 1.0)
    ser = series(load_run(tmp_path / "a")[1])
    assert ser == {"epoch": [1, 2, 3], "time": [1.5, 4.5, 9.0], "bytes": [200.0, 400.0, 600.0]}


def test_plot_rejects_unknown_x(tmp_path):
    fake_run(tmp_path / "a", 1.0)
    res = subprocess.run([HPCTRAIN, "plot", tmp_path / "a", "--x", "steps", "-o", tmp_path / "p.png"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "steps" in res.stderr and len(res.stderr.strip().splitlines()) == 1
