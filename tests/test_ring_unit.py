"""Ring allreduce pieces that need no MPI job: chunking and argument checks."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from hpctrain.collectives.ring import chunk_bounds, reduce_op
from hpctrain.errors import CommError


@given(st.integers(0, 10_000), st.integers(1, 64))
def test_chunk_bounds_cover_exactly(length, n):
    b = chunk_bounds(length, n)
    assert len(b) == n + 1 and b[0] == 0 and b[-1] == length
    sizes = np.diff(b)
    assert sizes.min() >= 0 and sizes.max() - sizes.min() <= 1
    assert list(sizes) == sorted(sizes, reverse=True)


def test_mean_of_integers_is_refused():
    with pytest.raises(CommError, match="floating-point"):
        reduce_op("mean", np.zeros(3, dtype=np.int32))


def test_unknown_op_is_refused():
    with pytest.raises(CommError, match="unknown reduction"):
        reduce_op("xor", np.zeros(3))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("op", ["add", "maximum"])
def test_dense_sum_reduces_left_to_right_into_any_payload(n, op):
    # the server's output shard is one of the payloads (its own): the result must still be
    # ((p0 . p1) . p2) . ... bit for bit, whichever payload the output aliases
    from hpctrain.collectives.multi_ps import DenseSum

    from hpctrain.comm.buffers import Buffers

    class Comm:  # a communicator owns its scratch buffers
        buffers = Buffers()

    ufunc = getattr(np, op)
    rng = np.random.default_rng(n)
    base = [rng.standard_normal(37).astype(np.float32) for _ in range(n)]
    want = base[0].copy()
    for p in base[1:]:
        ufunc(want, p, out=want)
    for own in range(n):
        payloads = [p.copy() for p in base]
        out = DenseSum().reduce_into(Comm(), payloads[own], payloads, [p.nbytes for p in payloads], ufunc)
        assert out is payloads[own] and np.array_equal(out, want)
        assert all(np.array_equal(payloads[i], base[i]) for i in range(n) if i != own)
