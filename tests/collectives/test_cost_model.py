"""The alpha-beta cost model, the fit, auto's choice and the staged transport (no MPI job)."""

import json

import numpy as np
import pytest

from hpctrain.bench.fit import fit_line, fit_segments
from hpctrain.collectives import cost
from hpctrain.comm.transport import CudaAwareTransport, HostTransport, StagedTransport, get_transport
from hpctrain.errors import ConfigError

FIT = {"alpha": 5e-6, "beta": 1e-10, "gamma": 2e-11}


def test_survey_formulas():
    n, S = 4, 1 << 20
    a, b = FIT["alpha"], FIT["beta"]
    ring = cost.predict("ring", n, S, {"alpha": a, "beta": b})
    assert ring == pytest.approx(2 * (n - 1) * a + 2 * (n - 1) / n * S * b)
    ps = cost.predict("ps", n, S, {"alpha": a, "beta": b})
    assert ps == pytest.approx(2 * (n - 1) * (a + S * b))
    assert cost.predict("ring-unpartitioned", n, S, FIT) == cost.predict("ps", n, S, FIT)
    assert cost.predict("multi-ps", n, S, FIT) == cost.predict("ring", n, S, FIT)
    assert cost.predict("recursive", 8, S, {"alpha": a, "beta": b}) == pytest.approx(3 * (a + S * b))
    assert cost.predict("mpi", n, S, FIT) is None
    # ring beats the single PS by a factor that grows with S (toward n)
    r1 = cost.predict("ps", n, 1 << 10, FIT) / cost.predict("ring", n, 1 << 10, FIT)
    r2 = cost.predict("ps", n, 1 << 26, FIT) / cost.predict("ring", n, 1 << 26, FIT)
    assert 1 <= r1 < r2


def test_crossover_recursive_vs_ring():
    s = cost.crossover("recursive", "ring", 4, FIT)
    assert s is not None and s > 0
    assert cost.predict("recursive", 4, s / 2, FIT) < cost.predict("ring", 4, s / 2, FIT)
    assert cost.predict("recursive", 4, s * 2, FIT) > cost.predict("ring", 4, s * 2, FIT)


def test_segments_pick_the_link_for_the_message_size():
    fit = {"alpha": 1e-5, "beta": 1e-10, "segments": [
        {"alpha": 1e-6, "beta": 1e-9, "max_bytes": 65536}, {"alpha": 1e-5, "beta": 1e-10, "max_bytes": None}]}
    assert cost.link(fit, 100) == (1e-6, 1e-9)
    assert cost.link(fit, 1 << 20) == (1e-5, 1e-10)


def test_fit_recovers_a_line_and_a_break():
    S = np.array([2 ** k for k in range(10, 25)], float)
    t = 3e-6 + S * 2e-10
    a, b, r2 = fit_line(S, t)
    assert a == pytest.approx(3e-6, rel=1e-6) and b == pytest.approx(2e-10, rel=1e-6) and r2 > 0.9999
    t2 = np.where(S < 65536, 2e-6 + S * 5e-10, 20e-6 + S * 1e-10)
    segs, r2 = fit_segments(S, t2)
    assert len(segs) == 2 and segs[0]["max_bytes"] == 65536 and r2 > 0.999
    assert segs[1]["beta"] == pytest.approx(1e-10, rel=1e-6)


def test_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRAIN_CACHE", str(tmp_path))
    assert cost.load_fit() is None
    path = cost.save_fit(dict(FIT))
    assert path == str(tmp_path / "alpha_beta.json")
    assert cost.load_fit()["alpha"] == FIT["alpha"]
    (tmp_path / "alpha_beta.json").write_text("{not json")
    assert cost.load_fit() is None
    json.dumps(FIT)


def test_staged_transport_copies_through_a_reused_pool():
    tr = StagedTransport(stage_host=True, pinned=False)
    x = np.arange(10.0)
    v = tr.send_view(x)
    assert v is not x and np.array_equal(v, x) and not np.shares_memory(v, x)
    tr.release(v)
    y = np.zeros(10)
    rv = tr.recv_view(y)
    rv[:] = 7
    tr.finish_recv(y, rv)
    tr.release(rv)
    assert (y == 7).all() and tr.allocations == 1  # the second view reused the first buffer
    a, b = tr.send_view(x), tr.send_view(x)  # two outstanding requests: two buffers
    assert not np.shares_memory(a, b) and tr.allocations == 2
    tr.release(a), tr.release(b)
    assert not tr._busy and len(tr._free) == 2


def test_host_arrays_pass_through_gpu_transports():
    x = np.ones(3)
    for tr in (HostTransport(), CudaAwareTransport(), StagedTransport()):
        assert tr.send_view(x) is x and tr.recv_view(x) is x


def test_transport_auto_and_unknown(monkeypatch):
    monkeypatch.setenv("HPCTRAIN_CUDA_AWARE", "1")
    assert get_transport("auto").name == "cuda-aware"
    monkeypatch.setenv("HPCTRAIN_CUDA_AWARE", "0")
    assert get_transport("auto").name == "staged"
    with pytest.raises(ConfigError, match="unknown transport"):
        get_transport("carrier-pigeon")
