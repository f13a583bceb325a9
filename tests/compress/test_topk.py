"""Exact top-k against an argsort oracle (ties to the lower index), approximate top-k's
count band on several distributions, threshold-k."""

import numpy as np
import pytest

from hpctrain.compress import get_compressor
from hpctrain.compress.approx_topk import count_band
from hpctrain.compress.topk import k_for_density


def oracle_topk(x, k):
    """Independent reference: stable sort by (-|x|, index), first k, ascending."""
    order = np.lexsort((np.arange(x.size), -np.abs(x.astype(np.float64))))
    return np.sort(order[:k])


def assert_topk_with_memory(x, density):
    """Top-k with error feedback selects the oracle's indices and leaves in the memory
    exactly what it did not send; returns k."""
    k = k_for_density(density, x.size)
    memory = np.zeros(x.size, np.float32)
    p = get_compressor("topk", density=density).compress(x, memory=memory)
    want = oracle_topk(x, k)
    assert np.array_equal(p["indices"], want)
    kept = x.copy()
    kept[want] = 0
    assert np.array_equal(memory, kept)
    return k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 2, 7, 256, 1001, 50_000])
@pytest.mark.parametrize("density", [0.001, 0.01, 0.3, 1.0])
def test_topk_equals_argsort_oracle(dtype, d, density):
    rng = np.random.default_rng(d)
    x = rng.standard_normal(d).astype(dtype)
    comp = get_compressor("topk", density=density)
    p = comp.compress(x)
    k = k_for_density(density, d)
    assert p.count == k
    assert np.array_equal(p["indices"], oracle_topk(x, k))
    assert np.array_equal(p["values"], x[p["indices"]])


@pytest.mark.parametrize("seed", range(5))
def test_topk_ties_go_to_lower_index(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, 5000).astype(np.float32)  # massive ties, +-0 included
    x[rng.integers(0, 5000, 50)] = -0.0
    for density in (0.01, 0.1, 0.5, 0.9):
        p = get_compressor("topk", density=density).compress(x)
        assert np.array_equal(p["indices"], oracle_topk(x, k_for_density(density, x.size)))


