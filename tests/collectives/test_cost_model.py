"""The alpha-beta cost model, the fit, auto's choice and the staged transport (no MPI job)."""

import json

import numpy as np
import pytest

from hpctrain.bench import fit as fit_module
from hpctrain.bench.fit import KEYS, _settled, accuracy, fit_line, fit_segments, interpolate_segments, time_fresh
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
    assert ps == pytest.approx(2 * (n - 1) * (a + S * b) + (n - 1) * a)  # + each worker's turn
    unpartitioned = cost.predict("ring-unpartitioned", n, S, {"alpha": a, "beta": b})
    assert unpartitioned == pytest.approx(2 * (n - 1) * (a + S * b))  # the survey's, turns apart
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


def _line(segs, s):
    return next(g["alpha"] + g["beta"] * s for g in segs if g["max_bytes"] is None or s < g["max_bytes"])


def test_fit_segments_choose_the_number_of_lines():
    S = np.array([2 ** k for k in range(10, 27)], float)
    # three regimes (eager, in cache, out of cache): three lines, breaks where they change
    t3 = np.select([S < 8192, S < 1 << 22], [2e-6 + S * 1e-10, 5e-6 + S * 1.5e-10], 80e-6 + S * 8e-11)
    segs, r2 = fit_segments(S, t3)
    assert [g["max_bytes"] for g in segs] == [8192, 1 << 22, None] and r2 > 0.9999
    # one line with +-3% deterministic wiggle: no extra line explains it
    wiggle = 1 + 0.03 * np.sin(np.arange(len(S)) * 2.1)
    segs, r2 = fit_segments(S, (4e-6 + S * 1e-10) * wiggle)
    assert len(segs) == 1 and segs[0]["beta"] == pytest.approx(1e-10, rel=0.05)


def test_only_the_first_line_is_a_latency():
    # a convex stretch (out of cache): its line crosses zero below its range
    S = np.array([16, 32, 64], float) * 2**20
    t = np.array([1.2e-3, 2.9e-3, 6.0e-3])
    a, b, _ = fit_line(S, t, latency=False)
    assert a < 0 and np.abs((a + b * S) / t - 1).max() < 0.05
    a0, b0, _ = fit_line(S, t)  # as a latency it is clipped to 0: a worse line
    assert a0 == 0.0 and np.abs((a0 + b0 * S) / t - 1).max() > np.abs((a + b * S) / t - 1).max()


def test_rounds_continue_while_a_median_moves():
    def rnd(x, ring=3.0):
        return {**{k: [1.0, 2.0] for k in KEYS}, "oneway": [x, 2.0], "algos": {"ring": [ring, 4.0]}}

    flat = [rnd(1.0) for _ in range(6)]
    assert _settled(flat) and not _settled(flat[:5])  # needs more rounds than the window
    assert _settled(flat + [rnd(0.5)])  # one outlier round does not move a median
    assert not _settled(flat + [rnd(0.8)] * 6)  # a new state for 6 rounds: the one-way median moves 10%
    assert _settled(flat + [rnd(0.99)] * 6)  # 0.5%: within the 3% tolerance
    assert not _settled(flat + [rnd(1.0, ring=2.5)] * 6)  # a collective's time counts as much as a primitive's


def test_accuracy_counts_sizes_within_tolerance():
    rows = [{"algo": "ring", "time_us": m, "fastest_us": 100.0, "pred_us": p}
            for p, m in ((88.0, 110.0), (181.5, 150.0), (100.0, 100.0))]
    rows.append({"algo": "ps", "time_us": 10.0, "fastest_us": 10.0, "pred_us": 5.0})
    acc = accuracy(rows)
    assert acc["ring"] == pytest.approx({"min_ratio": 0.8, "max_ratio": 1.21, "within": 2, "rows": 3, "drift": 1.1})
    assert acc["ps"]["within"] == 0 and acc["ps"]["drift"] == 1.0
    # the second view compares the fastest rounds' model with the fastest rounds
    for r, pf in zip(rows, (110.0, 150.0, 100.0, 9.0)):
        r["pred_fastest_us"] = pf
    fast = accuracy(rows, "pred_fastest_us", "fastest_us")
    assert fast["ring"]["within"] == 2 and fast["ring"]["min_ratio"] == 1.0 and fast["ring"]["max_ratio"] == 1.5
    assert fast["ps"]["within"] == 1 and fast["ps"]["min_ratio"] == 0.9


