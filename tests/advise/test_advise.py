"""``hpctrain advise``: predictions against hand-computed formulas on a crafted fit, the
what-if's growth with the number of nodes, the command on 2 ranks (a JSON row per valid
method), and bad input (one line, exit status 2)."""

import json
import subprocess

import pytest

from mpiutil import HPCTRAIN, run_mpi

from hpctrain.advise import candidates, method_label, predict_row, rank_rows
from hpctrain.algorithms.base import Exchange

A, B = 2e-5, 1e-9  # crafted link: 20 us, 1 GB/s
FIT = {"alpha": A, "beta": B}


def _measured(label, config, pattern_of_n, local=1e-3, decode=1e-4, compute=5e-3):
    return {"label": label, "config": config, "compute_s": compute, "local_s": local, "decode_s": decode,
            "pattern": pattern_of_n}


def test_prediction_is_the_hand_formula():
    n, S, P = 4, 4e6, 1e4
    dense = _measured("dmsgd", {"algo": "dmsgd", "compressor": "none"}, {n: [Exchange("allreduce", S)]})
    row = predict_row(dense, n, 1, FIT, "ring")
    # ring: 2(n-1) alpha + 2(n-1)/n S beta (below the pipelining threshold per chunk: 1 MB chunks)
    comm = 2 * (n - 1) * A + 2 * (n - 1) / n * S * B
    assert row["comm_s"] == pytest.approx(comm, rel=1e-9)
    assert row["step_s"] == pytest.approx(5e-3 + 1e-3 + comm, rel=1e-9)
    assert row["bytes_per_step"] == pytest.approx(2 * (n - 1) / n * S)
    sparse = _measured("x", {"algo": "mdsgd"}, {n: [Exchange("allgather", P, decodes=True)]})
    row = predict_row(sparse, n, 1, FIT, "ring")
    assert row["comm_s"] == pytest.approx((A + 8 * B) + (n - 1) * (A + P * B), rel=1e-9)
    assert row["local_s"] == pytest.approx(1e-3 + (n - 1) * 1e-4)  # every other rank's payload decoded
    local = _measured("y", {"algo": "local-sgd"}, {n: [Exchange("allreduce", S, per_step=1 / 8)]})
    assert predict_row(local, n, 1, FIT, "ps")["comm_s"] == pytest.approx(
        (2 * (n - 1) * (A + S * B) + (n - 1) * A) / 8, rel=1e-9)  # the server: 2(n-1)(alpha + S beta)
    # and each worker's turn, every 8th step


def test_serial_recompression_is_on_the_critical_path():
    n = 4
    m = _measured("csgd", {"algo": "csgd"}, {n: [Exchange("ring-hops", 1e4, serial=n - 1)]})
    m["compress_s"] = 3e-4
    row = predict_row(m, n, 1, FIT, "ring")
    assert row["local_s"] == pytest.approx(1e-3 + (n - 1) * (3e-4 + 1e-4))
    assert row["comm_s"] == pytest.approx(2 * (n - 1) * (A + 1e4 * B), rel=1e-9)


