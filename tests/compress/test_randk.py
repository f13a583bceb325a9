"""Random-k with a shared seed: same coordinates on every rank, new ones every step, uniform."""

import numpy as np
import pytest

from hpctrain.compress import get_compressor
from hpctrain.compress.randk import randk_indices
from hpctrain.compress.rng import STREAM_RANDK, counter_key, hash_u64


def oracle(seed, step, d, k):
    keys = hash_u64(counter_key(seed, step, 0, STREAM_RANDK), 0, d)
    order = np.lexsort((np.arange(d), keys))  # smallest keys, ties to lower index
    return np.sort(order[:k])


@pytest.mark.parametrize("d,k", [(1, 1), (10, 3), (1000, 10), (12345, 1234), (500, 500)])
def test_matches_sorted_keys_oracle(d, k):
    assert np.array_equal(randk_indices(3, 17, d, k), oracle(3, 17, d, k))


def test_same_across_ranks_different_across_steps():
    x = np.random.default_rng(0).standard_normal(100_000)
    comp = [get_compressor("randk", density=0.01, seed=11) for _ in range(4)]
    for step in range(3):
        idx = [c.indices(step, x.size) for c in comp]
        vals = [c.compress(x, step=step, rank=r)["values"] for r, c in enumerate(comp)]
        for i in range(1, 4):
            assert np.array_equal(idx[0], idx[i]) and np.array_equal(vals[0], vals[i])
        assert np.unique(idx[0]).size == 1000
    a, b = comp[0].indices(0, x.size), comp[0].indices(1, x.size)
    assert np.intersect1d(a, b).size < 100  # expected overlap ~ k^2/d = 10
    other_seed = get_compressor("randk", density=0.01, seed=12).indices(0, x.size)
    assert np.intersect1d(a, other_seed).size < 100


def test_marginals_uniform():
    d, k, steps = 200, 20, 2000
    counts = np.zeros(d)
    for s in range(steps):
        counts[randk_indices(0, s, d, k)] += 1
    p = k / d
    # each count ~ Binomial(steps, p): 5 sigma bound on every coordinate
    sigma = np.sqrt(steps * p * (1 - p))
    assert np.abs(counts - steps * p).max() < 5 * sigma


def test_payload_carries_values_only():
    x = np.arange(1000, dtype=np.float32)
    comp = get_compressor("randk", density=0.1)
    p = comp.compress(x, step=4)
    assert list(p.arrays) == ["values"] and p.nbytes == 32 + 100 * 4
    out = np.empty_like(x)
    comp.decompress(p, out)
    idx = comp.indices(4, 1000)
    assert np.array_equal(out[idx], x[idx]) and np.count_nonzero(out) == 100 - (0 in idx)