def test_interpolate_segments_is_the_measured_table():
    S = [1024, 4096, 65536]
    t = [1e-6, 5e-6, 3e-6]  # not monotone: a table keeps what was measured
    segs = interpolate_segments(S, t)
    assert [_line(segs, s) for s in S] == pytest.approx(t, rel=1e-12)
    assert _line(segs, 2560) == pytest.approx(3e-6)  # half-way between the first two
    assert _line(segs, 512) == pytest.approx(1e-6 - 512 * 4e-6 / 3072)  # first segment extended
    assert interpolate_segments([8], [2e-6]) == [{"alpha": 2e-6, "beta": 0.0, "min_bytes": 8, "max_bytes": None}]


# a fit whose primitives all differ, so each algorithm's formula shows which it uses
RICH = {
    "alpha": 2e-6, "beta": 1e-10,
    "oneway-sent": {"segments": [{"alpha": 4e-6, "beta": 2e-10, "max_bytes": None}]},
    "exchange": {"segments": [{"alpha": 3e-6, "beta": 3e-10, "max_bytes": None}]},
    "exchange-sent": {"segments": [{"alpha": 6e-6, "beta": 5e-10, "max_bytes": None}]},
    "reduce": {"segments": [{"alpha": 5e-7, "beta": 2e-11, "max_bytes": None}]},
    "reduce-sent": {"segments": [{"alpha": 7e-7, "beta": 9e-11, "max_bytes": None}]},
    "overhead": {"ring": 4e-6, "recursive": 1e-6},
}


def test_each_step_is_priced_by_its_own_primitive():
    S = 1 << 20
    one = lambda m: 2e-6 + m * 1e-10  # noqa: E731
    one_sent = lambda m: 4e-6 + m * 2e-10  # noqa: E731
    ex = lambda m: 3e-6 + m * 3e-10  # noqa: E731
    ex_sent = lambda m: 6e-6 + m * 5e-10  # noqa: E731
    red = lambda m: 5e-7 + m * 2e-11  # noqa: E731
    sent = lambda m: 7e-7 + m * 9e-11  # noqa: E731
    for n in (2, 3, 4, 5):
        # reduce-scatter into scratch, allgather into the vector the next rank has read
        ring = (n - 1) * (ex(S / n) + ex_sent(S / n) + red(S / n)) + 4e-6
        assert cost.predict("ring", n, S, RICH) == pytest.approx(ring)
        assert cost.predict("multi-ps", n, S, RICH) == pytest.approx(ring - 4e-6)
        # workers' vectors into the server's scratch, the result back into the workers' vectors
        # (each after its turn: an empty message)
        assert cost.predict("ps", n, S, RICH) == pytest.approx((n - 1) * (one(0) + one(S) + one_sent(S) + red(S)))
    assert cost.predict("recursive", 4, S, RICH) == pytest.approx(2 * (ex(S) + sent(S)) + 1e-6)
    # 5 ranks: fold one rank in (one hop into scratch, one back into its vector, one hot add),
    # then log2(4) doubling steps
    assert cost.predict("recursive", 5, S, RICH) == pytest.approx(
        one(S) + one_sent(S) + red(S) + 2 * (ex(S) + sent(S)) + 1e-6)
    # gossip scales its just-sent vector once, then adds each scaled neighbour from scratch
    assert cost.predict("gossip", 4, S, RICH, degree=2) == pytest.approx(2 * ex(S) + sent(S) + 4 * red(S))
    assert cost.predict("ring", 1, S, RICH) == 0.0


def test_links_fall_back_to_the_survey():
    fit = {"alpha": 2e-6, "beta": 1e-10, "gamma": 3e-11}
    for kind in ("exchange", "oneway-sent", "exchange-sent"):
        assert cost.link(fit, 4096, kind) == (2e-6, 1e-10)  # one full-duplex link for every transfer
    assert cost.link(fit, 4096, "reduce") == (0.0, 3e-11)
    assert cost.link(fit, 4096, "reduce-sent") == (0.0, 3e-11)
    assert cost.link({"alpha": 1e-6, "beta": 1e-10}, 4096, "reduce") == (0.0, 0.0)
    assert cost.link(dict(fit, reduce=RICH["reduce"]), 4096, "reduce-sent") == (5e-7, 2e-11)
    assert cost.link(dict(fit, exchange=RICH["exchange"]), 4096, "exchange-sent") == (3e-6, 3e-10)


