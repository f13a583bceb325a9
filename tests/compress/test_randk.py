"""Random-k with a shared seed: same coordinates on every rank, new ones every step, uniform."""

import numpy as np
import pytest

from hpctrain.compress import get_compressor
from hpctrain.compress.randk import first_distinct, randk_indices, sparse_rule
from hpctrain.compress.rng import STREAM_RANDK, counter_key, hash_u64
from test_rng import splitmix_ref


def oracle(seed, step, d, k):
    """Dense rule: the k smallest keys, ties to the lower index."""
    keys = hash_u64(counter_key(seed, step, 0, STREAM_RANDK), 0, d)
    order = np.lexsort((np.arange(d), keys))  # smallest keys, ties to lower index
    return np.sort(order[:k])


def sequential_oracle(seed, step, d, k):
    """Sparse rule, one draw at a time in pure Python: hash(key, j) mod d, j = 0, 1, ...,
    duplicates rejected, until k distinct."""
    key = counter_key(seed, step, 0, STREAM_RANDK)
    seen, j = set(), 0
    while len(seen) < k:
        seen.add(splitmix_ref(key, j) % d)
        j += 1
    return np.array(sorted(seen), dtype=np.int64)


@pytest.mark.parametrize("d,k", [(1, 1), (10, 3), (500, 500), (1000, 200)])
def test_dense_rule_matches_sorted_keys_oracle(d, k):
    assert not sparse_rule(d, k)
    assert np.array_equal(randk_indices(3, 17, d, k), oracle(3, 17, d, k))


@pytest.mark.parametrize("d,k", [(8, 1), (1000, 10), (1000, 125), (12345, 1234), (100_003, 1000)])
def test_sparse_rule_matches_sequential_oracle(d, k):
    assert sparse_rule(d, k)
    assert np.array_equal(randk_indices(3, 17, d, k), sequential_oracle(3, 17, d, k))


def test_sparse_rule_does_not_depend_on_the_batch():
    key, d, k = counter_key(5, 2, 0, STREAM_RANDK), 5000, 600
    assert first_distinct(np, hash_u64(key, 0, k), d, k) is None  # duplicates: too few
    ref = sequential_oracle(5, 2, d, k)
    for m in (700, 1000, 5000):
        assert np.array_equal(first_distinct(np, hash_u64(key, 0, m), d, k), ref)


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


@pytest.mark.parametrize("d,k", [(200, 20), (200, 50)], ids=["sparse", "dense"])
def test_marginals_uniform(d, k):
    steps = 2000
    counts = np.zeros(d)
    for s in range(steps):
        idx = randk_indices(0, s, d, k)
        assert np.unique(idx).size == k
        counts[idx] += 1
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
