"""The compiled host loops (hpctrain.jit) against the NumPy paths: the same payload bytes and
the same decoded bits, for every operator that uses them, on float32 and float64, odd sizes
and bucket sizes, signed zeros, values over 60 decades, and inf / NaN; the float16 casts
against NumPy's own on random bit patterns."""

import numpy as np
import pytest

from hpctrain import halfcast, jit
from hpctrain.compress import get_compressor

pytest.importorskip("numba", reason="the compiled loops need numba (pip install hpctrain[jit])")

CASES = [
    ("qsgd", {"bits": 2}), ("qsgd", {"bits": 4}), ("qsgd", {"bits": 8}), ("qsgd", {"bits": 4, "bucket_size": 77}),
    ("minmax", {"bits": 1}), ("minmax", {"bits": 2}), ("minmax", {"bits": 4}), ("minmax", {"bits": 8}),
    ("minmax", {"bits": 4, "bucket_size": 33}), ("minmax", {"bits": 2, "scaling": "norm"}),
    ("minmax", {"bits": 8, "scaling": "norm", "bucket_size": 1000}),
    ("sign", {}), ("sign", {"bucket_size": 100}), ("sign", {"bucket_size": 1}), ("fp16", {}),
]
SEEDED = ("qsgd", "minmax")


def _vector(n, dtype, special=False, seed=0):
    rng = np.random.default_rng(seed + n)
    x = (rng.standard_normal(n) * rng.choice([1e-30, 1e-3, 1.0, 1e30], n)).astype(dtype)
    if n > 8:
        x[3], x[5] = -0.0, 0.0
    if special and n > 1700:
        x[10], x[700], x[1500] = np.inf, np.nan, -np.inf
        x[1600:1700] = 0
    return x


def _roundtrip(monkeypatch, flag, name, params, x):
    monkeypatch.setenv("HPCTRAIN_JIT", flag)
    comp = get_compressor(name, **params, **({"seed": 5} if name in SEEDED else {}))
    payload = comp.compress(x, step=3, rank=1)
    out = np.full_like(x, 7.0)
    comp.decompress(payload, out)
    return np.asarray(payload.to_bytes()).tobytes(), out.tobytes()


def test_the_loops_are_on_with_numba_and_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("HPCTRAIN_JIT", "1")
    assert jit.enabled()
    monkeypatch.setenv("HPCTRAIN_JIT", "0")
    assert not jit.enabled()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 9, 513, 4105, 1 << 17])
