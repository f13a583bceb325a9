"""One checkpoint schema, one validator: every broken-file kind is refused by both
``read_checkpoint`` (resume) and ``verify_checkpoint`` (``inspect --verify``), before any
large read; a run's expected shapes and dtypes are enforced."""

import hashlib
import os
import subprocess

import h5py
import numpy as np
import pytest

from ckpt_tools import resign, set_attr
from hpctrain.checkpoint import Snapshot, _blocks, _hash_dataset, read_checkpoint, verify_checkpoint, write_checkpoint
from hpctrain.errors import CheckpointError
from mpiutil import HPCTRAIN


def _snap(n=2, d=6, dtype=np.float32):
    rng = np.random.default_rng(1)
    meta = {"world_size": n, "step": 8, "epoch": 2, "step_in_epoch": 0, "steps_per_epoch": 4, "n_params": d,
            "algo": "dmsgd", "model": "softmax", "dataset": "synthetic", "seed": 0, "replicated": 1}
    return Snapshot(meta, "[train]\n", {"params": rng.standard_normal((n, d)).astype(dtype),
                                        "state/velocity": rng.standard_normal((n, d)).astype(dtype),
                                        "train/loss_sum": np.zeros((n, 1))})


@pytest.fixture
def good(tmp_path):
    p = str(tmp_path / "ckpt-000000008.h5")
    write_checkpoint(p, _snap())
    return p


def _h5(fn, sign=True):
    def edit(p):
        with h5py.File(p, "a") as f:
            fn(f, p)
        if sign:
            resign(p)
    return edit


def _replace_params(f, p, **kw):
    del f["params"]
    ds = f.create_dataset("params", **kw)
    ds.attrs["sha256"] = hashlib.sha256(np.ascontiguousarray(ds[()]).tobytes()).hexdigest() if ds.size < 10**6 \
        else "0" * 64


BROKEN = {
    # kind -> (edit, a phrase of the message)
    "params-missing": (_h5(lambda f, p: f.__delitem__("params")), "params is missing"),
    "params-group": (_h5(lambda f, p: (f.__delitem__("params"), f.create_group("params"))), "unexpected group params"),
    "state-missing": (_h5(lambda f, p: f.__delitem__("state/velocity"), sign=False), "attribute checksum mismatch"),
    "soft-link-loop": (_h5(lambda f, p: (f.__delitem__("params"), f.__setitem__("params", h5py.SoftLink("/params")))),
                       "soft link"),
    "external-link": (_h5(lambda f, p: f.__setitem__("state/x", h5py.ExternalLink("/etc/other.h5", "/x"))),
                      "external link"),
    "step-missing": (lambda p: set_attr(p, "step", None), "attribute step is missing"),
    "epoch-missing": (lambda p: set_attr(p, "epoch", None), "attribute epoch is missing"),
    "world-size-missing": (lambda p: set_attr(p, "world_size", None), "attribute world_size is missing"),
    "step-edited": (lambda p: set_attr(p, "step", 3, sign=False), "attribute checksum mismatch"),
    "step-wrong-type": (lambda p: set_attr(p, "step", "8"), "step must be int"),
    "step-negative": (lambda p: set_attr(p, "step", -1), "out of range"),
    "signature-missing": (lambda p: set_attr(p, "attrs_sha256", None, sign=False), "no attrs_sha256"),
    "params-wrong-shape": (_h5(lambda f, p: _replace_params(f, p, data=np.full((2, 100), 2e38, np.float32))),
                           "not (world_size, n_params)"),
    "params-string": (_h5(lambda f, p: _replace_params(f, p, data=np.array([b"ab", b"cd"]))), "only numbers"),
    "params-compound": (_h5(lambda f, p: _replace_params(f, p, data=np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]))),
                        "only numbers"),
    "params-scalar": (_h5(lambda f, p: _replace_params(f, p, data=np.float32(1))), "first axis"),
    "gzip-of-zeros": (_h5(lambda f, p: _replace_params(f, p, shape=(2, 6), dtype="f4", compression="gzip")),
                      "compressed"),
    "huge-declared": (_h5(lambda f, p: _replace_params(f, p, shape=(2, 10**9), dtype="f4", chunks=(1, 10**6))),
                      "declares"),
    "extra-dataset": (_h5(lambda f, p: f.__setitem__("stray", np.zeros(2))), "unexpected dataset stray"),
    "only-format-version": (lambda p: _only_version(p), "attribute"),
    "v1-file": (lambda p: set_attr(p, "format_version", 1), "has no attribute checksum"),
}


def _only_version(p):
    os.remove(p)
    with h5py.File(p, "w") as f:
        f.attrs["format_version"] = 2
        f.attrs["attrs_sha256"] = "x"


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_file_is_refused_by_resume_and_verify(good, kind):
    edit, phrase = BROKEN[kind]
    assert verify_checkpoint(good) == [] and read_checkpoint(good).meta["step"] == 8  # the oracle: sound before
    edit(good)
    problems = verify_checkpoint(good)
    assert problems and any(phrase in p for p in problems), problems
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(good)
    assert phrase in str(err.value)


def test_inspect_verify_fails_on_broken_file(good):
    BROKEN["step-missing"][0](good)
    r = subprocess.run([HPCTRAIN, "inspect", "--verify", good], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "attribute step is missing" in r.stderr and "Traceback" not in r.stderr
    assert "all" not in r.stdout


def test_nan_in_checkpoint_is_bad_input(tmp_path):
    s = _snap()
    s.arrays["params"][1, 2] = np.nan
    p = str(tmp_path / "c.h5")
    write_checkpoint(p, s)
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        read_checkpoint(p)


@pytest.mark.parametrize("dtype,shape,phrase", [(np.float64, (6,), "is float32, this run uses float64"),
                                                 (np.float32, (7,), "per-rank shape")])
def test_expected_schema_from_the_run(good, dtype, shape, phrase):
    expected = {"params": (shape, dtype), "state/velocity": (shape, dtype), "train/loss_sum": ((1,), np.float64)}
    with pytest.raises(CheckpointError, match=phrase):
        read_checkpoint(good, expected)
    ok = {"params": ((6,), np.float32), "state/velocity": ((6,), np.float32), "train/loss_sum": ((1,), np.float64)}
    assert read_checkpoint(good, ok).arrays["params"].shape == (2, 6)
    with pytest.raises(CheckpointError, match="lacks state/memory"):
        read_checkpoint(good, {**ok, "state/memory": ((6,), np.float32)})
    with pytest.raises(CheckpointError, match="does not use"):
        read_checkpoint(good, {k: v for k, v in ok.items() if k != "state/velocity"})


@pytest.mark.parametrize("shape", [(3, 1000, 7), (5, 40000), (2, 3), (1,), (4, 0, 2)])
def test_chunked_hash_equals_whole_array_hash(tmp_path, shape):
    arr = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["a"] = arr
        blocks = list(_blocks(arr.shape, 4, limit=4096))
        joined = b"".join(np.ascontiguousarray(arr[b]).tobytes() for b in blocks)
        assert joined == arr.tobytes()  # the blocks tile the array in C order
        assert all(arr[b].nbytes <= max(4096, arr.shape[-1] * 4) for b in blocks)
        digest, back = _hash_dataset(f["a"], keep=True)
    assert digest == hashlib.sha256(arr.tobytes()).hexdigest() and np.array_equal(back, arr)
