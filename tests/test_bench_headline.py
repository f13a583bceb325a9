"""bench fit's headline figures (latency in µs, bandwidth in GB/s, as osu_latency and
osu_bw give them) from synthetic timings with a known alpha and beta; never a negative
latency or an infinite bandwidth; crossover lines that agree with the model's own table;
and bench's pred column explained when no fit is cached."""

import numpy as np

from hpctrain.bench.collective import format_rows
from hpctrain.bench.fit import crossings, fit_segments, headline, _segment_lines
from hpctrain.collectives import cost

SIZES = [1 << k for k in range(10, 25)]


def test_headline_recovers_known_alpha_beta():
    alpha, beta = 5e-6, 1 / 2e9  # 5 µs, 2 GB/s
    times = [alpha + beta * s for s in SIZES]
    segs, r2 = fit_segments(SIZES, times)
    assert len(segs) == 1 and r2 > 0.9999
    lat, bw = headline(segs[0], SIZES[-1])
    assert abs(lat - alpha) / alpha < 1e-3 and abs(bw - 2e9) / 2e9 < 1e-3
    (title, line, _) = _segment_lines("one-way", segs, r2, SIZES[-1])
    assert "latency α = 5.00 µs, bandwidth 1/β = 2.00 GB/s" in line, line


def test_two_segments_each_get_a_headline():
    # eager below 64 KiB (2 µs, 1 GB/s), then rendezvous (20 µs, 4 GB/s)
    t = [2e-6 + s / 1e9 if s < 1 << 16 else 20e-6 + s / 4e9 for s in SIZES]
    segs, _ = fit_segments(SIZES, t)
    assert len(segs) == 2
    heads = [headline(s, SIZES[-1]) for s in segs]
    assert abs(heads[0][0] - 2e-6) < 1e-7 and abs(heads[0][1] - 1e9) / 1e9 < 0.01
    assert abs(heads[1][1] - 4e9) / 4e9 < 0.01


def test_no_negative_latency_or_infinite_bandwidth():
    flat = {"alpha": 3e-6, "beta": 0.0, "min_bytes": 1024, "max_bytes": None, "r2": 1.0}
    lat, bw = headline(flat, 1 << 20)
    assert lat == 3e-6 and np.isfinite(bw) and bw > 0
    convex = {"alpha": -40e-6, "beta": 1e-9, "min_bytes": 1 << 16, "max_bytes": 1 << 20, "r2": 1.0}
    lat, bw = headline(convex)
    assert lat > 0 and abs(lat - (-40e-6 + 1e-9 * (1 << 16))) < 1e-12 and abs(bw - 1e9) < 1
    for line in _segment_lines("x", [flat, convex], 0.9, 1 << 20):
        assert "inf GB/s" not in line and "α = -" not in line, line


def test_crossovers_agree_with_the_model_table():
    t = [2e-6 + s / 1e9 if s < 1 << 16 else 20e-6 + s / 4e9 for s in SIZES]
    segs, r2 = fit_segments(SIZES, t)
    alpha, beta = cost_ab = (max(0.0, segs[0]["alpha"]), segs[-1]["beta"])
    fit = {"alpha": alpha, "beta": beta, "gamma": 1e-11, "segments": segs, "r2": r2, "overhead": {}}
    n = 4
    found = crossings("ring", "recursive", n, fit)
    grid = np.geomspace(8, 1 << 30, 4000)
    faster = ["ring" if cost.predict("ring", n, s, fit) < cost.predict("recursive", n, s, fit) else "recursive"
              for s in grid]
    swaps = sum(1 for x, y in zip(faster, faster[1:]) if x != y)
    assert len(found) == swaps >= 1
    for c in found:  # each line names the faster one on each side, as the table would
        i = int(np.searchsorted(grid, c["bytes"]))
        assert faster[max(i - 3, 0)] == c["below"] and faster[min(i + 3, len(grid) - 1)] == c["above"]
        assert c["below"] != c["above"]
    assert cost_ab[0] >= 0


def _row(**kw):
    r = {"algo": "ring", "kind": "allreduce", "size": 1024, "count": 256, "type": "float32", "ranks": 2,
         "time_us": 10.0, "algbw": 0.1, "busbw": 0.1, "wrong": 0, "oop_wrong": 0, "min_us": 9.0, "avg_us": 10.0,
         "max_us": 11.0, **{f"oop_{k}": v for k, v in (("time_us", 10.0), ("algbw", 0.1), ("busbw", 0.1))}}
    r.update(kw)
    return r


def test_pred_column_says_to_run_bench_fit_first():
    text = format_rows([_row()])
    assert "run `hpctrain bench fit` first" in text
    text = format_rows([_row(pred_us=9.5), _row(algo="auto", pred_us=8.0, auto_chose="recursive")])
    assert "bench fit` first" not in text and "(recursive)" in text