def test_speedups_and_order():
    n = 2
    ms = [_measured("dmsgd", {"algo": "dmsgd", "compressor": "none"}, {n: [Exchange("allreduce", 4e6)]}),
          _measured("ecsgd+fp16", {"algo": "ecsgd", "compressor": "fp16"}, {n: [Exchange("allgather", 2e6)]}),
          _measured("local-sgd", {"algo": "local-sgd", "compressor": "none"},
                    {n: [Exchange("allreduce", 4e6, per_step=0.125)]})]
    rows = rank_rows(ms, n, 1, FIT, ("ring",))
    assert [r["method"] for r in rows] == ["local-sgd", "ecsgd+fp16", "dmsgd"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[2]["speedup_fp32"] == pytest.approx(1.0)
    assert rows[1]["speedup_fp16"] == pytest.approx(1.0)
    assert rows[0]["speedup_fp32"] == pytest.approx(rows[2]["step_s"] / rows[0]["step_s"])


def test_plot_whatif_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from hpctrain.advise import plot_whatif

    ms = [_measured("dmsgd", {"algo": "dmsgd", "compressor": "none"}, {p: [Exchange("allreduce", 4e6)] for p in (2, 8)})]
    res = {"job": {"ranks": 2, "nodes": 2, "ranks_per_node": 1, "model": "mlp", "dim": 10 ** 6},
           "rows": rank_rows(ms, 2, 2, FIT), "whatif": {"8": rank_rows(ms, 8, 8, FIT)}}
    out = plot_whatif(res, str(tmp_path / "w.png"))
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_whatif_allreduce_time_grows_with_nodes():
    sizes = [2, 4, 8, 64, 512]
    m = _measured("dmsgd", {"algo": "dmsgd", "compressor": "none"}, {p: [Exchange("allreduce", 4e6)] for p in sizes})
    for coll in ("ring", "ps", "recursive"):
        times = [predict_row(m, p, p, FIT, coll)["comm_s"] for p in sizes]
        assert times == sorted(times) and times[0] < times[-1], (coll, times)
    # the ring's bandwidth term saturates at 2 S beta; the PS's grows linearly
    assert predict_row(m, 512, 512, FIT, "ps")["comm_s"] > 100 * predict_row(m, 512, 512, FIT, "ring")["comm_s"]


@pytest.mark.mpi
def test_advise_on_two_ranks_writes_a_row_per_method(tmp_path):
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps({"fit": FIT}))
    run = tmp_path / "run"
    subprocess.run([HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "--max-steps", "3", "--quiet",
                    "--out", str(run)], check=True, capture_output=True, timeout=120, cwd=tmp_path)
    sparse_run = _run_dir(tmp_path / "sparse", [1.0, 1.5], {"algo": "mdsgd", "compressor": "topk", "density": 0.003})
    links = tmp_path / "links.json"  # 4 nodes, the last at a tenth of the others' rate
    links.write_text(json.dumps({"hosts": ["n0", "n1", "n2", "n3"], "pairs": [
        {"a": a, "b": b, "hosts": [f"n{a}", f"n{b}"], "bytes_per_s": 1e7 if b == 3 else 1e8}
        for a, b in ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))]}))
    out = tmp_path / "advise.json"
    res = run_mpi(2, [HPCTRAIN, "advise", "--dataset", "synthetic", "--fit", str(fit), "--links", str(links),
                      "--nodes", "2,8", "--ranks-per-node", "1",
                      "--densities", "0.01", "--bits-grid", "4", "--runs", str(run), "--runs", sparse_run,
                      "--json", str(out)],
                  timeout=300, cwd=tmp_path)
    doc = json.loads(out.read_text())
    assert doc["job"]["ranks"] == 2 and doc["fit"]["alpha"] == A and doc["straggler_factor"] == pytest.approx(10)
    labels = {method_label(c) for c in candidates(densities=(0.01, 0.003), bits=(4,))}  # the run's density joins
    skipped = {s["method"] for s in doc["skipped"]}
    assert {r["method"] for r in doc["rows"]} | skipped == labels
    assert len(labels - skipped) >= 30
    dense = [r for r in doc["rows"] if r["algo"] == "dmsgd" and not r["fp16_allreduce"]]
    half = [r for r in doc["rows"] if r["algo"] == "dmsgd" and r["fp16_allreduce"]]
    assert {r["collective"] for r in dense} == {r["collective"] for r in half} == {"ring", "recursive", "multi-ps", "ps"}
    assert all(r["step_s"] == pytest.approx(r["compute_s"] + r["local_s"] + r["comm_s"]) for r in doc["rows"])
    ring = next(r for r in dense if r["collective"] == "ring")  # 2 ranks: one step each way, at the slow rate
    assert ring["comm_s"] == pytest.approx(2 * A + 2 * (doc["job"]["dim"] * 4 / 2) * B * 10, rel=1e-6)
    ring16 = next(r for r in half if r["collective"] == "ring")  # the dense 16-bit baseline: half the bytes
    assert ring16["method"] == "dmsgd+fp16" and ring16["bytes_per_step"] == pytest.approx(ring["bytes_per_step"] / 2)
    net16 = 2 * A + 2 * (doc["job"]["dim"] * 2 / 2) * B * 10  # and its float16 additions, at their measured rate
    assert net16 < ring16["comm_s"] < net16 + 0.5
    fp16 = min(r["step_s"] for r in doc["rows"] if r.get("fp16_allreduce") or r["compressor"] == "fp16")
    assert min(r["step_s"] for r in half) >= fp16  # x fp16: over the fastest half-precision row, dense or not
    assert all(r["speedup_fp16"] == pytest.approx(fp16 / r["step_s"]) for r in doc["rows"])
    assert all(r["speedup_fp32"] == pytest.approx(min(d["step_s"] for d in dense) / r["step_s"]) for r in doc["rows"])
    assert [r["step_s"] for r in doc["rows"]] == sorted(r["step_s"] for r in doc["rows"])
    assert dense[0]["converged"] and dense[0]["converged"].startswith(("yes", "no"))
    assert {r["converged"] for r in doc["rows"] if r["method"] == "mdsgd+topk(0.003)"} == {"no (acc 0.520)"}
    assert set(doc["whatif"]) == {"2", "8"}
    assert "hierarchical" in {r["collective"] for r in doc["whatif"]["8"]}
    assert doc["job"]["ranks_per_node"] == 1  # the what-if for 8 nodes: 8 ranks, the slow link's pace
    ring8 = next(r for r in doc["whatif"]["8"] if r["method"] == "dmsgd" and r["collective"] == "ring")
    assert ring8["comm_s"] == pytest.approx(14 * A + 14 / 8 * doc["job"]["dim"] * 4 * B * 10, rel=1e-6)
    assert "predicted on this job (2 ranks)" in res.stdout and "what-if: 8 nodes" in res.stdout
    assert list(tmp_path.iterdir())  # outputs only where named (tmp_path)


