"""Data sets and sharding: IDX (Fashion-MNIST), LIBSVM, HDF5, a deterministic synthetic set.

Each rank keeps only its own shard of the training set (iid or non-iid split drawn
from the seed, identical on every rank) and its contiguous slice of the test set.
"""

import gzip
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .files import check_input
from .memory import available_memory  # noqa: F401 (re-exported)

__all__ = [
    "Dataset",
    "read_idx",
    "read_libsvm",
    "shard_indices",
    "synthetic",
    "load_dataset",
    "FASHION_MNIST_DIRS",
    "find_fashion_mnist",
    "NORMALIZATIONS",
]

#: the choices of ``--normalize``: ``auto`` scales integer-valued data (IDX images, HDF5
#: integer arrays such as uint8 images) like ``unit`` and leaves float data as it is;
#: ``none`` uses the stored values; ``unit`` divides integer data by its type's maximum
#: (255 for uint8) and float data by the training set's largest magnitude; ``standard``
#: subtracts each feature's training-set mean and divides by its standard deviation.
NORMALIZATIONS = ("auto", "none", "unit", "standard")

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
    input_shape: tuple = ()  # one sample's shape: (c, h, w) for images, else (n_features,)
    normalization: str = "none"  # what --normalize resolved to (none, unit, standard)
    value_range: tuple = (0.0, 0.0)  # (min, max) of this rank's training values as trained on

    def __post_init__(self):
        self.input_shape = tuple(self.input_shape) or (self.n_features,)


def _gb(n):
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_fits(path, nbytes, what):
    """Raise DataError when ``nbytes`` (declared by a file) exceed the memory available:
    sizes are checked before anything that large is read or allocated."""
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise DataError(f"{path}: {what} needs {_gb(nbytes)}, more than the {_gb(avail)} of memory available")


def _check_finite(path, name, x):
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1))[0]) if x.ndim else 0
        raise DataError(f"{path}: {name} holds NaN or Inf (row {row}); clean the data")


def _open(path):
    check_input(path)  # a FIFO or device would block or never end
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
    check_input(path)
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number {header.hex() or 'empty'})")
            ndim = header[3]
            if ndim == 0:
                raise DataError(f"{path}: IDX header declares 0 dimensions (an IDX array has at least one)")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = tuple(int(v) for v in np.frombuffer(dims_raw, dtype=">u4"))
            dtype = np.dtype(_IDX_DTYPES[header[2]])
            expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
            if not isinstance(f, gzip.GzipFile) and expected > os.path.getsize(path) - 4 - 4 * ndim:
                have = os.path.getsize(path) - 4 - 4 * ndim
                raise DataError(f"{path}: truncated IDX data (expected {expected} bytes, got {have})")
            check_fits(path, 2 * expected, f"the IDX array of shape {dims}")
            body = f.read(expected)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(body) < expected:
        raise DataError(f"{path}: truncated IDX data (expected {expected} bytes, got {len(body)})")
    arr = np.frombuffer(body, dtype=dtype).reshape(dims)
    _check_finite(path, "the IDX array", arr)
    if rows is not None and rows.size and int(rows[-1]) >= dims[0]:
        raise DataError(f"{path}: holds {dims[0]} items, fewer than its labels file")
    if rows is not None:
        arr = arr[rows]
    return arr.astype(dtype.newbyteorder("="), copy=rows is None)


