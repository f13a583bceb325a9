"""QSGD (hpctrain.compress.qsgd): unbiasedness and the variance bound by Monte-Carlo with
stated bounds, the exact expected error against the bound, the code layout, and the
difference from the survey's min/max quantizer."""

import math

import numpy as np
import pytest

from hpctrain.compress import QSGD, MinMax, get_compressor
from hpctrain.compress.qsgd import levels_for_bits, variance_bound
from hpctrain.errors import ConfigError

M = 2000  # Monte-Carlo trials (independent counter-RNG streams: one step each)
DELTA = 1e-6  # allowed failure probability of each Hoeffding bound below


def _vector(d, seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.standard_normal(d)
    if kind == "heavy":
        return rng.standard_normal(d) * np.exp(2 * rng.standard_normal(d))
    return np.where(rng.random(d) < 0.1, rng.standard_normal(d), 0.0)  # sparse


def _trials(comp, x):
    out = np.empty((M, x.size))
    for t in range(M):
        comp.decompress(comp.compress(x, step=t, rank=0), out[t])
    return out


def _exact_error(x, s):
    """E||Q(x) - x||^2 for one bucket, from the rounding probabilities (independent oracle)."""
    nrm = np.sqrt(np.sum(x * x))
    r = np.abs(x) / nrm * s
    p = r - np.floor(r)
    return float(np.sum((nrm / s) ** 2 * p * (1 - p)))


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("kind", ["normal", "heavy", "sparse"])
def test_unbiased_and_within_variance_bound(bits, kind):
    d = 256
    s = levels_for_bits(bits)
    x = _vector(d, bits, kind)
    comp = get_compressor("qsgd", bits=bits, bucket_size=d, seed=3)
    q = _trials(comp, x)
    nrm2 = float(np.sum(x * x))
    # unbiased: each Q_i takes one of two adjacent levels nrm/s apart, so by Hoeffding and a
    # union bound over d coordinates, |mean_i - x_i| <= nrm/s * sqrt(ln(2d/DELTA) / (2M))
    tol = math.sqrt(nrm2) / s * math.sqrt(math.log(2 * d / DELTA) / (2 * M))
    assert np.max(np.abs(q.mean(axis=0) - x)) <= tol
    # variance: the exact E||Q-x||^2 obeys the paper's bound, and the Monte-Carlo mean of
    # ||Q-x||^2 (each trial in [0, d (nrm/s)^2 / 4 ... ] bounded by sum of squared gaps)
    # is within Hoeffding's bound of it
    exact = _exact_error(x, s)
    bound = variance_bound(d, s) * nrm2
    assert exact <= bound
    err = np.sum((q - x) ** 2, axis=1)
    span = d * nrm2 / s**2  # ||Q - x||^2 <= sum_i (nrm/s)^2
    assert abs(err.mean() - exact) <= span * math.sqrt(math.log(2 / DELTA) / (2 * M))
    assert err.mean() <= bound + span * math.sqrt(math.log(2 / DELTA) / (2 * M))


def test_error_far_below_the_survey_norm_quantizer():
    """The figures behind the rename: at one level (b = 2 QSGD, s = 1) the relative error is
    about sqrt(d) at most; the survey's norm-scaled 1-bit quantizer (no zero level) is far worse."""
    d = 512
    x = np.random.default_rng(0).standard_normal(d)
    nrm2 = float(np.sum(x * x))
    qsgd = _exact_error(x, 1) / nrm2
    assert qsgd <= math.sqrt(d)
    mm = MinMax(bits=1, bucket_size=d, scaling="norm")
    out = np.empty((200, d))
    for t in range(200):
        mm.decompress(mm.compress(x, step=t), out[t])
    survey = float(np.mean(np.sum((out - x) ** 2, axis=1))) / nrm2
    assert survey > 4 * qsgd


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_codes_levels_and_wire(dtype):
    x = np.array([3.0, -4.0, 0.0, -0.0], dtype=dtype)  # norm 5
    comp = QSGD(bits=4, bucket_size=4)  # s = 7
    p = comp.compress(x, step=1)
    from hpctrain.compress.pack import unpack_bits

    codes = unpack_bits(p["codes"], 4, 4)
    level, sign = codes & 7, codes >> 3
    assert list(sign) == [0, 1, 0, 0]  # -0.0 counts as +
    assert level[0] in (4, 5) and level[1] in (5, 6) and level[2] == level[3] == 0  # 3/5*7 = 4.2, 4/5*7 = 5.6
    assert p["norms"].dtype == dtype and p["norms"][0] == 5
    out = np.empty(4, dtype)
    comp.decompress(p, out)
    assert np.allclose(np.abs(out[:2]), 5 * level[:2] / 7) and out[2] == 0
    from hpctrain.compress import HEADER_BYTES

    assert p.nbytes == HEADER_BYTES + 2 + np.dtype(dtype).itemsize


def test_zero_and_empty_buckets():
    comp = QSGD(bits=2, bucket_size=3)
    out = np.ones(7)
    comp.decompress(comp.compress(np.array([0.0, 0, 0, 1, -1, 0, 2]), step=0), out)
    assert out[0] == out[1] == out[2] == 0
    comp.decompress(comp.compress(np.zeros(0)), np.zeros(0))


@pytest.mark.parametrize("bits", [1, 3, 16])
def test_bad_bits(bits):
    with pytest.raises(ConfigError, match="bits"):
        get_compressor("qsgd", bits=bits)


def test_levels_for_bits():
    assert [levels_for_bits(b) for b in (2, 4, 8)] == [1, 7, 127]
