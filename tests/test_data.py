"""IDX reading (raw and gzip, bad magic, truncation), sharding, the synthetic generator."""

import gzip

import numpy as np
import pytest

from hpctrain.data import load_dataset, read_idx, shard_indices, synthetic
from hpctrain.errors import DataError


def write_idx(path, arr, compress=False, magic=None):
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) if magic is None else magic
    body = head + np.array(arr.shape, dtype=">u4").tobytes() + arr.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(body)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip(tmp_path, compress):
    arr = np.random.default_rng(0).integers(0, 256, size=(7, 3, 2)).astype(np.uint8)
    p = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(p, arr, compress)
    assert np.array_equal(read_idx(p), arr)
    rows = np.array([1, 4, 6])
    assert np.array_equal(read_idx(p, rows), arr[rows])


def test_read_idx_wrong_magic(tmp_path):
    p = tmp_path / "bad"
    write_idx(p, np.zeros((2, 2)), magic=bytes([1, 2, 8, 2]))
    with pytest.raises(DataError, match="bad magic number"):
        read_idx(p)


def test_read_idx_truncated(tmp_path):
    p = tmp_path / "t"
    write_idx(p, np.zeros((5, 4)))
    data = p.read_bytes()
    p.write_bytes(data[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_read_idx_missing(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_shards_are_disjoint_and_cover(size):
    n = 1001
    parts = [shard_indices(n, r, size, seed=3) for r in range(size)]
    allidx = np.concatenate(parts)
    assert np.array_equal(np.sort(allidx), np.arange(n))
    assert max(p.size for p in parts) - min(p.size for p in parts) <= 1
    assert not np.array_equal(shard_indices(n, 0, size, 3), shard_indices(n, 0, size, 4)) or size == 1


def test_synthetic_is_deterministic():
    a, b = synthetic(seed=5), synthetic(seed=5)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    assert not np.array_equal(synthetic(seed=6)[0], a[0])


def test_idx_directory_dataset_and_shapes(tmp_path):
    rng = np.random.default_rng(0)
    for stem, shape in [("train-images-idx3-ubyte", (20, 2, 3)), ("t10k-images-idx3-ubyte", (8, 2, 3))]:
        write_idx(tmp_path / (stem + ".gz"), rng.integers(0, 256, size=shape), compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", rng.integers(0, 10, size=20))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", rng.integers(0, 10, size=8))
    ds = load_dataset(str(tmp_path), rank=1, size=2, seed=0)
    assert ds.x_train.shape == (10, 6) and ds.x_test.shape == (4, 6)
    assert ds.x_train.dtype == np.float32 and 0 <= ds.x_train.min() and ds.x_train.max() <= 1


def test_idx_directory_label_count_mismatch(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 2, 2)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(6))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 2, 2)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2))
    with pytest.raises(DataError):
        load_dataset(str(tmp_path), rank=0, size=1)
