"""Every kernel of kernels/*.cu, executed by the CPU harness (hpctrain.cudasim), against
its NumPy twin bit for bit, through the CuPy paths of the operator modules and hpctrain/compress/gpu.py (so the
launch shapes chosen there run too).

Cases come from tests/twin_cases.py, the table tests/gpu uses on a real GPU: every
operator x sizes {0, 1, 2, 31, 32, 33, 255, 256, 257, 1000, 4097, 65537} x float32/64 x
distributions (heavy-tailed, integer ties, all equal, finite extremes), the seed
varying with size and distribution; 10^5 and
10^6 + 3 for every operator; error-feedback memory; the RNG, pack, fp16 and scatter
kernels. Kernels with shared memory, atomics, barriers or warp votes (the selection
family) also run under shuffled schedules (random thread start/resume order, random
switches at loads, stores and atomics) and with two OS threads running blocks at once.
"""

import numpy as np
import pytest

from hpctrain import cudasim
from twin_cases import (BLOCK, DISTS, LARGE, OPS, SEEDS, SELECTION_OPS, SMALL, check_fp16_special, check_op,
                        check_pack, check_rng, check_scatter_add, data, op_id, same)

_OK, _WHY = cudasim.available()
pytestmark = pytest.mark.skipif(not _OK, reason=f"CPU harness unavailable: {_WHY}")


@pytest.fixture(autouse=True)
def sim(monkeypatch):
    """The stand-in CuPy (and the GPU helpers of hpctrain/compress/gpu.py over it)."""
    monkeypatch.setenv("HPCTRAIN_CUDASIM", "1")
    from hpctrain.compress import gpu as cuda
    from hpctrain.xp import cupy_or_none

    cp = cupy_or_none()
    assert cp.__version__ == "cudasim"
    return cp, cuda


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,params", OPS, ids=op_id)
def test_small_sizes_all_distributions(sim, name, params, dtype):
    cp, _ = sim
    for d in SMALL:
        for j, dist in enumerate(DISTS):
            seed = SEEDS[(d + j) % len(SEEDS)]
            check_op(cp, name, params, data(d, dtype, seed=seed, dist=dist), step=seed + 1, rank=seed)


@pytest.mark.parametrize("d", LARGE)
@pytest.mark.parametrize("name,params", OPS, ids=op_id)
def test_large_sizes(sim, name, params, d):
    cp, _ = sim
    dtype = np.float32 if d > 100_000 else np.float64
    check_op(cp, name, params, data(d, dtype, seed=d % 7))


@pytest.mark.parametrize("name,params", SELECTION_OPS + [("qsgd", {"bits": 4}), ("minmax", {"bits": 4}), ("sign", {})], ids=op_id)
def test_with_memory(sim, name, params):
    cp, _ = sim
    for d in (BLOCK + 1, 4097, 100_000):
        for dtype in (np.float32, np.float64):
            check_op(cp, name, params, data(d, dtype, seed=d), memory=True)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name,params", SELECTION_OPS, ids=op_id)
def test_shuffled_schedules(sim, name, params, seed):
    """Random interleavings must not change a bit (no races on shared memory/atomics)."""
    cp, _ = sim
    with cudasim.schedule(shuffle=True, seed=seed, yield_prob=0.1):
        for d in (BLOCK - 1, 1000, 4097):
            for dist in ("normal", "ties", "equal"):
                check_op(cp, name, params, data(d, np.float32, seed=seed, dist=dist), memory=seed == 1)


def test_two_os_threads(sim):
    """Blocks on two OS threads at once: the global atomics are real atomics."""
    cp, _ = sim
    with cudasim.schedule(workers=2, shuffle=True, seed=5):
        for name, params in SELECTION_OPS:
            check_op(cp, name, params, data(65537, np.float32, dist="ties"))


@pytest.mark.parametrize("n", [0, 1, 31, 33, 257, 100_000])
def test_rng_kernels(sim, n):
    check_rng(*sim, n)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_pack_kernels(sim, bits):
    for n in (0, 1, 7, 8, 9, 31, 32, 33, 2049, 100_000):
        check_pack(*sim, bits, n)


def test_fp16_special_values(sim):
    check_fp16_special(*sim)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_scatter_add(sim, dtype):
    check_scatter_add(sim[0], dtype=dtype)


