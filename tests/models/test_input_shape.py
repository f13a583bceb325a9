"""Image shape comes from the data set: IDX images get one channel, HDF5 (n, c, h, w)
keeps its shape, flat data stay flat; the image models take that shape."""

import h5py
import numpy as np

from hpctrain.data import load_dataset
from hpctrain.models import build_model


def _write_idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes() + arr.tobytes())


def test_idx_images_are_one_channel(tmp_path):
    for stem, n in (("train", 40), ("t10k", 10)):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte", np.arange(n * 12).reshape(n, 3, 4) % 255)
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", np.arange(n) % 10)
    d = load_dataset(str(tmp_path))
    assert d.input_shape == (1, 3, 4) and d.x_train.shape[1] == 12


def test_hdf5_keeps_chw_and_the_model_sees_it(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((30, 3, 6, 5)).astype(np.float32)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["x"], f["y"] = x, np.arange(30) % 3
    d = load_dataset(f"hdf5:{tmp_path}/a.h5")
    assert d.input_shape == (3, 6, 5) and d.x_train.shape[1] == 90
    m = build_model("conv:2:3,relu,flatten,linear:3", d.input_shape, d.n_classes)
    p = m.init_params(np, np.float64, 0)
    # the flattened CHW row is the image: the model's first conv sees x[b, c, i, j] at NHWC [b, i, j, c]
    inner = m._to_internal(x[:2].reshape(2, -1))
    np.testing.assert_array_equal(inner, x[:2].transpose(0, 2, 3, 1))
    assert m.logits(p, d.x_test).shape == (d.x_test.shape[0], 3)


def test_flat_data_stay_flat():
    d = load_dataset("synthetic")
    assert d.input_shape == (d.n_features,)
