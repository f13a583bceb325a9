"""The concurrent-exchange term of the cost model: which collectives use alpha_c/beta_c,
the fallback to today's model without it, the fit recovering it from all-to-all times, the
fit file's round trip and its validation (no MPI job)."""

import json

import pytest

from hpctrain.advise import format_report, load_fit_file
from hpctrain.bench.fit import _build_fit, concurrent_sizes, fit_segments
from hpctrain.collectives import cost
from hpctrain.collectives.ring import PIPELINE_MIN_BYTES, SEGMENT_BYTES
from hpctrain.errors import ConfigError

A, B = 2e-5, 1e-8  # the exchange's line
AC = 3e-5  # alpha_c


def _fit(beta_c=None):
    fit = {"alpha": A, "beta": B, "exchange": {"segments": [{"alpha": A, "beta": B, "max_bytes": None}]}}
    if beta_c is not None:
        fit["concurrent"] = {"segments": [{"alpha": AC, "beta": beta_c, "max_bytes": None}], "peers": 3}
    return fit


def test_multi_ps_is_priced_as_the_ring_at_any_beta_c():
    # pairwise rounds: one flow in and one out per rank, so beta_c (n-1 flows at once) is not its
    for n in (3, 4, 8):
        for S in (4e6, 3 * 2 * PIPELINE_MIN_BYTES):  # whole shards and segmented ones
            for beta_c in (B, 1.8 * B, 4 * B):
                fit = _fit(beta_c)
                assert cost.predict("multi-ps", n, S, fit) == cost.predict("ring", n, S, fit)
    n, S = 4, 4e6
    assert cost.predict("multi-ps", n, S, _fit(4 * B)) == pytest.approx(2 * (n - 1) * (A + S / n * B), rel=1e-12)


def test_concurrent_term_only_where_a_rank_has_several_flows():
    fit, slow = _fit(B), _fit(10 * B)
    S = 4e6
    # two ranks: one peer, a plain exchange
    assert cost.predict("multi-ps", 2, S, slow) == cost.predict("multi-ps", 2, S, fit)
    # recursive doubling's pairwise Sendrecv is the exchange primitive, for any n
    for n in (4, 5, 8):
        assert cost.predict("recursive", n, S, slow) == cost.predict("recursive", n, S, fit)
    # gossip: several neighbours at once are concurrent flows, one neighbour is an exchange
    assert cost.predict("gossip", 4, S, slow, degree=2) > cost.predict("gossip", 4, S, fit, degree=2)
    assert cost.predict("gossip", 4, S, slow, degree=1) == cost.predict("gossip", 4, S, fit, degree=1)
    # the exchanges the algorithms declare: the ring allgather, a server round, the ring hops
    for kind, kw in (("allgather", {}), ("ps", {}), ("ring-hops", {})):
        assert cost.exchange_time(kind, 4, S, slow, **kw) == cost.exchange_time(kind, 4, S, fit, **kw)
    assert cost.exchange_time("gossip", 4, S, slow, degree=2) > cost.exchange_time("gossip", 4, S, fit, degree=2)


