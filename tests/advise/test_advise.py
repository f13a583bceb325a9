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
        2 * (n - 1) * (A + S * B) / 8, rel=1e-9)  # the server: 2(n-1)(alpha + S beta), every 8th step


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
    out = tmp_path / "advise.json"
    res = run_mpi(2, [HPCTRAIN, "advise", "--dataset", "synthetic", "--fit", str(fit), "--nodes", "2,8",
                      "--densities", "0.01", "--bits-grid", "4", "--runs", str(run), "--json", str(out)],
                  timeout=300, cwd=tmp_path)
    doc = json.loads(out.read_text())
    assert doc["job"]["ranks"] == 2 and doc["fit"]["alpha"] == A
    labels = {method_label(c) for c in candidates(densities=(0.01,), bits=(4,))}
    skipped = {s["method"] for s in doc["skipped"]}
    assert {r["method"] for r in doc["rows"]} | skipped == labels
    assert len(labels - skipped) >= 30
    dense = [r for r in doc["rows"] if r["algo"] == "dmsgd"]
    assert {r["collective"] for r in dense} == {"ring", "recursive", "multi-ps", "ps"}
    assert all(r["step_s"] == pytest.approx(r["compute_s"] + r["local_s"] + r["comm_s"]) for r in doc["rows"])
    assert [r["step_s"] for r in doc["rows"]] == sorted(r["step_s"] for r in doc["rows"])
    assert dense[0]["converged"] and dense[0]["converged"].startswith(("yes", "no"))
    assert set(doc["whatif"]) == {"2", "8"}
    assert "hierarchical" in {r["collective"] for r in doc["whatif"]["8"]}
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
