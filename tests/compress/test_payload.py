"""Payload wire format: exact nbytes per operator, bytes round trip, registry validation."""

import math

import numpy as np
import pytest

from hpctrain.compress import HEADER_BYTES, Payload, compressor_names, get_compressor
from hpctrain.errors import ConfigError

OPS = [
    ("none", {}), ("fp16", {}), ("topk", {"density": 0.01}), ("approx-topk", {"density": 0.02}),
    ("threshold", {"threshold": 1.0}), ("randk", {"density": 0.1}), ("qsgd", {"bits": 4}),
    ("minmax", {"bits": 4}),
    ("minmax", {"bits": 1, "scaling": "norm"}), ("sign", {"bucket_size": 100}),
]


def expected_nbytes(name, params, p, d, itemsize):
    if name == "none":
        return 32 + d * itemsize
    if name == "fp16":
        return 32 + 2 * d
    if name in ("topk", "approx-topk", "threshold"):
        return 32 + p.count * (4 + itemsize)
    if name == "randk":
        return 32 + p.count * itemsize
    bucket = params.get("bucket_size", 512)
    nb = math.ceil(d / bucket)
    if name == "sign":
        return 32 + math.ceil(d / 8) + nb * itemsize
    nscales = 1 if params.get("scaling") == "norm" or name == "qsgd" else 2  # qsgd: one norm per bucket
    return 32 + math.ceil(d * params["bits"] / 8) + nb * nscales * itemsize


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [0, 1, 5, 1000, 4099])
@pytest.mark.parametrize("name,params", OPS)
def test_nbytes_and_round_trip(name, params, d, dtype):
    x = np.random.default_rng(d).standard_normal(d).astype(dtype)
    comp = get_compressor(name, **params)
    p = comp.compress(x, step=7, rank=1)
    assert p.nbytes == expected_nbytes(name, params, p, d, np.dtype(dtype).itemsize)
    buf = p.to_bytes()
    assert buf.dtype == np.uint8 and buf.size == p.nbytes
    p2 = Payload.from_bytes(buf)
    assert (p2.op, p2.size, p2.count, p2.step, p2.dtype) == (p.op, d, p.count, 7, np.dtype(dtype))
    assert list(p2.arrays) == list(p.arrays)
    for k in p.arrays:
        assert np.array_equal(p2[k].view(np.uint8), p[k].view(np.uint8))
    a, b = np.empty(d, dtype), np.empty(d, dtype)
    comp.decompress(p, a)
    comp.decompress(p2, b)
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8))


def test_from_bytes_rejects_bad_buffers():
    p = get_compressor("topk", density=0.1).compress(np.arange(100.0))
    buf = p.to_bytes()
    with pytest.raises(ValueError):
        Payload.from_bytes(buf[:-1])
    with pytest.raises(ValueError):
        Payload.from_bytes(np.concatenate([buf, np.zeros(1, np.uint8)]))
    with pytest.raises(ValueError):
        Payload.from_bytes(buf[:10])
    assert HEADER_BYTES == 32


def test_decompress_checks_output():
    comp = get_compressor("topk")
    p = comp.compress(np.arange(10.0))
    with pytest.raises(ValueError):
        comp.decompress(p, np.empty(9))
    with pytest.raises(ValueError):
        comp.decompress(p, np.empty(10, np.float32))


def test_registry():
    """The shipped operators are registered (a new one may join without editing this)."""
    assert {"topk", "approx-topk", "threshold", "randk", "qsgd", "minmax", "sign", "fp16",
            "none"} <= set(compressor_names())


def test_former_name_refused_with_the_new_one():
    from hpctrain.errors import ConfigError

    with pytest.raises(ConfigError, match="'quantize' is now called 'minmax'"):
        get_compressor("quantize", bits=8)
    with pytest.raises(ConfigError, match="unknown compressor 'top-k'"):
        get_compressor("top-k")
    with pytest.raises(ConfigError, match="unexpected keyword"):
        get_compressor("topk", bits=4)


@pytest.mark.parametrize("name", ["topk", "approx-topk", "randk"])
@pytest.mark.parametrize("density", [0, -0.1, 1.5, "x", float("nan")])
def test_invalid_density(name, density):
    with pytest.raises(ConfigError, match="density"):
        get_compressor(name, density=density)


@pytest.mark.parametrize("bad", [np.zeros(4, np.int32), np.zeros(4, np.float16), np.zeros((2, 2))])
def test_invalid_input(bad):
    with pytest.raises(TypeError):
        get_compressor("topk").compress(bad)