@pytest.mark.parametrize("args, needle", [
    (["--fit", "missing-fit.json"], "--fit file not found"),
    (["--algo", "no-such-algo"], "no-such-algo"),
    (["--nodes", "two"], "comma-separated numbers"),
])
def test_bad_input_one_line_exit_2(tmp_path, args, needle):
    res = subprocess.run([HPCTRAIN, "advise", "--dataset", "synthetic", *args], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_a_slow_link_slows_lockstep_exchanges_fully_and_a_server_round_by_one_worker():
    n, S = 4, 4e6
    dense = _measured("dmsgd", {"algo": "dmsgd"}, {n: [Exchange("allreduce", S)]})
    slow = 10.0
    ring = predict_row(dense, n, n, FIT, "ring", slow)["comm_s"]
    assert ring == pytest.approx(2 * (n - 1) * A + 2 * (n - 1) / n * S * B * slow, rel=1e-9)
    ps = predict_row(dense, n, n, FIT, "ps", slow)["comm_s"]
    factor = (n - 2 + slow) / (n - 1)
    assert ps == pytest.approx(2 * (n - 1) * (A + S * B * factor) + (n - 1) * A, rel=1e-9)
    assert predict_row(dense, n, n, FIT, "ring", 1.0)["comm_s"] < ring


def test_straggler_factor_from_bench_links():
    from hpctrain.advise import straggler_factor
    from hpctrain.errors import ConfigError

    pair = lambda a, b, rate: {"a": a, "b": b, "hosts": [f"n{a}", f"n{b}"], "bytes_per_s": rate}  # noqa: E731
    doc = {"hosts": ["n0", "n1", "n2", "n3"], "pairs": [pair(0, 1, 1e8), pair(0, 2, 1e8), pair(1, 2, 1e8), pair(0, 3, 1e7), pair(1, 3, 1e7),
                     pair(2, 3, 1e7)]}
    assert straggler_factor(doc) == pytest.approx(10.0)  # the typical node's best over the slow pairs
    assert straggler_factor({"hosts": ["n0", "n1"], "pairs": [pair(0, 1, 1e8)]}) == 1.0
    with pytest.raises(ConfigError):
        straggler_factor({"rows": []})


def test_float16_reductions_are_priced_at_their_own_rate():
    """--fp16-allreduce rows: the collective's additions of halves cost reduce_s_per_byte
    per byte of halves (several times a float32 addition), not the fit's reduce line."""
    from hpctrain.advise import predict_row
    from hpctrain.algorithms.base import Exchange
    from hpctrain.collectives import cost

    d, n = 1_000_000, 4
    fit = {"alpha": 1e-5, "beta": 1e-8, "reduce": {"segments": [{"alpha": 0.0, "beta": 1e-10, "max_bytes": None}]}}
    meas = {"compute_s": 0.0, "local_s": 0.0, "decode_s": 0.0, "compress_s": 0.0,
            "pattern": {n: [Exchange("allreduce", 2.0 * d, 1.0)]}}
    plain = predict_row(meas, n, n, fit, "ring")["comm_s"]
    half = predict_row(dict(meas, reduce_s_per_byte=2e-9), n, n, fit, "ring")["comm_s"]
    reduced = sum(c * b for k, c, b in cost.steps("ring", n, 2.0 * d) if k.startswith("reduce"))
    assert reduced > 0 and half - plain == pytest.approx(reduced * (2e-9 - 1e-10), rel=1e-9)


def test_a_fit_measured_with_the_straggler_is_rebased_before_it_is_slowed():
    """advise's own fit on a job with a slow node already ran its exchanges at the slow
    pair's pace: rebased to healthy links and slowed once by the straggler model, the ring
    costs what it costs on the slow link, not the square of the slowdown."""
    from hpctrain.advise import healthy_fit, straggler_factor
    from hpctrain.collectives import cost

    pair = lambda a, b, rate: {"a": a, "b": b, "hosts": [f"n{a}", f"n{b}"], "bytes_per_s": rate}  # noqa: E731
    fast, slow_rate = 1e8, 1e7  # rank 2's node at a tenth of the rate
    links = {"hosts": ["n0", "n1", "n2", "n3"],
             "pairs": [pair(a, b, slow_rate if 2 in (a, b) else fast) for a in range(4) for b in range(a + 1, 4)]}
    s = straggler_factor(links)
    assert s == pytest.approx(10.0)
    line = lambda b: {"segments": [{"alpha": 1e-5, "beta": b, "max_bytes": None}]}  # noqa: E731
    healthy_beta = 1.0 / fast
    # as bench fit measures on this job: the ping-pong 0 <-> 1 is healthy, the exchanges
    # (pairs 0-1 and 2-3 at once) and the all-to-all run at the slow pair's pace
    measured = {"alpha": 1e-5, "beta": healthy_beta, "oneway": line(healthy_beta), "exchange": line(10 * healthy_beta),
                "exchange-sent": line(10 * healthy_beta), "concurrent": dict(line(10 * healthy_beta), peers=3)}
    rebased, divided = healthy_fit(measured, links, 4)
    assert divided == {"exchange/exchange-sent": pytest.approx(10.0), "concurrent/concurrent-sent": pytest.approx(10.0)}
    assert rebased["oneway"] == measured["oneway"] and rebased["beta"] == healthy_beta
    for kind in ("exchange", "exchange-sent", "concurrent"):
        assert rebased[kind]["segments"][0]["beta"] == pytest.approx(healthy_beta)
        assert rebased[kind]["segments"][0]["alpha"] == measured[kind]["segments"][0]["alpha"]
    # the ring of 4 MB: slowed once = the measured fit's own price (its exchanges saw the slow link)
    S = 4e6
    once = cost.predict("ring", 4, S, cost.slowed(rebased, s))
    assert once == pytest.approx(cost.predict("ring", 4, S, measured), rel=1e-9)
    assert cost.predict("ring", 4, S, cost.slowed(measured, s)) > 5 * once  # what double counting gave
    # links of another job size, or without a slow pair in the fit's patterns: unchanged
    assert healthy_fit(measured, links, 8) == (measured, {})
    healthy_links = {"hosts": links["hosts"], "pairs": [pair(a, b, fast) for a in range(4) for b in range(a + 1, 4)]}
    assert healthy_fit(measured, healthy_links, 4) == (measured, {})


def _run_dir(path, losses, cfg, finished=True):
    path.mkdir()
    with open(path / "metrics.jsonl", "w") as f:
        for e, loss in enumerate(losses, 1):
            f.write(json.dumps({"epoch": e, "train_loss": loss, "test_accuracy": 0.5 + e / 100}) + "\n")
    if finished:
        (path / "summary.json").write_text(json.dumps({"config": cfg}))
    else:
        (path / "config.toml").write_text("[train]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.items()))
    return str(path)


def test_earlier_runs_mark_convergence(tmp_path):
    from hpctrain.advise import read_runs
    from hpctrain.errors import DataError

    runs = [_run_dir(tmp_path / "a", [2.0, 1.0], {"algo": "dmsgd", "aggregation": "allreduce"}),
            _run_dir(tmp_path / "b", [1.0, 1.5], {"algo": "mdsgd", "compressor": "topk", "density": 0.003}),
            _run_dir(tmp_path / "c", [1.0], {"algo": "csgd", "compressor": "qsgd", "bits": 3, "aggregation": "ps"},
                     finished=False)]
    marks = read_runs(runs)
    assert marks == {("dmsgd", "allreduce", "none", None): "yes (acc 0.520)",
                     ("mdsgd", "allreduce", "topk", 0.003): "no (acc 0.520)",
                     ("csgd", "ps", "qsgd", 3.0): "no (did not finish)"}
    bad = _run_dir(tmp_path / "d", [1.0], {"algo": "no-such"})
    with pytest.raises(DataError, match="names no known algo"):
        read_runs([bad])


def test_threshold_is_priced_only_when_named():
    """threshold's payload follows the gradients' scale over training, so the default table
    leaves it out; naming it with --compressor prices it."""
    default = candidates(densities=(0.01,), bits=(4,))
    assert default and not any(c["compressor"] == "threshold" for c in default)
    assert any(c["compressor"] == "topk" for c in default)
    named = candidates(compressors=["threshold"], densities=(0.01,), bits=(4,))
    assert named and all(c["compressor"] == "threshold" for c in named)
