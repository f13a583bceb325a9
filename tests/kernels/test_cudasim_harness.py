"""The CPU execution harness itself (hpctrain.cudasim): each CUDA feature it reproduces,
and each kind of bug it must catch, on small purpose-written kernels."""

import numpy as np
import pytest

from hpctrain import cudasim

_OK, _WHY = cudasim.available()
pytestmark = pytest.mark.skipif(not _OK, reason=f"CPU harness unavailable: {_WHY}")

SRC = r'''
typedef unsigned long long u64;
extern "C" __global__ void copy_ok(const float* x, u64 n, float* out) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = x[i];
}
extern "C" __global__ void copy_off_by_one(const float* x, u64 n, float* out) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = x[i];
}
// reverse each block of 256 through shared memory
extern "C" __global__ void reverse_block(const int* x, int* out, int sync) {
    __shared__ int sh[256];
    int t = threadIdx.x;
    sh[t] = x[blockIdx.x * 256 + t];
    if (sync) __syncthreads();
    out[blockIdx.x * 256 + t] = sh[255 - t];
}
extern "C" __global__ void count_shared(u64 n, unsigned int* total, int atomic) {
    __shared__ unsigned int c;
    if (threadIdx.x == 0) c = 0;
    __syncthreads();
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        if (atomic) atomicAdd(&c, 1u);
        else c = c + 1u;
    }
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(total, c);
}
extern "C" __global__ void votes(const int* pred, unsigned int* ballot, int* count) {
    int t = threadIdx.x;
    unsigned int b = __ballot_sync(0xFFFFFFFFu, pred[t]);
    if ((t & 31) == 0) ballot[t >> 5] = b;
    int c = __syncthreads_count(pred[t]);
    if (t == 0) *count = c;
}
extern "C" __global__ void deadlock(unsigned int* out) {
    if (threadIdx.x == 0) out[0] = __ballot_sync(0xFFFFFFFFu, 1);
    else __syncthreads();
}
extern "C" __global__ void shfl_down(const int* x, int* out) {
    int t = threadIdx.x;
    out[t] = __shfl_sync(0xFFFFFFFFu, x[t], (t + 1) & 31);
}
extern "C" __global__ void mul_add(const float* a, const float* b, const float* c, u64 n, float* out) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] * b[i] + c[i];  // must round twice (no FMA contraction)
}
extern "C" __global__ void dims(unsigned int* out) {
    unsigned int t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    unsigned int b = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    out[b * blockDim.x * blockDim.y * blockDim.z + t] = b * 1000 + t;
}
'''


@pytest.fixture(scope="module")
def mod():
    return cudasim.Module(SRC, name="harness_selftest")


def test_kernels_found(mod):
    assert set(mod.kernels) == {"copy_ok", "copy_off_by_one", "reverse_block", "count_shared", "votes", "deadlock",
                                "shfl_down", "mul_add", "dims"}
    assert mod.get_function("copy_ok").params == ["Pf4", "u-8", "Pf4"]


def test_out_of_bounds_is_caught(mod):
    x = np.arange(300, dtype=np.float32)
    out = np.zeros(300, np.float32)
    mod.get_function("copy_ok")((2,), (256,), (x, np.uint64(300), out))
    assert np.array_equal(out, x)
    with pytest.raises(cudasim.KernelError, match=r"out-of-bounds read of 4 bytes: kernel argument 0, 0 bytes "
                                                   r"past the end .*block \(1,0,0\), thread \(44,0,0\)"):
        mod.get_function("copy_off_by_one")((2,), (256,), (x, np.uint64(300), out))


def test_missing_barrier_is_caught(mod):
    x = np.arange(512, dtype=np.int32)
    want = x.reshape(2, 256)[:, ::-1].reshape(-1)
    out = np.zeros(512, np.int32)
    mod.get_function("reverse_block")((2,), (256,), (x, out, np.int32(1)))
    assert np.array_equal(out, want)
    mod.get_function("reverse_block")((2,), (256,), (x, out, np.int32(0)))
    assert not np.array_equal(out, want)  # threads read sh[] before the others wrote it


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_non_atomic_update_is_caught_by_the_shuffled_schedule(mod, seed):
    fn = mod.get_function("count_shared")
    n = 5000
    for atomic in (1, 0):
        with cudasim.schedule(shuffle=True, seed=seed, yield_prob=0.2):
            total = np.zeros(1, np.uint32)
            fn((20,), (256,), (np.uint64(n), total, np.int32(atomic)))
        assert (total[0] == n) == bool(atomic), (atomic, total[0])
    total = np.zeros(1, np.uint32)  # in order, a lost update cannot happen: this is why we shuffle
    fn((20,), (256,), (np.uint64(n), total, np.int32(0)))
    assert total[0] == n


