"""Data sets and sharding: IDX (Fashion-MNIST), a deterministic synthetic generator.

Each rank keeps only its own shard of the training set (an iid split of a permutation
drawn from the seed, identical on every rank) and its contiguous slice of the test set.
"""

import gzip
import os
from dataclasses import dataclass

import numpy as np

from .errors import DataError

__all__ = [
    "Dataset",
    "read_idx",
    "shard_indices",
    "synthetic",
    "load_dataset",
    "FASHION_MNIST_DIRS",
    "find_fashion_mnist",
]

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FMNIST = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


@dataclass
class Dataset:
    """One rank's view of a data set: its training shard and its test slice."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_features: int
    n_classes: int
    n_train_total: int
    n_test_total: int
    name: str


def _open(path):
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_idx(path, rows=None):
    """Read an IDX file (raw or gzip-compressed).

    Args:
        path: file path.
        rows: optional sorted index array; only these rows (first axis) are kept.

    Returns:
        The array (uint8 for images/labels), shape from the header.

    Raises:
        DataError: missing file, wrong magic number, unknown type code or truncated data.
    """
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path}")
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number {header.hex() or 'empty'})")
            ndim = header[3]
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = tuple(int(v) for v in np.frombuffer(dims_raw, dtype=">u4"))
            dtype = np.dtype(_IDX_DTYPES[header[2]])
            expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
            body = f.read(expected)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(body) < expected:
        raise DataError(f"{path}: truncated IDX data (expected {expected} bytes, got {len(body)})")
    arr = np.frombuffer(body, dtype=dtype).reshape(dims)
    if rows is not None and rows.size and int(rows[-1]) >= dims[0]:
        raise DataError(f"{path}: holds {dims[0]} items, fewer than its labels file")
    if rows is not None:
        arr = arr[rows]
    return arr.astype(dtype.newbyteorder("="), copy=rows is None)


def shard_indices(n, rank, size, seed):
    """This rank's rows of an iid split of ``n`` samples over ``size`` ranks.

    The permutation depends only on ``seed``, so every rank computes the same one and the
    shards are disjoint and cover all samples. Returned sorted (sequential reads).
    """
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])).permutation(n)
    return np.sort(np.array_split(perm, size)[rank])


def _slice(n, rank, size):
    bounds = np.linspace(0, n, size + 1).astype(np.int64)
    return slice(int(bounds[rank]), int(bounds[rank + 1]))


def synthetic(n_train=12000, n_test=3000, n_features=64, n_classes=10, seed=0, noise=1.0):
    """A deterministic Gaussian-clusters classification problem.

    Class means are drawn once from the seed; each sample is its class mean plus
    isotropic noise. The same seed gives the same arrays on every machine.

    Returns:
        (x_train, y_train, x_test, y_test) as float32 / int64 arrays.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDA7A]))
    means = rng.normal(0.0, 1.0, size=(n_classes, n_features)) * (2.0 / np.sqrt(n_features)) * 2
    def draw(n):
        y = rng.integers(0, n_classes, size=n)
        x = means[y] + noise * rng.normal(0.0, 1.0, size=(n, n_features)) / np.sqrt(n_features) * 2
        return x.astype(np.float32), y.astype(np.int64)
    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    return xtr, ytr, xte, yte


def find_fashion_mnist(data_dir=""):
    """The first directory holding the four Fashion-MNIST IDX files, or None."""
    candidates = [data_dir] if data_dir else []
    candidates += [os.environ.get("HPCTRAIN_DATA", "")] + list(FASHION_MNIST_DIRS)
    for d in candidates:
        if d and all(_idx_path(d, stem) for stem in _FMNIST.values()):
            return d
    return None


def _idx_path(directory, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(directory, name)
        if os.path.exists(p):
            return p
    return None


def _load_idx_dir(directory, rank, size, seed, name):
    paths = {k: _idx_path(directory, stem) for k, stem in _FMNIST.items()}
    missing = [_FMNIST[k] + "[.gz]" for k, p in paths.items() if p is None]
    if missing:
        raise DataError(f"data file not found: {os.path.join(directory, missing[0])}")
    y_all = read_idx(paths["train_y"])
    n = y_all.shape[0]
    rows = shard_indices(n, rank, size, seed)
    x_train = read_idx(paths["train_x"], rows)
    if read_idx_count(paths["train_x"]) != n:
        raise DataError(f"{paths['train_x']}: {read_idx_count(paths['train_x'])} images but {n} labels")
    y_test_all = read_idx(paths["test_y"])
    sl = _slice(y_test_all.shape[0], rank, size)
    x_test_all = read_idx(paths["test_x"])
    if x_test_all.shape[0] != y_test_all.shape[0]:
        raise DataError(f"{paths['test_x']}: {x_test_all.shape[0]} images but {y_test_all.shape[0]} labels")
    if x_test_all.shape[1:] != x_train.shape[1:]:
        raise DataError(f"feature dimension mismatch: train {x_train.shape[1:]} vs test {x_test_all.shape[1:]}")
    x_test = x_test_all[sl]
    d = int(np.prod(x_train.shape[1:]))
    to_f = lambda a: (a.reshape(a.shape[0], d).astype(np.float32) / np.float32(255.0))
    n_classes = int(max(y_all.max(), y_test_all.max())) + 1
    return Dataset(
        to_f(x_train), y_all[rows].astype(np.int64), to_f(x_test), y_test_all[sl].astype(np.int64),
        d, max(n_classes, 10), n, y_test_all.shape[0], name,
    )


def read_idx_count(path):
    """Number of items (first dimension) an IDX file's header declares."""
    with _open(path) as f:
        header = f.read(8)
    return int(np.frombuffer(header[4:8], dtype=">u4")[0])


def load_dataset(spec, rank=0, size=1, seed=0, data_dir=""):
    """Load this rank's part of the data set named by ``spec``.

    Args:
        spec: ``fashion-mnist`` (IDX files from ``data_dir``, ``$HPCTRAIN_DATA`` or
            Debian's ``dataset-fashion-mnist``), ``synthetic``, or a directory holding
            ``train-images-idx3-ubyte[.gz]`` and the three other IDX files.
        rank, size: this rank and the world size (sharding).
        seed: shuffling seed shared by all ranks.

    Returns:
        A :class:`Dataset`.
    """
    if spec == "synthetic":
        xtr, ytr, xte, yte = synthetic(seed=seed)
        rows = shard_indices(xtr.shape[0], rank, size, seed)
        sl = _slice(xte.shape[0], rank, size)
        return Dataset(xtr[rows], ytr[rows], xte[sl], yte[sl], xtr.shape[1], 10, xtr.shape[0], xte.shape[0], spec)
    if spec == "fashion-mnist":
        directory = find_fashion_mnist(data_dir)
        if directory is None:
            where = data_dir or os.environ.get("HPCTRAIN_DATA") or FASHION_MNIST_DIRS[0]
            raise DataError(
                f"Fashion-MNIST not found in {where} (apt-get install dataset-fashion-mnist, "
                "or --data-dir DIR with the IDX files)"
            )
        return _load_idx_dir(directory, rank, size, seed, spec)
    if os.path.isdir(spec):
        return _load_idx_dir(spec, rank, size, seed, spec)
    raise DataError(f"data set not found: {spec} (use fashion-mnist, synthetic or a directory of IDX files)")