@pytest.mark.parametrize("bucket", [1, 7, 64, 100, 512, 1000])
def test_bucket_sums_in_the_same_order(sim, bucket):
    """bucket_stats' float64 sums on values spread over 40 decades, where every order of the
    additions rounds differently: the kernel's lanes and groups are NumPy's."""
    cp, cuda = sim
    from hpctrain.compress.minmax import bucket_stats

    rng = np.random.default_rng(bucket)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal(5003) * 10.0 ** rng.uniform(-20, 20, 5003)).astype(dtype)
        for kind in ("norm", "mean-abs"):
            got, _ = cuda.bucket_stats(cp.asarray(x), bucket, kind)
            assert same(cp, bucket_stats(x, bucket, kind)[0], got), (dtype, kind)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_gather_kernel(sim, dtype):
    """gather_* has no caller in the operators; its twin is NumPy fancy indexing."""
    cp, cuda = sim
    for d, k in ((1, 1), (300, 33), (100_000, 257)):
        x = data(d, dtype, seed=k)
        idx = np.random.default_rng(k).choice(d, k, replace=False).astype(np.int64)
        val = cp.empty(k, dtype)
        cuda.get_function("scatter", f"gather_{cuda.suffix(dtype)}")(
            cuda.grid(k), (cuda.BLOCK,), (cp.asarray(x), cp.asarray(idx), np.uint64(k), val))
        assert same(cp, x[idx], val)


def test_every_kernel_ran(sim):
    """Each extern "C" kernel of every kernels/*.cu is launched by the cases above."""
    cp, cuda = sim
    from hpctrain.compress.cuda_build import inline_headers, kernel_files

    kernels = set()
    for f in kernel_files():
        kernels |= set(cudasim.Module(inline_headers(f.read_text()), name=f.stem).kernels)
    with cudasim.launch_log() as log:
        for name, params in OPS:
            check_op(cp, name, params, data(300, np.float64), memory=name != "none")
            check_op(cp, name, params, data(300, np.float32), memory=name != "none")
        check_rng(cp, cuda, 300)
        check_pack(cp, cuda, 2, 300)
        check_fp16_special(cp, cuda)
        check_scatter_add(cp, 300)
        check_scatter_add(cp, 300, dtype=np.float32)
        test_gather_kernel(sim, np.float32)
        test_gather_kernel(sim, np.float64)
    ran = {entry[0] for entry in log}
    assert kernels - ran == set(), f"never launched: {sorted(kernels - ran)}"


def _scores(x):
    bits = x.view(np.uint32 if x.dtype == np.float32 else np.uint64).astype(np.uint64)
    return bits & np.uint64((1 << (8 * x.dtype.itemsize - 1)) - 1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_radix_histogram_counts_exact(sim, dtype, seed):
    """The shared-memory/atomic histogram of the radix select, count for count against
    np.bincount, under shuffled schedules: a lost update shows here even where the
    selected threshold happens to survive it."""
    cp, cuda = sim
    fn = cuda.get_function("topk", f"topk_{cuda.suffix(dtype)}_hist")
    nbits = 8 * np.dtype(dtype).itemsize
    for d, dist in ((4097, "normal"), (65537, "ties"), (1000, "equal")):
        x = data(d, dtype, seed=seed, dist=dist)
        s = _scores(x)
        top = int(np.max(s)) if d else 0
        for shift, prefix, mask in ((nbits - 8, 0, 0), (nbits - 16, top & (0xFF << (nbits - 8)), 0xFF << (nbits - 8))):
            hist = cp.zeros(256, cp.uint64)
            with cudasim.schedule(shuffle=True, seed=seed, yield_prob=0.1):
                fn((min(1024, -(-d // BLOCK)),), (BLOCK,), (cp.asarray(x), np.uint64(0), np.uint64(d), np.uint64(0),
                                                             np.uint64(prefix), np.uint64(mask), np.int32(shift), hist))
            sel = (s & np.uint64(mask)) == np.uint64(prefix)
            want = np.bincount(((s[sel] >> np.uint64(shift)) & np.uint64(255)).astype(np.int64), minlength=256)
            assert np.array_equal(hist.get(), want.astype(np.uint64)), (d, dist, shift)