@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{'-'.join(f'{k}{v}' for k, v in p.items())}" for n, p in CASES])
def test_payload_and_decode_equal_the_numpy_path(monkeypatch, name, params, n, dtype):
    x = _vector(n, dtype)
    assert _roundtrip(monkeypatch, "1", name, params, x) == _roundtrip(monkeypatch, "0", name, params, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{'-'.join(f'{k}{v}' for k, v in p.items())}" for n, p in CASES])
def test_inf_and_nan_take_the_same_codes_and_values(monkeypatch, name, params, dtype):
    x = _vector(2000, dtype, special=True)
    with np.errstate(all="ignore"):
        assert _roundtrip(monkeypatch, "1", name, params, x) == _roundtrip(monkeypatch, "0", name, params, x)


def test_a_strided_input_takes_the_numpy_path(monkeypatch):
    """The loops read contiguous vectors; a strided view still compresses, equal to its copy."""
    x = _vector(1 << 12, np.float32)[::2]
    a = _roundtrip(monkeypatch, "1", "qsgd", {"bits": 4}, x)
    b = _roundtrip(monkeypatch, "1", "qsgd", {"bits": 4}, np.ascontiguousarray(x))
    assert a == b


def test_a_wrong_loop_is_caught(monkeypatch):
    """The comparison can fail: a loop that rounds every coordinate down differs."""
    x = _vector(4105, np.float32)
    good = _roundtrip(monkeypatch, "1", "qsgd", {"bits": 4}, x)
    real = jit._STATE["codes"][True, True]  # QSGD on float32

    def down(*args):
        codes = real(*args)
        codes[::7] &= np.uint8(0xF8)  # drop the level of every 7th code
        return codes

    monkeypatch.setitem(jit._STATE, "codes", {**jit._STATE["codes"], (True, True): down})
    assert _roundtrip(monkeypatch, "1", "qsgd", {"bits": 4}, x) != good


@pytest.mark.parametrize("kind", ["integer", "hardware"])
def test_half_casts_equal_numpys_on_every_kind_of_float32(monkeypatch, kind):
    """Random bit patterns (NaNs with payloads, infs, subnormals, halfway cases) and values
    around the half's limits, each way, against NumPy's astype; both the integer loops and,
    where the CPU has them, its conversion instructions."""
    monkeypatch.setenv("HPCTRAIN_JIT", "1")
    assert jit.enabled()
    if kind not in jit._STATE["half_loops"]:
        pytest.skip("this CPU has no float16 conversion instructions (x86 F16C, 64-bit ARM)")
    to_half, from_half = jit._STATE["half_loops"][kind]
    monkeypatch.setitem(jit._STATE, "to_half", to_half)
    monkeypatch.setitem(jit._STATE, "from_half", from_half)
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32)
    edges = np.array([0x33000000, 0x33000001, 0x387FE000, 0x387FF000, 0x38800000, 0x477FE000, 0x477FEFFF,
                      0x477FF000, 0x47800000, 0x7F800000, 0x7F800001, 0x7FC00000, 0x7FFFFFFF, 0x00000001],
                     np.uint32)
    x = np.concatenate([bits, edges, edges | np.uint32(0x80000000)]).view(np.float32)
    half = np.empty(x.size, np.float16)
    jit.to_half(x, half)
    with np.errstate(all="ignore"):
        ref = x.astype(np.float16)
    assert np.array_equal(half.view(np.uint16), ref.view(np.uint16))
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    wide = np.empty(every.size, np.float32)
    jit.from_half(every, wide)
    with np.errstate(all="ignore"):
        assert np.array_equal(wide.view(np.uint32), every.astype(np.float32).view(np.uint32))


def test_float16_addition_equals_numpys(monkeypatch):
    """The collectives' float16 reduction through the compiled casts."""
    monkeypatch.setenv("HPCTRAIN_JIT", "1")
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 1 << 16, 300_000, dtype=np.uint32).astype(np.uint16).view(np.float16) for _ in range(2))
    out = np.empty_like(a)
    halfcast.HalfAdd()(a, b, out)
    with np.errstate(all="ignore"):
        ref = np.add(a, b)
    same = out.view(np.uint16) == ref.view(np.uint16)
    assert np.all(same | (np.isnan(out) & np.isnan(ref)))  # which NaN payload an add keeps is NumPy's choice


def test_loops_leave_no_files_beside_the_package(tmp_path):
    """Every loop compiled in a fresh process writes nothing into the package's directory
    (Numba's on-disk cache would add copies of the loops there on every run)."""
    import os
    import subprocess
    import sys

    pkg = os.path.dirname(jit.__file__)

    def numba_files():
        return sorted(os.path.join(r, f) for r, _, fs in os.walk(pkg) for f in fs if f.endswith((".nbi", ".nbc")))

    before = numba_files()
    code = ("import numpy as np\n"
            "from hpctrain import jit\n"
            "from hpctrain.compress import get_compressor\n"
            "assert jit.enabled()\n"
            "x = np.random.default_rng(0).standard_normal(5000).astype(np.float32)\n"
            "for name, kw in [('qsgd', {'bits': 4, 'seed': 1}), ('minmax', {'bits': 2, 'seed': 1}), ('sign', {}),"
            " ('fp16', {})]:\n"
            "    c = get_compressor(name, **kw)\n"
            "    c.decompress(c.compress(x), np.empty_like(x))\n")
    env = dict(os.environ, HPCTRAIN_JIT="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert numba_files() == before, "the compiled loops wrote files beside the package"