def shard_indices(n, rank, size, seed, partition="iid", labels=None, alpha=0.5):
    """This rank's rows of a split of ``n`` samples over ``size`` ranks.

    Every rank computes the same split from ``seed``; the shards are disjoint and cover
    all samples. Returned sorted (sequential reads).

    Args:
        partition: ``iid`` (a random permutation cut into near-equal parts),
            ``label-sorted`` (samples sorted by label, cut into contiguous near-equal
            parts: each rank sees few classes), or ``dirichlet`` (for each class, its
            samples are divided over ranks in proportions drawn from Dirichlet(alpha):
            small alpha, very skewed shards of unequal size).
        labels: integer labels of all ``n`` samples (needed for the non-iid splits).
        alpha: Dirichlet concentration.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    perm = rng.permutation(n)
    if partition == "iid":
        return np.sort(np.array_split(perm, size)[rank])
    if labels is None or len(labels) != n:
        raise DataError(f"partition {partition!r} needs the labels of all {n} samples")
    labels = np.asarray(labels)
    if partition == "label-sorted":
        order = perm[np.argsort(labels[perm], kind="stable")]
        return np.sort(np.array_split(order, size)[rank])
    if partition == "dirichlet":
        mine = []
        for c in np.unique(labels):
            idx = perm[labels[perm] == c]
            share = rng.dirichlet(np.full(size, alpha))
            cuts = (np.cumsum(share)[:-1] * idx.size).astype(np.int64)
            mine.append(np.split(idx, cuts)[rank])
        return np.sort(np.concatenate(mine))
    raise DataError(f"unknown partition {partition!r}")


def _slice(n, rank, size):
    bounds = np.linspace(0, n, size + 1).astype(np.int64)
    return slice(int(bounds[rank]), int(bounds[rank + 1]))


def synthetic(n_train=12000, n_test=3000, n_features=64, n_classes=10, seed=0, noise=1.0):
    """A deterministic Gaussian-clusters classification problem.

    Class means are drawn once from the seed; each sample is its class mean plus
    isotropic noise. The same seed gives the same arrays on every machine. With the
    default noise the classes are well separated (softmax regression reaches ~100% test
    accuracy): a fast smoke-test problem, not a benchmark of accuracy.

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
    env = os.environ.get("HPCTRAIN_DATA", "")
    if data_dir or env:
        # a directory the user named is the only place looked at: never a silent fallback
        d, what = (data_dir, "--data-dir") if data_dir else (env, "HPCTRAIN_DATA")
        if not os.path.isdir(d):
            raise DataError(f"{what} {d} is not a directory")
        return d
    for d in FASHION_MNIST_DIRS:
        if d and all(_idx_path(d, stem) for stem in _FMNIST.values()):
            return d
    return None


def _idx_path(directory, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(directory, name)
        if os.path.exists(p):
            return p
    return None


def read_idx_count(path):
    """Number of items (first dimension) an IDX file's header declares."""
    with _open(path) as f:
        header = f.read(8)
    return int(np.frombuffer(header[4:8], dtype=">u4")[0])


@dataclass
class _Source:
    """A whole data set before sharding: all training labels, a row reader, the test set."""

    y_train: np.ndarray
    read_x: object  # rows -> float array (n_rows, d)
    x_test: np.ndarray
    y_test: np.ndarray
    n_features: int
    n_classes: int
    name: str
    input_shape: tuple = ()
    int_max: float = 0.0  # the stored type's maximum for integer-valued data (255 for uint8), else 0


def _holdout(n, seed, frac=0.1):
    """(train rows, test rows): a seeded 90/10 split for data sets without a test file."""
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x7E57])).permutation(n)
    k = max(1, int(round(n * frac)))
    return np.sort(perm[k:]), np.sort(perm[:k])


def _check_labels(path, y_train, y_test, n_features=1):
    for name, y in (("training", y_train), ("test", y_test)):
        if y.size and y.min() < 0:
            raise DataError(f"{path}: {name} label {int(y.min())} is out of range (labels must be >= 0)")
    n_classes = int(y_train.max()) + 1 if y_train.size else 0
    # a label L means L + 1 classes: the model (weights, gradient, optimizer state) grows with it
    check_fits(path, n_classes * (n_features + 1) * 4 * 8, f"label {n_classes - 1} ({n_classes} classes x "
               f"{n_features} features, the model)")
    if y_test.size and int(y_test.max()) >= n_classes:
        raise DataError(
            f"{path}: test label {int(y_test.max())} is out of range (training labels are 0..{n_classes - 1})"
        )
    return max(n_classes, 2)


