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


def test_libsvm_binary_and_dims(tmp_path):
    from hpctrain.data import read_libsvm

    p = tmp_path / "a.svm"
    p.write_text("+1 1:0.5 3:2\n-1 2:1.5  # comment\n\n+1 3:-1\n")
    y, rows, dim = read_libsvm(p)
    assert list(y) == [1, -1, 1] and dim == 3
    ds = load_dataset(f"libsvm:{p}", test_spec=str(p))
    assert ds.n_features == 3 and ds.n_classes == 2
    assert np.array_equal(ds.x_train, np.array([[0.5, 0, 2], [0, 1.5, 0], [0, 0, -1]], dtype=np.float32))
    assert list(ds.y_train) == [1, 0, 1]


@pytest.mark.parametrize("line, match", [("1 a:2\n", "malformed LIBSVM line"), ("x 1:2\n", "malformed"),
                                         ("1 0:2\n", "not >= 1")])
def test_libsvm_malformed(tmp_path, line, match):
    p = tmp_path / "bad.svm"
    p.write_text("1 1:1\n" + line)
    with pytest.raises(DataError, match=match):
        load_dataset(f"libsvm:{p}")


def test_libsvm_test_label_and_dimension_checks(tmp_path):
    tr, te = tmp_path / "tr", tmp_path / "te"
    tr.write_text("1 1:1\n2 2:1\n")
    te.write_text("3 1:1\n")
    with pytest.raises(DataError, match="test label 3 is out of range"):
        load_dataset(f"libsvm:{tr}", test_spec=str(te))
    te.write_text("1 5:1\n")
    with pytest.raises(DataError, match="feature dimension mismatch"):
        load_dataset(f"libsvm:{tr}", test_spec=str(te))


def test_hdf5_dataset_and_checks(tmp_path):
    import h5py

    p = tmp_path / "d.h5"
    rng = np.random.default_rng(0)
    with h5py.File(p, "w") as f:
        f["x"] = rng.standard_normal((40, 3, 2))
        f["y"] = rng.integers(0, 3, 40)
        f["x_test"] = rng.standard_normal((10, 3, 2))
        f["y_test"] = rng.integers(0, 3, 10)
    ds = load_dataset(f"hdf5:{p}", rank=0, size=2)
    assert ds.x_train.shape == (20, 6) and ds.x_test.shape == (5, 6) and ds.n_train_total == 40
    with h5py.File(p, "a") as f:
        del f["x_test"]
        f["x_test"] = rng.standard_normal((10, 5))
    with pytest.raises(DataError, match="feature dimension mismatch"):
        load_dataset(f"hdf5:{p}")
    with h5py.File(p, "a") as f:
        del f["x_test"], f["y"]
        f["x_test"] = rng.standard_normal((10, 3, 2))
        f["y"] = -np.ones(40, dtype=np.int64)
    with pytest.raises(DataError, match="out of range"):
        load_dataset(f"hdf5:{p}")


def test_hdf5_holdout_without_test_set(tmp_path):
    import h5py

    p = tmp_path / "d.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(200, dtype=np.float32).reshape(100, 2)
        f["y"] = np.arange(100) % 2
    ds = load_dataset(f"hdf5:{p}")
    assert ds.n_train_total == 90 and ds.n_test_total == 10
    seen = set(ds.x_train[:, 0].tolist()) | set(ds.x_test[:, 0].tolist())
    assert len(seen) == 100


@pytest.mark.parametrize("partition", ["label-sorted", "dirichlet"])
def test_non_iid_partitions_cover_and_skew(partition):
    labels = np.repeat(np.arange(4), 50)
    size = 4
    parts = [shard_indices(200, r, size, 1, partition, labels, alpha=0.1) for r in range(size)]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(200))
    # each rank sees a skewed label mix: its most common label is well above the 25% of iid
    top = [np.bincount(labels[p], minlength=4).max() / max(p.size, 1) for p in parts if p.size]
    assert np.mean(top) > 0.6
    iid = [shard_indices(200, r, size, 1) for r in range(size)]
    assert np.mean([np.bincount(labels[p], minlength=4).max() / p.size for p in iid]) < 0.45
