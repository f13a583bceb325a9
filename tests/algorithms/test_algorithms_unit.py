"""Single-process checks of the algorithms: memory conservation, asgd staleness, config
checks, mixing matrices, sparsity warm-up, registry table."""

import numpy as np
import pytest

import hpctrain.algorithms as algorithms
from hpctrain.algorithms import ALGORITHMS, AlgoContext, get_algorithm
from hpctrain.algorithms._common import density_at, mixing_matrix
from hpctrain.collectives import get_allreduce
from hpctrain.comm import world
from hpctrain.config import ALGO_NAMES, load_config
from hpctrain.errors import ConfigError

D = 500


def _make(algo, steps_per_epoch=10, **ov):
    cfg = load_config(None, {"algo": algo, "dtype": "float64", **ov})
    params = np.zeros(D)
    # one 20 x 25 weight matrix: the parameter shapes PowerSGD needs (the others ignore them)
    ctx = AlgoContext(cfg, world(), get_allreduce("ring"), D, steps_per_epoch, np, layers=[("w", (20, 25), 0)])
    return get_algorithm(algo)(ctx, params), params


def _grads(steps, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.normal(size=D))  # heterogeneous magnitudes: top-k has to choose
    return [rng.normal(size=D) * scale for _ in range(steps)]


CONSERVING = [
    ("mdsgd", {"compressor": "topk", "density": 0.02}),
    ("mdsgd", {"compressor": "randk", "density": 0.1}),
    ("mdsgd", {"compressor": "approx-topk", "density": 0.05}),
    ("dgc", {"compressor": "topk", "density": 0.02, "sparsity_warmup_epochs": 2.0}),
    ("gmc", {"compressor": "topk", "density": 0.02}),
    ("gmc", {"compressor": "randk", "density": 0.02, "momentum": 0.5}),
    ("ecsgd", {"compressor": "sign"}),
    ("ecsgd", {"compressor": "qsgd", "bits": 2}),
    ("doublesqueeze", {"compressor": "sign"}),
    ("doublesqueeze", {"compressor": "topk", "density": 0.05, "aggregation": "ps"}),
]