def _image_shape(sample_shape):
    """One sample's shape as models see it: (h, w) images get one channel, (c, h, w)
    stays, anything else is a flat feature vector."""
    shape = tuple(int(v) for v in sample_shape)
    if len(shape) == 2:
        return (1,) + shape
    if len(shape) == 3:
        return shape
    return (int(np.prod(shape)),)


def _idx_source(directory, name):
    paths = {k: _idx_path(directory, stem) for k, stem in _FMNIST.items()}
    missing = [_FMNIST[k] + "[.gz]" for k, p in paths.items() if p is None]
    if missing:
        raise DataError(f"data file not found: {os.path.join(directory, missing[0])}")
    y_all = read_idx(paths["train_y"]).astype(np.int64)
    n = y_all.shape[0]
    x_test = read_idx(paths["test_x"])
    y_test = read_idx(paths["test_y"]).astype(np.int64)
    if x_test.shape[0] != y_test.shape[0]:
        raise DataError(f"{paths['test_x']}: {x_test.shape[0]} images but {y_test.shape[0]} labels")
    d = int(np.prod(x_test.shape[1:]))
    scale = lambda a: a.reshape(a.shape[0], -1).astype(np.float32)  # noqa: E731 (--normalize scales)

    def read_x(rows):
        x = read_idx(paths["train_x"], rows)
        if read_idx_count(paths["train_x"]) != n:
            raise DataError(f"{paths['train_x']}: {read_idx_count(paths['train_x'])} images but {n} labels")
        if x.shape[1:] != x_test.shape[1:]:
            raise DataError(f"feature dimension mismatch: train images {x.shape[1:]} vs test {x_test.shape[1:]}")
        return scale(x)

    n_classes = max(_check_labels(directory, y_all, y_test), 10)
    int_max = float(np.iinfo(x_test.dtype).max) if x_test.dtype.kind in "iu" else 0.0
    return _Source(y_all, read_x, scale(x_test), y_test, d, n_classes, name, _image_shape(x_test.shape[1:]), int_max)


#: LIBSVM tokens, strictly: ASCII digits only (no '_' separators, no other scripts' digits)
_LIBSVM_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE | re.ASCII)
_LIBSVM_PAIR = re.compile(r"\d+:(" + _LIBSVM_NUMBER.pattern + ")", re.IGNORECASE | re.ASCII)
_F32_MAX = float(np.finfo(np.float32).max)