def test_segmented_multi_ps_keeps_the_ring_bytes_and_messages():
    n, S = 3, 3 * 2 * PIPELINE_MIN_BYTES  # 8 MiB shards: segmented phase 1
    mps = cost.steps("multi-ps", n, S)
    assert mps == cost.steps("ring", n, S)
    k = -(-(S / n) // SEGMENT_BYTES)
    assert ("exchange", (n - 1) * k, pytest.approx(S / n / k)) in mps


def test_fallbacks_and_slowed():
    fit = {"alpha": 1e-6, "beta": 1e-9, "exchange-sent": {"segments": [{"alpha": 5e-6, "beta": 3e-9,
                                                                        "max_bytes": None}]}}
    assert cost.link(fit, 4096, "concurrent") == cost.link(fit, 4096, "exchange") == (1e-6, 1e-9)
    assert cost.link(fit, 4096, "concurrent-sent") == (5e-6, 3e-9)  # as exchange-sent
    with_c = dict(fit, concurrent={"segments": [{"alpha": 2e-6, "beta": 7e-9, "max_bytes": None}], "peers": 2})
    assert cost.link(with_c, 4096, "concurrent-sent") == (2e-6, 7e-9)  # not timed apart: as concurrent
    assert cost.link(cost.slowed(with_c, 3.0), 4096, "concurrent") == (2e-6, pytest.approx(21e-9))


def test_fit_recovers_alpha_c_and_beta_c_from_all_to_all_times():
    n, sizes = 4, [1 << k for k in range(10, 21)]
    csizes = concurrent_sizes(sizes, n)
    assert csizes and all((n - 1) * m <= max(sizes) for m in csizes) and max(csizes) == 1 << 18
    line = lambda m: 4e-6 + m * 2e-9  # noqa: E731
    tables = {k: [line(s) for s in sizes] for k in ("oneway", "oneway-sent", "exchange", "exchange-sent")}
    tables.update(add=[s * 1e-11 for s in sizes], **{"add-sent": [s * 1e-11 for s in sizes]})
    ac, bc = 9e-6, 3.6e-9
    tables["concurrent"] = [(n - 1) * (ac + m * bc) for m in csizes]  # one all-to-all: n-1 messages of m
    fit = _build_fit(n, sizes, tables, {}, csizes=csizes)
    seg = fit["concurrent"]["segments"][-1]
    assert seg["alpha"] == pytest.approx(ac, rel=1e-6) and seg["beta"] == pytest.approx(bc, rel=1e-6)
    assert fit["concurrent"]["peers"] == n - 1 and fit["concurrent"]["sizes"] == csizes
    assert "concurrent" not in _build_fit(n, sizes, tables, {})  # not measured: not in the fit
    # the same line fit_segments gives for the per-message times (one fitting routine)
    assert fit["concurrent"]["segments"] == fit_segments(csizes, [ac + m * bc for m in csizes])[0]


def test_concurrent_sizes_only_where_measurable():
    sizes = [1 << k for k in range(10, 27)]
    assert concurrent_sizes(sizes, 2) == []  # one peer: the exchange
    assert concurrent_sizes(sizes, 4, ranks_per_node=2, nodes=2) == []  # flows on two kinds of link
    assert concurrent_sizes(sizes, 4, ranks_per_node=1, nodes=4) != []
    assert concurrent_sizes([1024, 2048, 4096], 3) == []  # fewer than 3 sizes fit
    got = concurrent_sizes(sizes, 4)
    assert len(got) >= 3 and len(got) <= len(sizes) // 2 + 1  # every other size: the fit stays short


def test_fit_file_round_trip_with_and_without_the_term(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCTRAIN_CACHE", str(tmp_path / "cache"))
    n, S = 4, 4e6
    for fit in (_fit(), _fit(2.5 * B)):
        path = tmp_path / "fit.json"
        path.write_text(json.dumps({"fit": fit, "rows": []}))  # as bench fit --json writes it
        back = load_fit_file(str(path))
        assert back == fit and cost.predict("gossip", n, S, back, degree=2) == cost.predict("gossip", n, S, fit, degree=2)
        cost.save_fit(fit)
        assert cost.load_fit() == fit
        assert (cost.concurrent_note(back) is None) == ("concurrent" in fit)
    assert cost.predict("gossip", n, S, _fit(2.5 * B), degree=2) > cost.predict("gossip", n, S, _fit(), degree=2)


@pytest.mark.parametrize("concurrent, needle", [
    ({"peers": 3}, "concurrent: no segments"),
    ({"segments": [], "peers": 3}, "concurrent: no segments"),
    ({"segments": [{"alpha": 1e-6, "max_bytes": None}], "peers": 3}, "segment 0 has no beta"),
    ({"segments": [{"alpha": 1e-6, "beta": "fast", "max_bytes": None}], "peers": 3}, "beta is not a finite number"),
    ({"segments": [{"alpha": None, "beta": 1e-9, "max_bytes": None}], "peers": 3}, "alpha is not a finite number"),
    ({"segments": [{"alpha": 1e-6, "beta": 1e-9, "max_bytes": None}]}, "concurrent's peers is not a finite number"),
    ({"segments": [{"alpha": 1e-6, "beta": 1e-9, "max_bytes": None}], "peers": 0}, "peers is below 1"),
    ("fast", "concurrent is not an object"),
])
def test_bad_concurrent_fields(tmp_path, monkeypatch, concurrent, needle):
    fit = dict(_fit(), concurrent=concurrent)
    with pytest.raises(ValueError, match=needle):
        cost.check_fit(fit)
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(fit))
    with pytest.raises(ConfigError, match=needle):
        load_fit_file(str(path))
    monkeypatch.setenv("HPCTRAIN_CACHE", str(tmp_path))
    (tmp_path / "alpha_beta.json").write_text(json.dumps(fit))
    assert cost.load_fit() is None  # a cached fit that cannot be read is no fit


def test_advise_report_says_when_the_fit_has_no_concurrent_term():
    res = {"job": {"model": "mlp", "dim": 10, "batch_size": 8, "ranks": 4, "nodes": 4, "ranks_per_node": 1},
           "fit_source": "given", "compute_s": 1e-3, "rows": [], "whatif": {}, "skipped": []}
    for fit in (_fit(), _fit(B)):
        text = format_report({**res, "fit_note": cost.concurrent_note(fit)})
        notes = [line for line in text.splitlines() if "concurrent-exchange term" in line]
        assert len(notes) == (1 if "concurrent" not in fit else 0)
