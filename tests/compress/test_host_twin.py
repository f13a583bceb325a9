"""The per-element math of kernels/common.cuh, built for the host, equals NumPy bit for bit.

Every kernel calls these functions (counter RNG, |x| scores, stochastic rounding and
knobs, fp16 rounding), so this pins the CUDA twins to the NumPy reference on a machine
without a GPU. Skips when no host C++ compiler is available.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hpctrain.compress import gpu as cuda
from hpctrain.compress.minmax import bucket_stats, dequantize, knobs, quantize_codes
from hpctrain.compress.rng import counter_key, hash32, hash_u64, uniform

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("clang++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler (g++/clang++) to build kernels/common.cuh for the host")
    exe = tmp_path_factory.mktemp("twin") / "host_twin"
    res = subprocess.run([cxx, "-O2", "-ffp-contract=off", "-std=c++17", f"-I{cuda.kernel_dir()}",
                          str(HERE / "host_twin.cpp"), "-o", str(exe)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


def run(exe, tmp_path, mode, arr, out_dtype, *args):
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    (arr if arr is not None else np.zeros(0, np.uint8)).tofile(src)
    subprocess.run([str(exe), mode, str(src), str(dst), *map(str, args)], check=True)
    return np.fromfile(dst, dtype=out_dtype)


def test_hash_and_uniform_match_numpy(twin, tmp_path):
    for key in (0, 1, counter_key(7, 123, 3, 1), 2**64 - 1):
        h = run(twin, tmp_path, "hash", None, np.uint64, key, 5000)
        assert np.array_equal(h, hash_u64(key, 0, 5000))
        u = run(twin, tmp_path, "uniform", None, np.float64, key, 5000)
        assert np.array_equal(u.view(np.uint64), uniform(key, 5000).view(np.uint64))


def test_hash32_matches_numpy(twin, tmp_path):
    for key in (0, 1, counter_key(7, 123, 3, 1), 2**64 - 1):
        for start in (0, 3):
            h = run(twin, tmp_path, "hash32", None, np.uint32, key, 5000 + start)[start:]
            assert np.array_equal(h, hash32(key, start, 5000))


def _special(dtype):
    fi = np.finfo(dtype)
    rng = np.random.default_rng(1)
    vals = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 65536.0, 1e6, -1e6, 2.0**-14, 2.0**-24, 2.0**-25,
            2.0**-25 * 1.0000001, 3 * 2.0**-26, 2.0**-26, 1e-30, fi.tiny, fi.max, np.inf, -np.inf, 5.96e-8, 6.1e-5]
    x = np.concatenate([np.array(vals, dtype=dtype),
                        (rng.standard_normal(20000) * 10.0 ** rng.integers(-9, 6, 20000)).astype(dtype),
                        rng.integers(0, 2**16, 4000).astype(np.uint16).view(np.float16).astype(dtype)])
    return x[~np.isnan(x)]


@pytest.mark.parametrize("dtype,mode", [(np.float64, "half64"), (np.float32, "half32")])
def test_half_rounding_matches_numpy(twin, tmp_path, dtype, mode):
    x = _special(dtype)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).view(np.uint16)
    got = run(twin, tmp_path, mode, x, np.uint16)
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, f"{bad.size} mismatches, e.g. x={x[bad[:5]]!r} got={got[bad[:5]]} ref={ref[bad[:5]]}"


def test_half_widening_is_exact(twin, tmp_path):
    h = np.arange(2**16, dtype=np.uint16)
    got = run(twin, tmp_path, "unhalf", h, np.float64)
    ref = h.view(np.float16).astype(np.float64)
    finite = ~np.isnan(ref)
    assert np.array_equal(got[finite].view(np.uint64), ref[finite].view(np.uint64))
    assert np.isnan(got[~finite]).all()


@pytest.mark.parametrize("dtype,mode", [(np.float32, "abs32"), (np.float64, "abs64")])
def test_abs_score_orders_like_abs(twin, tmp_path, dtype, mode):
    x = _special(dtype)
    s = run(twin, tmp_path, mode, x, np.uint64)
    a = np.abs(x)
    order = np.argsort(a, kind="stable")
    assert np.all(np.diff(s[order].astype(np.float64)) >= 0)  # monotone in |x|
    assert np.array_equal(s == s[0], a == a[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scaling", ["minmax", "norm"])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_quantize_one_matches_numpy(twin, tmp_path, dtype, scaling, bits):
    rng = np.random.default_rng(bits)
    n, bucket = 3001, 128
    x = (rng.standard_normal(n) * 3).astype(dtype)
    x[:bucket] = 0.25  # a constant bucket: delta = 0 (minmax)
    levels = (1 << bits) - 1
    key = counter_key(5, 9, 2, 1)
    s0, s1 = bucket_stats(x, bucket, scaling)
    codes = quantize_codes(x, bucket, scaling, s0, s1, levels, key)
    deq = dequantize(codes, bucket, scaling, s0, s1, levels, np.empty(n, dtype))
    e0 = np.repeat(s0, bucket)[:n]
    e1 = np.repeat(s1 if s1 is not None else s0, bucket)[:n]
    got = run(twin, tmp_path, "quant32" if dtype == np.float32 else "quant64", np.concatenate([x, e0, e1]),
              np.uint8, 0 if scaling == "minmax" else 1, levels, key)
    got_deq = np.fromfile(str(tmp_path / "out.bin") + ".deq", dtype=dtype)
    assert np.array_equal(got, codes)
    assert np.array_equal(got_deq.view(np.uint8), deq.view(np.uint8))
    lo, delta = knobs(scaling, s0, s1, levels)
    assert lo.dtype == dtype and delta.dtype == dtype