def test_votes_and_counts(mod):
    pred = (np.random.default_rng(0).random(256) < 0.3).astype(np.int32)
    ballot = np.zeros(8, np.uint32)
    count = np.zeros(1, np.int32)
    for shuffle in (False, True):
        with cudasim.schedule(shuffle=shuffle, seed=4):
            mod.get_function("votes")((1,), (256,), (pred, ballot, count))
        bits = (pred.reshape(8, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=1)
        assert np.array_equal(ballot, bits.astype(np.uint32))
        assert count[0] == pred.sum()


def test_shfl(mod):
    x = np.arange(64, dtype=np.int32) * 7
    out = np.zeros(64, np.int32)
    mod.get_function("shfl_down")((1,), (64,), (x, out))
    lane = np.arange(64) % 32
    assert np.array_equal(out, x[np.arange(64) - lane + (lane + 1) % 32])


def test_deadlock_is_reported(mod):
    with pytest.raises(cudasim.KernelError, match="deadlock in block"):
        mod.get_function("deadlock")((1,), (64,), (np.zeros(1, np.uint32),))


def test_no_fma_contraction(mod):
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(10_000).astype(np.float32) for _ in range(3))
    out = np.empty_like(a)
    mod.get_function("mul_add")((40,), (256,), (a, b, c, np.uint64(a.size), out))
    two_roundings = a * b + c
    fused = (a.astype(np.float64) * b + c).astype(np.float32)  # one rounding (what FMA gives, nearly)
    assert np.array_equal(out, two_roundings)
    assert not np.array_equal(out, fused)  # the check can tell them apart


def test_multi_dimensional_indices(mod):
    out = np.zeros(2 * 3 * 4 * 5, np.uint32)
    mod.get_function("dims")((2, 3), (4, 5), (out,))
    b, t = np.divmod(np.arange(out.size), 20)
    assert np.array_equal(out, b * 1000 + t)


def test_bad_arguments(mod):
    fn = mod.get_function("copy_ok")
    x = np.zeros(4, np.float32)
    with pytest.raises(cudasim.KernelError, match="argument 0 is a float64 array"):
        fn((1,), (4,), (x.astype(np.float64), np.uint64(4), x))
    with pytest.raises(cudasim.KernelError, match="argument 1 is int"):
        fn((1,), (4,), (x, 4, x))
    with pytest.raises(cudasim.KernelError, match="argument 1 is int32"):
        fn((1,), (4,), (x, np.int32(4), x))
    with pytest.raises(cudasim.KernelError, match="takes 3 arguments"):
        fn((1,), (4,), (x, x))
    with pytest.raises(cudasim.KernelError, match="not C-contiguous"):
        fn((1,), (4,), (np.zeros(8, np.float32)[::2], np.uint64(4), x))
    with pytest.raises(cudasim.KernelError, match="exceeds the device limits"):
        fn((1,), (2048,), (x, np.uint64(4), x))
    with pytest.raises(cudasim.KernelError, match="no kernel 'nope'"):
        mod.get_function("nope")


def test_build_error_has_the_compiler_message():
    with pytest.raises(cudasim.BuildError, match="undeclared|not declared"):
        cudasim.Module('extern "C" __global__ void k(int* p) { p[0] = nothing; }', name="bad")


def test_cupy_stand_in(monkeypatch):
    from hpctrain.cudasim import cupy as cp

    e = cp.empty(5, cp.float32)
    assert e.view(np.uint32)[0] == 0xA5A5A5A5  # uninitialized memory is not zeros
    a = cp.asarray(np.arange(4.0))
    assert hasattr(a, "__cuda_array_interface__") and isinstance(a + 1, cp.ndarray)
    with pytest.raises(TypeError, match="mixes a host numpy.ndarray"):
        a + np.arange(4.0)
    assert type(cp.asnumpy(a)) is np.ndarray and np.array_equal(cp.cumsum(a).get(), [0, 1, 3, 6])
