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