class SpyCompressor:
    """Wraps an algorithm's compressor and records every compression with memory:
    (input, memory before, what was sent, memory after)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __setattr__(self, name, value):
        if name in ("inner", "calls"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.inner, name, value)

    def compress(self, x, step=0, rank=0, memory=None):
        before = (x.copy(), None if memory is None else memory.copy())
        payload = self.inner.compress(x, step=step, rank=rank, memory=memory)
        if memory is not None:
            sent = self.inner.decompress(payload, np.zeros_like(x))
            self.calls.append((*before, sent, memory.copy()))
        return payload


@pytest.mark.parametrize("algo,ov", CONSERVING, ids=[f"{a}-{o['compressor']}" for a, o in CONSERVING])
def test_memory_conservation(algo, ov):
    """g + u_old == sent + u_new for every compression with memory (workers' and a
    server's), on every step (float64), and memory is really used."""
    alg, params = _make(algo, **ov)
    alg.comp = spy = SpyCompressor(alg.comp)
    used = False
    for t, g in enumerate(_grads(12)):
        spy.calls.clear()
        alg.step(params, g.copy(), 0.1, t)
        assert len(spy.calls) == (2 if algo == "doublesqueeze" else 1)
        for x, mem_old, sent, mem_new in spy.calls:
            np.testing.assert_allclose(x + mem_old, sent + mem_new, rtol=0, atol=1e-12 * (1 + np.abs(x).max()))
            used |= bool(np.abs(mem_new).max() > 0)
    assert used


def test_sparse_count_and_sparsity_warmup():
    alg, params = _make("dgc", compressor="topk", density=0.01, sparsity_warmup_epochs=2.0, steps_per_epoch=3)
    counts = []
    for t, g in enumerate(_grads(9)):
        alg.step(params, g.copy(), 0.1, t)
        counts.append(alg.pop_stats()["floats_up"] / 2)  # (index, value) pairs count 2
    assert counts[:3] == [125] * 3  # epoch 0: density 0.25
    assert counts[3:6] == [25] * 3  # epoch 1: 0.25 * (0.01/0.25)^(1/2) = 0.05
    assert counts[6:] == [5] * 3  # target density


def test_density_schedule():
    cfg = load_config(None, {"density": 0.001, "sparsity_warmup_epochs": 4})
    ds = [density_at(cfg, e * 10, 10) for e in range(6)]
    assert ds[0] == 0.25 and ds[4] == ds[5] == 0.001
    assert all(a > b for a, b in zip(ds[:4], ds[1:5]))
    assert density_at(load_config(None, {"density": 0.01}), 0, 10) == 0.01


def test_asgd_rejects_gradients_older_than_staleness():
    """With the pull schedule stretched to tau + 2, gradients of age tau + 1 are rejected
    and no applied gradient is older than tau."""
    alg, params = _make("asgd", staleness=2)
    alg.pull_period = 4
    for t, g in enumerate(_grads(20)):
        alg.step(params, g.copy(), 0.01, t)
    assert alg.rejected == 5  # ages cycle 0,1,2,3 after the first pull: every 4th is too old
    assert alg.max_applied_staleness == 2


def test_asgd_normal_schedule_reaches_but_never_exceeds_tau():
    alg, params = _make("asgd", staleness=3)
    for t, g in enumerate(_grads(18)):  # the last pull of this rank was after step 15
        alg.step(params, g.copy(), 0.01, t)
    assert alg.rejected == 0 and alg.max_applied_staleness == 3
    assert not np.array_equal(params, alg.server_model)  # the worker copy is stale


@pytest.mark.parametrize("ov,msg", [
    ({"density": 0.0}, "density must be in (0, 1]"),
    ({"density": 1.5}, "density must be in (0, 1]"),
    ({"bits": 3}, "bits must be one of 1, 2, 4, 8"),
    ({"sync_period": 0}, "sync_period must be > 0"),
    ({"algo": "csgd", "compressor": "topk"}, "algo csgd needs a compressor that is unbiased or unbiased_scaled; "
                                              "topk is not (it takes compressor minmax, qsgd, randk)"),
    ({"algo": "gmc", "aggregation": "ring"}, "algo gmc supports aggregation allreduce, ps"),
    ({"algo": "dsgd", "aggregation": "ps"}, "algo dsgd supports aggregation allreduce"),
    ({"topology": "line"}, "unknown topology 'line'"),
    ({"algo": "nope"}, "unknown algo 'nope'"),
])
def test_config_errors_are_one_clear_line(ov, msg):
    with pytest.raises(ConfigError) as e:
        load_config(None, ov)
    assert msg in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("name", ["ring", "complete", "torus", "star"])
def test_mixing_matrices_are_doubly_stochastic(name, n):
    W = mixing_matrix(name, n)
    assert W.shape == (n, n) and (W >= 0).all()
    np.testing.assert_allclose(W.sum(0), 1)
    np.testing.assert_allclose(W.sum(1), 1)
    np.testing.assert_allclose(W, W.T)
    if name == "ring" and n >= 4:
        assert W[0, 0] == W[0, 1] == W[0, n - 1] == pytest.approx(1 / 3) and np.count_nonzero(W[0]) == 3


def test_registry_config_and_docstring_agree():
    assert set(ALGORITHMS) == set(ALGO_NAMES)
    for name, cls in ALGORITHMS.items():
        assert f"``{name}``" in algorithms.__doc__
        assert set(cls.state_policies) <= set(cls.state_names)


def test_every_algorithm_state_round_trips():
    """state_dict holds every carried array; load_state_dict restores it in place."""
    for name in ALGORITHMS:
        ov = {"compressor": {"csgd": "qsgd", "ecsgd": "sign", "doublesqueeze": "sign"}.get(name, "topk")}
        alg, params = _make(name, **ov)
        for t, g in enumerate(_grads(3)):
            alg.step(params, g.copy(), 0.05, t)
        state = {k: np.array(v, copy=True) for k, v in alg.state_dict().items()}
        fresh, _ = _make(name, **ov)
        fresh.load_state_dict(state)
        for k, v in fresh.state_dict().items():
            assert np.array_equal(v, state[k]), (name, k)
