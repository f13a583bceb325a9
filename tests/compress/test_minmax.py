"""Stochastic b-bit quantization: unbiased (Monte-Carlo, 5 sigma), variance within the
survey's bound delta^2/4 per coordinate, codes are neighbouring knobs; sign + scale."""

import math

import numpy as np
import pytest

from hpctrain.compress import get_compressor
from hpctrain.compress.minmax import bucket_stats, knobs
from hpctrain.errors import ConfigError

DRAWS = 4000


def draws(comp, x):
    out = np.empty((DRAWS, x.size), x.dtype)
    for s in range(DRAWS):
        comp.decompress(comp.compress(x, step=s, rank=1), out[s])
    return out


def knob_params(x, comp):
    s0, s1 = bucket_stats(x, comp.bucket_size, comp.scaling)
    lo, delta = knobs(comp.scaling, s0, s1, comp.levels)
    n = x.size
    lo_e = np.repeat(lo, comp.bucket_size)[:n].astype(np.float64)
    de = np.repeat(delta, comp.bucket_size)[:n].astype(np.float64)
    t = np.where(de > 0, (x - lo_e) / np.where(de > 0, de, 1), 0)
    return lo_e, de, t - np.floor(t)


@pytest.mark.parametrize("scaling", ["minmax", "norm"])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_unbiased_and_variance_bound(bits, scaling):
    rng = np.random.default_rng(bits)
    x = rng.standard_normal(48) * np.exp(rng.standard_normal(48))
    comp = get_compressor("minmax", bits=bits, bucket_size=20, scaling=scaling, seed=9)
    q = draws(comp, x)
    lo_e, delta, frac = knob_params(x, comp)
    # each draw is one of the two neighbouring knobs
    c = np.round((q - lo_e) / np.where(delta > 0, delta, 1))
    base = np.floor((x - lo_e) / np.where(delta > 0, delta, 1) + 1e-12)
    assert np.all((c == base) | (c == base + 1) | (delta == 0))
    # unbiased: Monte-Carlo mean within 5 sigma (sigma = delta sqrt(f(1-f)/N)) + rounding slack
    sigma = delta * np.sqrt(frac * (1 - frac) / DRAWS)
    slack = 1e-12 * (np.abs(x) + np.abs(lo_e) + delta)
    assert np.all(np.abs(q.mean(0) - x) <= 5 * sigma + slack)
    # variance: per coordinate delta^2 f(1-f) <= delta^2/4 (survey); empirical within 5 sigma
    emp = q.var(0)
    true = delta**2 * frac * (1 - frac)
    assert np.all(emp <= delta**2 / 4 * (1 + 5 / math.sqrt(DRAWS)) + slack)
    sd = np.sqrt(np.sum((delta**2 * np.abs(1 - 2 * frac)) ** 2 * frac * (1 - frac) / DRAWS)) + 1e-300
    assert abs(emp.sum() - true.sum()) <= 5 * sd + 4 * true.sum() / DRAWS + slack.sum()


def test_float32_quantizer_is_unbiased():
    x = np.random.default_rng(0).uniform(-2, 3, 40).astype(np.float32)
    comp = get_compressor("minmax", bits=2, bucket_size=40)
    q = draws(comp, x).astype(np.float64)
    lo_e, delta, frac = knob_params(x.astype(np.float64), comp)
    sigma = delta * np.sqrt(frac * (1 - frac) / DRAWS)
    assert np.all(np.abs(q.mean(0) - x) <= 5 * sigma + 1e-6)


def test_different_ranks_draw_independently():
    x = np.linspace(-1, 1, 1000)
    comp = get_compressor("minmax", bits=1)
    a, b = comp.compress(x, step=0, rank=0), comp.compress(x, step=0, rank=1)
    assert not np.array_equal(a["codes"], b["codes"])
    assert np.array_equal(a["codes"], comp.compress(x, step=0, rank=0)["codes"])


def test_constant_and_zero_buckets_exact():
    for scaling in ("minmax", "norm"):
        comp = get_compressor("minmax", bits=4, bucket_size=8, scaling=scaling)
        x = np.array([3.0] * 8 + [0.0] * 8 + [-1.5] * 3)
        out = np.empty_like(x)
        comp.decompress(comp.compress(x), out)
        if scaling == "minmax":
            assert np.array_equal(out, x)
        else:
            assert np.array_equal(out[8:16], x[8:16])


