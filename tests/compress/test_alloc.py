"""No temporary of the dense size per call: every registered operator, on NumPy, after a
warm-up call, runs compress + decompress (and decompress_add, and compress with error
feedback) without allocating d float32 elements' worth of bytes (4 d) beyond the payload
it returns (tracemalloc sees NumPy's buffers). The registry is iterated, so a new operator
is covered without editing this test."""

import tracemalloc

import numpy as np
import pytest

from hpctrain.compress import COMPRESSORS, get_compressor

D = 200_003  # not a multiple of 8 or of a bucket: the tails run too
LIMIT = 4 * D  # bytes of d float32 elements (index arrays of the k sent coordinates stay below)


def _payload_bytes(p):
    return sum(a.nbytes for a in p.arrays.values())


def _peak(fn):
    """(extra peak bytes while ``fn`` runs, its result)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        res = fn()
        return tracemalloc.get_traced_memory()[1] - base, res
    finally:
        tracemalloc.stop()


def _calls(name, memory):
    comp = get_compressor(name, **COMPRESSORS[name].bench_params)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(D).astype(np.float32)
    u = (rng.standard_normal(D) * 0.1).astype(np.float32) if memory else None
    out = np.zeros(D, np.float32)
    state = {}

    def one(step):
        p = comp.compress(x, step=step, rank=1, memory=u)
        comp.decompress(p, out)
        comp.decompress_add(p, out)
        state["p"] = p
        return p

    return one, state


@pytest.mark.parametrize("memory", [False, True], ids=["plain", "error-feedback"])
@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_no_dense_temporaries(name, memory):
    if COMPRESSORS[name].communicates or COMPRESSORS[name].layerwise:
        pytest.skip("driven by its own algorithm")
    one, state = _calls(name, memory)
    one(0)  # warm-up: scratch is allocated here
    one(1)
    state.clear()
    extra, p = _peak(lambda: one(2))
    over = extra - _payload_bytes(p)
    assert over < LIMIT, f"{name}: {over} bytes beyond the payload's {_payload_bytes(p)} (limit {LIMIT})"


def test_the_check_can_fail():
    """A dense temporary is seen."""
    x = np.ones(D, np.float32)
    extra, _ = _peak(lambda: float((x * 2).sum()))
    assert extra >= 4 * D


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_payloads_are_not_scratch(name):
    """A payload stays valid while the operator compresses the next vector (its arrays
    are never the operator's reused buffers), and decompress_add adds exactly what
    decompress writes."""
    if COMPRESSORS[name].communicates or COMPRESSORS[name].layerwise:
        pytest.skip("driven by its own algorithm")
    comp = get_compressor(name, **COMPRESSORS[name].bench_params)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 10_001)).astype(np.float32)
    p = comp.compress(x, step=3, rank=1)
    saved = {k: a.copy() for k, a in p.arrays.items()}
    ref = comp.decompress(p, np.empty_like(x)).copy()
    comp.compress(y, step=4, rank=1)
    comp.decompress(comp.compress(y, step=4, rank=1), np.empty_like(y))
    for k, a in p.arrays.items():
        assert np.array_equal(a, saved[k]), f"{name}: payload array {k!r} changed"
    acc = y.copy()
    comp.decompress_add(p, acc)
    assert np.array_equal(acc, y + ref)