def read_libsvm(path):
    """Parse a LIBSVM text file: ``label idx:val idx:val ...`` with 1-based indices.

    Returns:
        (labels as float64 array, list of (indices 0-based int64, values float32) per row,
        largest feature index + 1).
    """
    check_input(path)
    labels, rows, dim = [], [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if not _LIBSVM_NUMBER.fullmatch(parts[0]) or not all(map(_LIBSVM_PAIR.fullmatch, parts[1:])):
                raise DataError(f"{path}:{lineno}: malformed LIBSVM line (expected 'label index:value ...')")
            labels.append(float(parts[0]))
            pairs = [p.split(":", 1) for p in parts[1:]]
            idx = np.array([int(i) for i, _ in pairs], dtype=np.int64)
            val = np.array([float(v) for _, v in pairs], dtype=np.float64)
            if idx.size and idx.min() < 1:
                raise DataError(f"{path}:{lineno}: feature index {int(idx.min())} is not >= 1")
            if idx.size and np.unique(idx).size != idx.size:
                raise DataError(f"{path}:{lineno}: a feature index appears twice")
            if not math.isfinite(labels[-1]) or not np.isfinite(val).all():
                raise DataError(f"{path}:{lineno}: NaN or Inf in a label or value; clean the data")
            if np.abs(val).max(initial=0) > _F32_MAX:
                raise DataError(f"{path}:{lineno}: a value beyond float32's range (|x| > 3.4e38); rescale the data")
            rows.append((idx - 1, val.astype(np.float32)))
            dim = max(dim, int(idx.max()) if idx.size else 0)
    if not labels:
        raise DataError(f"{path}: no samples")
    if dim == 0:
        raise DataError(f"{path}: no features (every line is a label only)")
    return np.array(labels), rows, dim


def _dense(rows, dim, path=""):
    check_fits(path, len(rows) * dim * 4, f"{len(rows)} rows x {dim} features (largest feature index {dim})")
    x = np.zeros((len(rows), dim), dtype=np.float32)
    for i, (idx, val) in enumerate(rows):
        x[i, idx] = val
    return x


def _libsvm_source(path, test_path, seed):
    y_raw, rows, dim = read_libsvm(path)
    if test_path:
        ty_raw, trows, tdim = read_libsvm(test_path)
        if tdim > dim:
            raise DataError(
                f"feature dimension mismatch: {test_path} uses feature {tdim} but {path} has {dim} features"
            )
    else:
        tr, te = _holdout(len(rows), seed)
        ty_raw, trows = y_raw[te], [rows[i] for i in te]
        y_raw, rows = y_raw[tr], [rows[i] for i in tr]
    if np.any(y_raw != np.round(y_raw)):
        raise DataError(f"{path}: labels must be integers (classification)")
    classes = np.unique(y_raw)
    if set(classes.tolist()) <= {-1.0, 1.0}:
        classes = np.array([-1.0, 1.0])
    unknown = np.setdiff1d(np.unique(ty_raw), classes)
    if unknown.size:
        raise DataError(f"{test_path or path}: test label {unknown[0]:g} is out of range (not a training label)")
    y = np.searchsorted(classes, y_raw).astype(np.int64)
    y_test = np.searchsorted(classes, ty_raw).astype(np.int64)
    x = _dense(rows, dim, path)
    return _Source(y, lambda r: x[r], _dense(trows, dim, test_path or path), y_test, dim, max(len(classes), 2), f"libsvm:{path}")


def _hdf5_source(path, test_path, seed):
    import h5py

    def read(p, xname, yname, required=True):
        check_input(p)
        try:
            with h5py.File(p, "r") as f:
                if (xname in f) != (yname in f) and not required:
                    have, lack = (xname, yname) if xname in f else (yname, xname)
                    raise DataError(f"{p}: has {have} but no {lack}; give both or neither")
                if xname not in f or yname not in f:
                    if required:
                        raise DataError(f"{p}: needs datasets '{xname}' and '{yname}'")
                    return None, None
                xd, yd = _h5_dataset(f, p, xname, "fiu"), _h5_dataset(f, p, yname, "iu")
                if yd.ndim != 1 and not (yd.ndim == 2 and yd.shape[1] == 1):
                    raise DataError(f"{p}: {yname} has shape {yd.shape}; labels are one integer per row")
                if xd.shape[0] != yd.shape[0]:
                    raise DataError(f"{p}: {xname} has {xd.shape[0]} rows but {yname} has {yd.shape[0]}")
                n_x = math.prod(xd.shape)
                check_fits(p, n_x * (xd.dtype.itemsize + 4) + yd.shape[0] * 16, f"{xname} of shape {xd.shape}")
                x, y = xd[()], yd[()].reshape(-1)
        except OSError:
            if not os.path.isfile(p) or not h5py.is_hdf5(p):
                raise DataError(f"{p}: not a readable HDF5 file (truncated or wrong format)") from None
            raise DataError(f"{p}: {xname}/{yname} cannot be read (damaged data in an HDF5 file)") from None
        _check_finite(p, xname, x)
        if x.dtype.kind == "f" and x.dtype.itemsize > 4 and np.abs(x).max(initial=0) > _F32_MAX:
            raise DataError(f"{p}: {xname} holds values beyond float32's range (|x| > 3.4e38); rescale the data")
        if y.dtype.kind == "u" and y.size and int(y.max()) > np.iinfo(np.int64).max:
            raise DataError(f"{p}: {yname} label {int(y.max())} is out of range (a class index)")
        shapes[p] = x.shape[1:]
        kinds[p] = x.dtype
        return x.reshape(x.shape[0], -1).astype(np.float32), y.astype(np.int64)

    shapes, kinds = {}, {}
    x, y = read(path, "x", "y")
    if test_path:
        xt, yt = read(test_path, "x", "y")
    else:
        xt, yt = read(path, "x_test", "y_test", required=False)
        if xt is None:
            tr, te = _holdout(x.shape[0], seed)
            x, y, xt, yt = x[tr], y[tr], x[te], y[te]
    if xt.shape[1:] != x.shape[1:]:
        raise DataError(f"feature dimension mismatch: train has {x.shape[1]} features, test has {xt.shape[1]}")
    n_classes = _check_labels(path, y, yt, x.shape[1])
    dt = kinds[path]
    int_max = float(np.iinfo(dt).max) if dt.kind in "iu" and dt.itemsize <= 2 else 0.0  # 8/16-bit images
    return _Source(y, lambda r: x[r], xt, yt, x.shape[1], n_classes, f"hdf5:{path}", _image_shape(shapes[path]),
                   int_max)


def _h5_dataset(f, p, name, kinds):
    """``f[name]`` after checking it is a plain numeric dataset with rows (no link, group,
    string, compound, vlen or scalar); nothing is read."""
    import h5py

    link = f.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise DataError(f"{p}: {name} is {'an external' if isinstance(link, h5py.ExternalLink) else 'a soft'} link; "
                        "store the data in the file")
    ds = f.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise DataError(f"{p}: {name} is a group, not a dataset")
    dt = ds.dtype
    if dt.kind not in kinds or dt.fields is not None or dt.subdtype is not None:
        want = "integer class labels" if kinds == "iu" else "numbers"
        raise DataError(f"{p}: {name} must hold {want}, got {dt if dt.kind != 'O' else 'strings or variable-length data'}")
    if ds.is_virtual:
        raise DataError(f"{p}: {name} is a virtual dataset (its data lives in other files); store the data in the file")
    if ds.external:
        raise DataError(f"{p}: {name} keeps its data in external raw files; store the data in the file")
    plist = ds.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _flags, _values, fname = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            fname = fname.decode(errors="replace") if isinstance(fname, bytes) else fname
            raise DataError(f"{p}: {name} is compressed with HDF5 filter {code} ({fname or 'unnamed'}), which is "
                            "not available here; rewrite it with gzip or no compression")
    if ds.ndim == 0:
        raise DataError(f"{p}: {name} is a scalar; it needs one row per sample")
    if ds.shape[0] == 0 or math.prod(ds.shape) == 0:
        raise DataError(f"{p}: {name} is empty (shape {ds.shape})")
    return ds


def _synthetic_source(seed):
    xtr, ytr, xte, yte = synthetic(seed=seed)
    return _Source(ytr, lambda r: xtr[r], xte, yte, xtr.shape[1], 10, "synthetic")


def _source(spec, seed, data_dir, test_spec):
    if spec == "synthetic":
        return _synthetic_source(seed)
    if spec == "fashion-mnist":
        directory = find_fashion_mnist(data_dir)
        if directory is None:
            where = data_dir or os.environ.get("HPCTRAIN_DATA") or FASHION_MNIST_DIRS[0]
            raise DataError(
                f"Fashion-MNIST not found in {where} (apt-get install dataset-fashion-mnist, "
                "or --data-dir DIR with the IDX files)"
            )
        return _idx_source(directory, spec)
    kind, sep, path = spec.partition(":")
    if sep and kind == "libsvm":
        return _libsvm_source(path, test_spec.removeprefix("libsvm:"), seed)
    if sep and kind in ("hdf5", "h5"):
        return _hdf5_source(path, test_spec.partition(":")[2] if ":" in test_spec else test_spec, seed)
    if os.path.isdir(spec):
        return _idx_source(spec, spec)
    raise DataError(
        f"data set not found: {spec} (use fashion-mnist, synthetic, libsvm:PATH, hdf5:PATH or a directory of IDX files)"
    )


def _normalizer(src, how, n):
    """(resolved name, function float32 rows -> normalised float32 rows) for ``--normalize``;
    statistics come from the whole training set, so every rank applies the same map."""
    if how == "auto":
        how = "unit" if src.int_max else "none"
    if how == "none":
        return how, lambda a: a
    if how == "unit":
        if src.int_max:
            scale = np.float32(src.int_max)
        else:
            x = src.read_x(np.arange(n))
            scale = np.float32(float(np.abs(x).max()) or 1.0)
        return how, lambda a: a / scale
    x = src.read_x(np.arange(n)).astype(np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-12] = 1.0  # constant features (image borders) are only centred
    mean, inv = mean.astype(np.float32), (1.0 / std).astype(np.float32)
    return how, lambda a: (a - mean) * inv


def subset_rows(n, max_samples, seed):
    """The training rows kept by ``--max-samples``: a seeded subset (sorted), the same on
    every rank; all rows when ``max_samples`` is 0 or at least ``n``."""
    if not max_samples or max_samples >= n:
        return np.arange(n)
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5AB5])).permutation(n)
    return np.sort(perm[:max_samples])


