"""--normalize (uint8 HDF5 scaled like IDX by default; unit and standard maps from the
training set), --max-samples (a seeded subset, the same on every rank) and --max-steps
(a short run that stops inside an epoch and resumes there bit-identically), and the
divergence message that names unnormalised data."""

import json
import subprocess

import h5py
import numpy as np
import pytest

from hpctrain.config import load_config
from hpctrain.data import load_dataset
from mpiutil import HPCTRAIN


def _write_idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes() + arr.tobytes())


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 6, 5), dtype=np.uint8), (np.arange(n) % 3).astype(np.uint8)


@pytest.fixture
def same_data(tmp_path):
    """The same uint8 images as IDX files and as an HDF5 file (with its test set)."""
    xtr, ytr = _images(60, 0)
    xte, yte = _images(20, 1)
    for stem, x, y in (("train", xtr, ytr), ("t10k", xte, yte)):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte", x)
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", y)
    with h5py.File(tmp_path / "u8.h5", "w") as f:
        f["x"], f["y"], f["x_test"], f["y_test"] = xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)
    return tmp_path, xtr, xte


def test_uint8_hdf5_is_scaled_like_idx_by_default(same_data):
    d, xtr, xte = same_data
    idx, h5 = load_dataset(str(d)), load_dataset(f"hdf5:{d}/u8.h5")
    assert idx.normalization == h5.normalization == "unit"
    np.testing.assert_array_equal(h5.x_train, idx.x_train)
    np.testing.assert_array_equal(h5.x_test, idx.x_test)
    # reference: divide by 255 in float32, as the IDX reader always did
    np.testing.assert_array_equal(h5.x_test, xte.reshape(20, -1).astype(np.float32) / np.float32(255))
    assert 0 <= h5.value_range[0] and h5.value_range[1] <= 1


def test_normalize_none_and_standard(same_data):
    d, xtr, xte = same_data
    raw = load_dataset(f"hdf5:{d}/u8.h5", normalize="none")
    np.testing.assert_array_equal(raw.x_test, xte.reshape(20, -1).astype(np.float32))
    std = load_dataset(f"hdf5:{d}/u8.h5", normalize="standard")
    x64 = xtr.reshape(60, -1).astype(np.float64)
    ref = (x64 - x64.mean(0)) / x64.std(0)  # float64 reference over the whole training set
    np.testing.assert_allclose(std.x_train, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std.x_train.mean(0), 0, atol=1e-5)


def test_float_data_unit_divides_by_largest_magnitude(tmp_path):
    x = np.random.default_rng(0).normal(0, 50, size=(40, 4)).astype(np.float32)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["x"], f["y"] = x, np.arange(40) % 2
    auto = load_dataset(f"hdf5:{tmp_path}/f.h5")
    assert auto.normalization == "none"
    unit = load_dataset(f"hdf5:{tmp_path}/f.h5", normalize="unit")
    assert unit.normalization == "unit"
    assert np.abs(unit.x_train).max() <= 1 and np.isclose(np.abs(unit.x_train).max(), 1, atol=0.2)


def test_max_samples_is_one_subset_on_every_rank():
    full = load_dataset("synthetic")
    parts = [load_dataset("synthetic", rank=r, size=3, max_samples=300) for r in range(3)]
    assert all(p.n_train_total == 300 for p in parts)
    rows = np.concatenate([p.x_train for p in parts])
    assert rows.shape[0] == 300
    # every kept row is a training row of the full set, and none twice
    full_rows = {r.tobytes() for r in full.x_train}
    assert all(r.tobytes() in full_rows for r in rows)
    assert len({r.tobytes() for r in rows}) == 300
    again = load_dataset("synthetic", rank=1, size=3, max_samples=300)
    np.testing.assert_array_equal(again.x_train, parts[1].x_train)


def test_new_options_are_config_keys():
    cfg = load_config(overrides={"max_steps": 7, "max_samples": 100, "normalize": "standard"})
    assert (cfg.max_steps, cfg.max_samples, cfg.normalize) == (7, 100, "standard")


def _train(tmp_path, *args):
    return subprocess.run([HPCTRAIN, "train", "--dataset", "synthetic", "--threads", "1", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def _params(run):
    with h5py.File(sorted((run / "checkpoints").glob("ckpt-*.h5"))[-1], "r") as f:
        return f["params"][()], int(f.attrs["step"])


def test_max_steps_stops_inside_an_epoch_and_resumes_there(tmp_path):
    straight = _train(tmp_path, "--epochs", "2", "--max-steps", "12", "--max-samples", "640", "--batch-size", "64",
                      "--checkpoint-every", "1epochs", "--out", tmp_path / "a")
    assert straight.returncode == 0, straight.stderr
    p_ref, step = _params(tmp_path / "a")
    assert step == 12  # 10 steps per epoch: the run ended 2 steps into epoch 2
    recs = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [10, 12]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["config"]["max_samples"] == 640
    first = _train(tmp_path, "--epochs", "2", "--max-steps", "7", "--max-samples", "640", "--batch-size", "64",
                   "--checkpoint-every", "1epochs", "--out", tmp_path / "b")
    assert first.returncode == 0, first.stderr
    assert _params(tmp_path / "b")[1] == 7
    more = _train(tmp_path, "--epochs", "2", "--max-steps", "12", "--max-samples", "640", "--batch-size", "64",
                  "--checkpoint-every", "1epochs", "--out", tmp_path / "b", "--resume", "latest", "--overwrite")
    assert more.returncode == 0, more.stderr
    p, step = _params(tmp_path / "b")
    assert step == 12
    np.testing.assert_array_equal(p, p_ref)


def test_quiet_still_prints_the_final_accuracy(tmp_path):
    res = _train(tmp_path, "--epochs", "1", "--max-steps", "3", "-q", "--out", tmp_path / "q")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith("final test accuracy:"), res.stdout
    assert len(res.stdout.strip().splitlines()) == 1


def test_divergence_on_raw_uint8_names_the_value_range(same_data):
    d = same_data[0]
    res = subprocess.run([HPCTRAIN, "train", "--dataset", f"hdf5:{d}/u8.h5", "--normalize", "none", "--lr", "1e30",
                          "--epochs", "1", "--batch-size", "8", "--threads", "1", "-q", "--out", d / "run"],
                         capture_output=True, text=True, timeout=120, cwd=d)
    assert res.returncode == 3, (res.stdout, res.stderr)  # TrainingDiverged's status
    line = res.stderr.strip().splitlines()[-1]
    assert "not normalised" in line and "[0, 255]" in line and "--normalize" in line, line
    assert "normalize = \"none\"" in (d / "run" / "config.toml").read_text()
