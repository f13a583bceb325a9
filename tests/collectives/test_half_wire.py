"""HalfWire (``--fp16-allreduce``) on one process: the casts' rounding, no allocation of the
vector's size per call, operations it leaves alone."""

import tracemalloc

import numpy as np

from hpctrain.collectives.half import HalfWire


class _Comm:
    def __init__(self, size):
        self.size = size


def _summing(n):
    """An allreduce as if every one of n ranks held the same vector (sums in float16)."""
    def allreduce(comm, buf, op):
        assert op == "sum" and buf.dtype == np.float16  # the wire carries halves, summed
        total = buf.copy()
        with np.errstate(over="ignore"):  # a sum beyond 65504 is inf, as on a GPU
            for _ in range(n - 1):
                np.add(total, buf, out=total)
        buf[...] = total
        return buf
    return allreduce


def test_mean_rounds_each_rank_share_to_half_and_widens_the_sum():
    x = np.array([1.0, 1 / 3, 1e-7, 65504 * 4, -70000.0, 0.0, 2049.0], np.float32)
    for n in (1, 2, 4):
        buf = x.copy()
        HalfWire(_summing(n))(_Comm(n), buf, "mean")
        with np.errstate(over="ignore"):
            share = (x * np.float32(1 / n)).astype(np.float16)
            want = share.copy()
            for _ in range(n - 1):
                want += share
        np.testing.assert_array_equal(buf, want.astype(np.float32))
    buf = x.copy()
    HalfWire(_summing(1))(_Comm(1), buf, "sum")
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(buf, x.astype(np.float16).astype(np.float32))
    assert np.isinf(buf[3]) and buf[6] == 2048.0  # overflow to inf, round to nearest even


def test_no_allocation_of_the_vector_size_after_the_first_call():
    x = np.random.default_rng(0).standard_normal(1 << 18).astype(np.float32)
    wire = HalfWire(lambda c, b, op: b)
    wire(_Comm(2), x, "mean")
    tracemalloc.start()
    try:
        for _ in range(3):
            wire(_Comm(2), x, "mean")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.size // 4, peak  # the half buffer alone would be 2 bytes per coordinate


def test_max_and_integer_buffers_pass_through():
    seen = []
    wire = HalfWire(lambda c, b, op: seen.append((b.dtype, op)) or b)
    wire(_Comm(2), np.ones(4, np.float32), "max")
    wire(_Comm(2), np.ones(4, np.int64), "sum")
    assert seen == [(np.dtype(np.float32), "max"), (np.dtype(np.int64), "sum")]
