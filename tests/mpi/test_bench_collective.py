"""`hpctrain bench collective` and `hpctrain bench fit` run, check results, write files."""

import csv
import json
import os

import pytest

from mpiutil import HPCTRAIN

ALL = "ring,ps,multi-ps,gossip,ring-unpartitioned,sparse-allgather,sparse-allgather-mpi,mpi,auto,recursive"


@pytest.mark.mpi
def test_bench_fit_then_collective_with_prediction_and_plot(mpirun, tmp_path):
    env = {"HPCTRAIN_CACHE": str(tmp_path / "cache")}
    fit = mpirun(2, [HPCTRAIN, "bench", "fit", "--min-bytes", "1K", "--max-bytes", "1M", "--step-factor", "4",
                     "--compare-min", "64K", "--iters", "2", "--rounds", "3", "--json", tmp_path / "fit.json"],
                 timeout=120, env=env)
    assert "R^2" in fit.stdout and "predicted vs measured" in fit.stdout and "crossovers" in fit.stdout
    assert "sizes within 20%" in fit.stdout
    cached = json.loads((tmp_path / "cache" / "alpha_beta.json").read_text())
    assert cached["alpha"] >= 0 and cached["beta"] > 0 and cached["r2"] <= 1
    sizes = [1024, 4096, 16384, 65536, 262144, 1048576]
    assert cached["sizes"] == sizes and 3 <= cached["rounds"] <= 9  # at least --rounds, at most 3x
    for kind in ("oneway-sent", "exchange", "exchange-sent", "reduce", "reduce-sent"):
        assert cached[kind]["segments"][0]["min_bytes"] == 1024 and cached[kind]["segments"][-1]["max_bytes"] is None
    assert "concurrent" not in cached  # 2 ranks: one peer each, no concurrent flows to time
    algos = {"ring", "multi-ps", "ps", "ring-unpartitioned", "recursive"}
    assert set(cached["overhead"]) == algos and all(o >= 0 for o in cached["overhead"].values())
    res = json.loads((tmp_path / "fit.json").read_text())
    assert len(res["rounds"]) == cached["rounds"]
    assert {(r["algo"], r["size"]) for r in res["rows"]} == {(a, s) for a in algos for s in sizes[3:]}
    assert all(r["fastest_us"] > 0 and r["pred_us"] > 0 and r["pred_fastest_us"] > 0 and r["time_us"] >= r["fastest_us"]
               for r in res["rows"])
    # the measured tables hold the median round of each size; reduce-sent is never below reduce
    pts = res["points"]
    assert all(t > 0 for key in ("oneway", "oneway-sent", "exchange", "exchange-sent", "reduce") for t in pts[key])
    assert all(s >= h for s, h in zip(pts["reduce_sent"], pts["reduce"]))
    out = tmp_path / "rows.json"
    args = [HPCTRAIN, "bench", "collective", "--algo", ALL, "--min-bytes", "4", "--max-bytes", "64K",
            "--step-factor", "16", "--iters", "2", "--warmup", "1", "--dtype", "float64",
            "--json", out, "--csv", tmp_path / "rows.csv"]
    try:
        import matplotlib  # noqa: F401

        args += ["--plot", tmp_path / "plot.png"]
    except ImportError:
        pass
    res = mpirun(2, args, timeout=120, env=env)
    rows = json.loads(out.read_text())
    assert {r["algo"] for r in rows} == set(ALL.split(","))
    assert all(r["wrong"] == 0 for r in rows), [r for r in rows if r["wrong"]]
    assert all(r.get("pred_us") is not None for r in rows if r["algo"] in ("ring", "ps", "multi-ps"))
    assert "Avg bus bandwidth" in res.stdout and "in-place" in res.stdout and "out-of-place" in res.stdout
    with open(tmp_path / "rows.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    if "--plot" in args:
        assert os.path.getsize(tmp_path / "plot.png") > 1000


@pytest.mark.mpi
def test_bench_collective_four_ranks_all_correct(mpirun, tmp_path):
    out = tmp_path / "rows.json"
    mpirun(4, [HPCTRAIN, "bench", "collective", "--algo", ALL, "--min-bytes", "1K", "--max-bytes", "1M",
               "--step-factor", "32", "--iters", "1", "--warmup", "0", "--topology", "exponential",
               "--json", out], timeout=150, env={"HPCTRAIN_CACHE": str(tmp_path)})
    rows = json.loads(out.read_text())
    assert len(rows) == 10 * 3 and all(r["wrong"] == 0 and r["ranks"] == 4 for r in rows)


@pytest.mark.mpi
def test_bench_collective_rejects_bad_input(mpirun, tmp_path):
    res = mpirun(2, [HPCTRAIN, "bench", "collective", "--algo", "ring,warp"], timeout=60, check=False)
    assert res.returncode == 2 and "unknown algorithm 'warp'" in res.stderr
    (tmp_path / "w.csv").write_text("1,0\n0,1\n")
    res = mpirun(2, [HPCTRAIN, "bench", "collective", "--algo", "gossip", "--topology", tmp_path / "w.csv",
                     "--max-bytes", "1K"], timeout=60, check=False)
    assert res.returncode == 2 and "disconnected" in res.stderr


@pytest.mark.mpi
@pytest.mark.parametrize("n,k", [(3, 1), (4, 2)])
def test_bench_dedicated_servers(mpirun, tmp_path, n, k):
    out = tmp_path / "d.json"
    res = mpirun(n, [HPCTRAIN, "bench", "collective", "--algo", "multi-ps", "--servers", k, "--min-bytes", "4",
                     "--max-bytes", "64K", "--step-factor", "16", "--iters", "2", "--warmup", "1", "--json", out],
                 timeout=120)
    rows = json.loads(out.read_text())
    assert rows and all(r["servers"] == k and r["wrong"] == 0 and r["oop_wrong"] == 0 for r in rows)
    assert f"dedicated-servers={k}" in res.stdout