def load_dataset(spec, rank=0, size=1, seed=0, data_dir="", partition="iid", alpha=0.5, test_spec="",
                 normalize="auto", max_samples=0):
    """Load this rank's part of the data set named by ``spec``.

    Args:
        spec: ``fashion-mnist`` (IDX files from ``data_dir``, ``$HPCTRAIN_DATA`` or
            Debian's ``dataset-fashion-mnist``), ``synthetic``, ``libsvm:PATH`` (LIBSVM
            text; labels {-1,+1} are binary, other integer labels are classes in sorted
            order), ``hdf5:PATH`` (datasets ``x`` and ``y``, optionally ``x_test`` and
            ``y_test``), or a directory holding ``train-images-idx3-ubyte[.gz]`` and the
            three other IDX files. Without a test set, a seeded 10% of the training file
            is held out.
        rank, size: this rank and the world size (sharding).
        seed: split/shuffling seed shared by all ranks.
        partition, alpha: how training samples are split over ranks (see
            :func:`shard_indices`).
        test_spec: a separate test file for ``libsvm:``/``hdf5:`` data sets.
        normalize: one of :data:`NORMALIZATIONS`.
        max_samples: train on a seeded subset of this many training samples (0: all).

    Returns:
        A :class:`Dataset` with this rank's training shard and test slice.
    """
    src = _source(spec, seed, data_dir, test_spec)
    keep = subset_rows(src.y_train.shape[0], max_samples, seed)
    if keep.size < src.y_train.shape[0]:
        read_all = src.read_x
        src.y_train, src.read_x = src.y_train[keep], lambda r: read_all(keep[r])
    n = src.y_train.shape[0]
    how, norm = _normalizer(src, normalize, n)
    rows = shard_indices(n, rank, size, seed, partition, src.y_train, alpha)
    if rows.size == 0:
        raise DataError(f"rank {rank} got no training samples with partition {partition!r}; use more data or a larger alpha")
    sl = _slice(src.y_test.shape[0], rank, size)
    x = norm(src.read_x(rows))
    value_range = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    return Dataset(x, src.y_train[rows], norm(src.x_test[sl]), src.y_test[sl], src.n_features,
                   src.n_classes, n, src.y_test.shape[0], src.name, src.input_shape, how, value_range)
