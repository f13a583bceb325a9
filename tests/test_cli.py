"""The command line: bad input is one clear line on stderr and exit status 2."""

import json
import re
import subprocess
import sys

import pytest

from mpiutil import HPCTRAIN, run_mpi


def hpctrain(*args, cwd=None):
    return subprocess.run([HPCTRAIN, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd)


def assert_one_line_error(res, *fragments):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]


def test_typo_option(tmp_path):
    assert_one_line_error(hpctrain("train", "--lrr", "0.1", cwd=tmp_path), "No such option", "--lr")


def test_typo_command(tmp_path):
    assert_one_line_error(hpctrain("trian", cwd=tmp_path), "No such command", "train")


def test_missing_data_directory(tmp_path):
    assert_one_line_error(hpctrain("train", "--dataset", tmp_path / "nope", "--out", tmp_path / "r", cwd=tmp_path),
                          "data set not found")


def test_missing_idx_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train-images-idx3-ubyte").write_bytes(b"")
    assert_one_line_error(hpctrain("train", "--dataset", data, "--out", tmp_path / "r", cwd=tmp_path),
                          "data file not found", "train-labels-idx1-ubyte")


def test_truncated_idx_file(tmp_path):
    from test_data import write_idx
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    for stem, n in [("train", 20), ("t10k", 8)]:
        write_idx(data / f"{stem}-images-idx3-ubyte", np.zeros((n, 2, 2)))
        write_idx(data / f"{stem}-labels-idx1-ubyte", np.zeros(n))
    img = data / "train-images-idx3-ubyte"
    img.write_bytes(img.read_bytes()[:-5])
    assert_one_line_error(hpctrain("train", "--dataset", data, "--out", tmp_path / "r", cwd=tmp_path),
                          "truncated IDX data")


def test_bad_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("lr = = 1\n")
    assert_one_line_error(hpctrain("train", p, cwd=tmp_path), "invalid TOML")


def test_unknown_key_in_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[train]\nbatchsize = 3\n")
    assert_one_line_error(hpctrain("train", p, cwd=tmp_path), "unknown config key 'batchsize'", "batch_size")


def test_bad_value_flag(tmp_path):
    assert_one_line_error(hpctrain("train", "--epochs", "ten", cwd=tmp_path), "--epochs")
    assert_one_line_error(hpctrain("train", "--collective", "tree", cwd=tmp_path), "--collective")
    assert_one_line_error(hpctrain("train", "--lr", "-1", "--dataset", "synthetic", cwd=tmp_path), "lr must be > 0")


def test_existing_run_dir_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    ok = hpctrain("train", "--dataset", "synthetic", "--epochs", "1", "--out", out, "-q", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    before = (out / "metrics.jsonl").read_text()
    assert_one_line_error(hpctrain("train", "--dataset", "synthetic", "--epochs", "1", "--out", out, cwd=tmp_path),
                          "--overwrite")
    assert (out / "metrics.jsonl").read_text() == before
    again = hpctrain("train", "--dataset", "synthetic", "--epochs", "1", "--out", out, "--overwrite", "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


@pytest.mark.mpi
def test_error_on_all_ranks_is_reported_once(tmp_path):
    res = run_mpi(3, [HPCTRAIN, "train", "--dataset", "synthetic", "--batch-size", "100000", "--out", tmp_path / "r"],
                  timeout=60, cwd=tmp_path, check=False)
    assert_one_line_error(res, "batch_size 100000 is larger than a shard")


@pytest.mark.mpi
def test_info_reports_world(tmp_path):
    res = run_mpi(2, [HPCTRAIN, "info"], timeout=60, cwd=tmp_path)
    assert re.search(r"^world size\s+2$", res.stdout, re.M), res.stdout
    assert "MPI library" in res.stdout


@pytest.mark.mpi
def test_train_cli_writes_run_directory(tmp_path):
    out = tmp_path / "run"
    res = run_mpi(2, [HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "2", "--out", out], timeout=120,
                  cwd=tmp_path)
    assert "final test accuracy" in res.stdout
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_test_accuracy"] == recs[-1]["test_accuracy"]
    assert "[train]" in (out / "config.toml").read_text()


def test_python_dash_m(tmp_path):
    res = subprocess.run([sys.executable, "-m", "hpctrain", "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "hpctrain" in res.stdout