def lane_order_sum(vals):
    """A bucket's float64 sum in the documented order, written out element by element:
    zero-pad to a multiple of 64, 64 interleaved lanes, lane k into group k % 8, groups 0..7."""
    padded = list(vals) + [0.0] * (-len(vals) % 64)
    lanes = []
    for k in range(64):
        acc = padded[k]
        for j in range(k + 64, len(padded), 64):
            acc = acc + padded[j]
        lanes.append(acc)
    groups = []
    for g in range(8):
        acc = lanes[g]
        for k in range(g + 8, 64, 8):
            acc = acc + lanes[k]
        groups.append(acc)
    acc = groups[0]
    for g in groups[1:]:
        acc = acc + g
    return acc


@pytest.mark.parametrize("n,bucket", [(1030, 512), (5000, 100), (700, 1000), (1, 1), (200, 7), (4096, 4096),
                                      (70_001, 512)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["norm", "mean-abs"])
def test_bucket_sums_run_in_the_documented_lane_order(n, bucket, dtype, kind):
    # values spread over 40 decades: float64 sums of them round, so another order gives other bits
    rng = np.random.default_rng(n + bucket)
    x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-20, 20, n)).astype(dtype)
    got, _ = bucket_stats(x, bucket, kind)
    want = []
    for a in range(0, n, bucket):
        vals = [float(v) * float(v) if kind == "norm" else abs(float(v)) for v in x[a:a + bucket]]
        total = lane_order_sum(vals)
        want.append(math.sqrt(total) if kind == "norm" else total / len(vals))
    assert np.array_equal(got, np.array(want).astype(dtype))
    # and the order matters on such data: the plain index-order sum differs somewhere
    if dtype is np.float64 and n >= 5000:
        seq = [sum(float(v) * float(v) if kind == "norm" else abs(float(v)) for v in x[a:a + bucket])
               for a in range(0, n, bucket)]
        seq = np.sqrt(seq) if kind == "norm" else np.array(seq) / np.diff(np.r_[0:n:bucket, n])
        assert not np.array_equal(got, seq)


def test_wire_size_formula():
    d, bucket = 10_001, 512
    nb = math.ceil(d / bucket)
    for bits in (1, 2, 4, 8):
        p = get_compressor("minmax", bits=bits, bucket_size=bucket).compress(np.ones(d, np.float32))
        assert p.nbytes == 32 + math.ceil(d * bits / 8) + nb * 2 * 4
        p = get_compressor("minmax", bits=bits, bucket_size=bucket, scaling="norm").compress(np.ones(d))
        assert p.nbytes == 32 + math.ceil(d * bits / 8) + nb * 8


@pytest.mark.parametrize("params", [{"bits": 3}, {"bits": 0}, {"bits": 16}, {"bucket_size": 0},
                                    {"scaling": "l3"}, {"bits": 4.5}])
def test_invalid_parameters(params):
    with pytest.raises(ConfigError):
        get_compressor("minmax", **params)


def test_sign_scale():
    x = np.array([1.0, -2.0, 0.0, -0.0, 3.0, -4.0, 0.5])
    comp = get_compressor("sign", bucket_size=4)
    p = comp.compress(x)
    out = np.empty_like(x)
    comp.decompress(p, out)
    s1, s2 = (1 + 2 + 0 + 0) / 4, (3 + 4 + 0.5) / 3
    assert out.tolist() == [s1, -s1, s1, s1, s2, -s2, s2]
    assert p.nbytes == 32 + 1 + 2 * 8


@pytest.mark.parametrize("kind", ["norm", "mean-abs"])
@pytest.mark.parametrize("n,bucket", [(1, 512), (511, 512), (513, 512), (200_003, 512), (70_001, 100),
                                      (65_536 + 512, 512), (100_000, 1 << 20)])
def test_bucket_sums_in_index_order(kind, n, bucket):
    """Piecewise (column-wise) bucket sums equal a float64 running sum per bucket."""
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * np.exp(3 * rng.standard_normal(n))).astype(np.float32)
    v = x.astype(np.float64)
    v = v * v if kind == "norm" else np.abs(v)
    sums = np.array([np.cumsum(v[i:i + bucket])[-1] for i in range(0, n, bucket)])
    counts = np.array([min(bucket, n - i) for i in range(0, n, bucket)], dtype=np.float64)
    want = (np.sqrt(sums) if kind == "norm" else sums / counts).astype(np.float32)
    got, _ = bucket_stats(x, bucket, kind)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