@pytest.mark.parametrize("nonzero", [0, 3, 40, 999, 1000, 1001, 20_000, 60_000])
def test_topk_of_a_mostly_zero_vector(nonzero):
    """A vector that is mostly zeros (what a server re-compresses: a sum of sparse payloads)
    takes the positive-scores path of the selection; fewer nonzeros than k fill the rest
    with zeros in index order. With error feedback the memory keeps what was not sent."""
    d, k_density = 100_000, 0.01  # k = 1000
    rng = np.random.default_rng(nonzero)
    x = np.zeros(d, np.float32)
    where = rng.choice(d, nonzero, replace=False)
    x[where] = rng.integers(-4, 5, nonzero)  # ties among the nonzeros too
    x[where[: nonzero // 4]] = rng.standard_normal(nonzero // 4)
    assert_topk_with_memory(x, k_density)


SAMPLED = {
    # the bound read off every 16th score holds ~2k candidates
    "normal": lambda r, d: r.standard_normal(d),
    # every 16th score is huge: the sample's bound leaves fewer than k candidates
    "sample-misleads": lambda r, d: np.where(np.arange(d) % 16 == 0, 1e6, 1.0) * r.standard_normal(d),
    # every 16th score is zero: the bound is 0 and says nothing
    "sample-zeros": lambda r, d: np.where(np.arange(d) % 16 == 0, 0.0, 1.0) * r.standard_normal(d),
    # a handful of values: the bound and the k-th largest sit inside large runs of ties
    "ties-at-bound": lambda r, d: r.integers(-6, 7, d).astype(float),
}


@pytest.mark.parametrize("case", sorted(SAMPLED))
@pytest.mark.parametrize("density", [0.0005, 0.01, 0.2])
def test_topk_candidate_filter_is_exact(monkeypatch, case, density):
    """At s/d <= 1/4 on a large vector the k-th largest is found among the scores above a
    bound read off a strided sample; whether the sample guides or misleads, the selection
    is the argsort oracle's and the memory keeps exactly what was not sent."""
    from hpctrain.compress import topk

    bounds = []
    real = topk._candidate_bound
    monkeypatch.setattr(topk, "_candidate_bound", lambda *a: bounds.append(real(*a)) or bounds[-1])
    d = 1 << 17
    x = SAMPLED[case](np.random.default_rng(len(case)), d).astype(np.float32)
    k = assert_topk_with_memory(x, density)
    assert len(bounds) == 1  # the sampled path was taken
    if case == "normal":  # and it kept at least k candidates, about j (the sample's rank) x 16
        mean = k / topk.SAMPLE_STRIDE
        j = 2 * mean + 4 * np.sqrt(mean) + 2
        assert k <= np.count_nonzero(np.abs(x) >= bounds[0]) <= 1.5 * j * topk.SAMPLE_STRIDE


def test_topk_empty_vector():
    p = get_compressor("topk", density=0.1).compress(np.zeros(0, np.float32))
    assert p.count == 0 and p["indices"].size == 0
    out = np.zeros(0, np.float32)
    get_compressor("topk", density=0.1).decompress(p, out)


DISTS = {
    "normal": lambda r, d: r.standard_normal(d),
    "uniform": lambda r, d: r.uniform(-1, 1, d),
    "laplace": lambda r, d: r.laplace(size=d),
    "cauchy": lambda r, d: r.standard_cauchy(d),
    "sparse": lambda r, d: r.standard_normal(d) * (r.random(d) < 0.05),
    "discrete": lambda r, d: r.integers(-5, 6, d).astype(float),
    "lognormal-scales": lambda r, d: r.standard_normal(d) * np.exp(3 * r.standard_normal(d)),
}


@pytest.mark.parametrize("dist", sorted(DISTS))
@pytest.mark.parametrize("density", [0.001, 0.01, 0.05])
def test_approx_topk_count_in_band(dist, density):
    d = 200_000
    x = DISTS[dist](np.random.default_rng(3), d).astype(np.float32)
    comp = get_compressor("approx-topk", density=density)
    k = k_for_density(density, d)
    lo, hi = count_band(k)
    for step in range(3):
        p = comp.compress(x, step=step, rank=1)
        assert lo <= p.count <= hi, (dist, comp.last_info)
        idx = p["indices"]
        assert np.all(np.diff(idx) > 0)
        if not comp.last_info["fallback"]:
            # every sent |x| >= every unsent |x| (a threshold selection)
            rest = np.ones(d, bool)
            rest[idx] = False
            assert np.abs(x[idx]).min() >= np.abs(x[rest]).max()
        else:
            assert np.array_equal(idx, oracle_topk(x, k))


def test_approx_topk_deterministic_per_step_and_rank():
    x = np.random.default_rng(0).standard_normal(100_000)
    c = get_compressor("approx-topk", density=0.01, seed=4)
    a, b = c.compress(x, step=5, rank=2), c.compress(x, step=5, rank=2)
    assert np.array_equal(a["indices"], b["indices"])


def test_band_edges():
    assert count_band(100) == (80, 130)
    assert count_band(1) == (1, 1)
    assert count_band(0) == (0, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_selects_ge(dtype):
    x = np.random.default_rng(1).standard_normal(10_001).astype(dtype)
    x[:3] = [0.5, -0.5, np.nextafter(dtype(0.5), dtype(0))]
    p = get_compressor("threshold", threshold=0.5).compress(x)
    assert np.array_equal(p["indices"], np.flatnonzero(np.abs(x) >= dtype(0.5)))
    assert 0 in p["indices"] and 1 in p["indices"] and 2 not in p["indices"]


@pytest.mark.parametrize("name", ["topk", "approx-topk", "threshold", "randk"])
def test_sparse_decompress_and_scatter_add(name):
    x = np.random.default_rng(2).standard_normal(5000)
    params = {"threshold": 1.0} if name == "threshold" else {"density": 0.05}
    comp = get_compressor(name, **params)
    p = comp.compress(x, step=1)
    out = np.full_like(x, 7.0)
    comp.decompress(p, out)
    nz = np.flatnonzero(out)
    assert np.array_equal(out[nz], x[nz]) and nz.size == p.count
    acc = np.ones_like(x)
    comp.decompress_add(p, acc)
    assert np.array_equal(acc, 1.0 + out)