def test_steps_move_the_survey_bytes():
    # the ring and multi-PS move 2(n-1)/n S per rank (bandwidth-optimal); the PS 2(n-1) S
    S = 12345.0
    for n in range(2, 7):
        transfers = ("oneway", "oneway-sent", "exchange", "exchange-sent", "concurrent", "concurrent-sent")
        moved = lambda algo, kinds=transfers: sum(c * m for k, c, m in cost.steps(algo, n, S) if k in kinds)  # noqa: E731
        assert moved("ring") == pytest.approx(2 * (n - 1) / n * S) == moved("multi-ps")
        assert moved("ps") == pytest.approx(2 * (n - 1) * S) == moved("ring-unpartitioned")
        # half of those bytes land in the receiver's scratch, half in the vector it has sent
        for algo in ("ring", "multi-ps", "ps", "ring-unpartitioned"):
            assert moved(algo, ("oneway-sent", "exchange-sent", "concurrent-sent")) == pytest.approx(moved(algo) / 2)
    assert cost.steps("mpi", 4, S) is None and cost.predict("auto", 4, S, FIT) is None


class _FakeComm:
    """A one-rank stand-in that records what time_fresh does, in order."""

    def __init__(self, log):
        self.log = log

    def barrier(self):
        self.log.append("barrier")

    def allgather_array(self, a):
        return np.stack([a, a / 2])  # a second rank, always faster: the max is this rank's


def test_time_fresh_rewrites_before_every_call_and_takes_the_median(monkeypatch):
    log, clock, durations = [], [0.0], iter([3.0, 1.0, 2.0, 9.0, 2.0])
    monkeypatch.setattr(fit_module.time, "perf_counter", lambda: clock[0])  # a clock that only fn moves

    def fn():
        log.append("call")
        clock[0] += next(durations)

    t = time_fresh(_FakeComm(log), lambda: log.append("fill"), fn, 5)
    assert log == ["fill", "barrier", "call"] * 5  # a fresh buffer and a barrier before each timed call
    assert t == 2.0  # the median of 3, 1, 2, 9, 2 (the other rank's halves never win the max)


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


def test_pipelined_chunks_travel_and_are_reduced_segment_by_segment():
    from hpctrain.collectives.ring import PIPELINE_MIN_BYTES, SEGMENT_BYTES

    n = 2
    for S in (2 * PIPELINE_MIN_BYTES - 2, 2 * PIPELINE_MIN_BYTES, 64 << 20):
        plan = cost.steps("ring", n, S)
        chunk = S / n
        per = {k: [(c, m) for kind, c, m in plan if kind == k] for k in ("exchange", "exchange-sent", "reduce")}
        assert per["exchange-sent"] == [(n - 1, chunk)]  # the allgather moves whole chunks
        for kind in ("exchange", "reduce"):
            if chunk < PIPELINE_MIN_BYTES:  # one message and one add of the whole chunk per step
                assert per[kind] == [(n - 1, chunk)]
            else:  # ceil(chunk / segment) segments each, the same bytes in all
                k = -(-chunk // SEGMENT_BYTES)
                assert per[kind] == [((n - 1) * k, pytest.approx(chunk / k))] and per[kind][0][1] <= SEGMENT_BYTES
            assert sum(c * m for c, m in per[kind]) == pytest.approx((n - 1) * chunk)
        assert cost.steps("multi-ps", n, S) == plan


def test_summary_alpha_is_the_first_lines_nonnegative_intercept():
    from hpctrain.bench.fit import fit_segments, summary_alpha_beta

    sizes = [2 ** k for k in range(6, 27)]
    # latency 5 us, then a faster large-message regime: the last line's intercept is < 0
    times = [5e-6 + s / 1e9 if s < 1 << 20 else -2.1e-5 + s / 0.9e9 for s in sizes]
    segs, _ = fit_segments(sizes, times)
    assert len(segs) >= 2 and segs[-1]["alpha"] < 0
    alpha, beta = summary_alpha_beta(segs)
    assert alpha == pytest.approx(5e-6, rel=0.05) and beta == pytest.approx(1 / 0.9e9, rel=0.02)
    assert summary_alpha_beta([{"alpha": -1e-6, "beta": 1e-9}]) == (0.0, 1e-9)
