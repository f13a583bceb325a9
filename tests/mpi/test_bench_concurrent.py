"""`hpctrain bench fit` on 4 ranks times the concurrent all-to-all and writes its term."""

import json

import pytest

from mpiutil import HPCTRAIN

from hpctrain.advise import load_fit_file
from hpctrain.collectives import cost


@pytest.mark.mpi
def test_bench_fit_writes_the_concurrent_term(mpirun, tmp_path):
    out = tmp_path / "fit.json"
    res = mpirun(4, [HPCTRAIN, "bench", "fit", "--min-bytes", "1K", "--max-bytes", "64K", "--step-factor", "2",
                     "--compare-min", "16K", "--algo", "ring,multi-ps", "--iters", "1", "--rounds", "1", "--no-cache",
                     "--json", out], timeout=240, env={"HPCTRAIN_CACHE": str(tmp_path / "cache")})
    assert "concurrent all-to-all (3 peers at once" in res.stdout
    assert not (tmp_path / "cache").exists()  # --no-cache
    doc = json.loads(out.read_text())
    conc = doc["fit"]["concurrent"]
    # every other size from the largest (n-1) m <= 64K down, 3 peers, one fitted line or more
    assert conc["peers"] == 3 and conc["sizes"] == [1024, 4096, 16384]
    assert doc["points"]["concurrent_sizes"] == conc["sizes"] and all(t > 0 for t in doc["points"]["concurrent"])
    assert all(len(r["concurrent"]) == 3 for r in doc["rounds"])
    assert conc["segments"][-1]["max_bytes"] is None and all(s["beta"] >= 0 for s in conc["segments"])
    fit = load_fit_file(str(out))  # what advise --fit reads
    assert cost.concurrent_note(fit) is None
    # gossip with two neighbours is priced on it: the concurrent line, not the exchange's
    m = 16384
    a_c, b_c = cost.link(fit, m, "concurrent")
    assert (a_c, b_c) == (conc["segments"][-1]["alpha"], conc["segments"][-1]["beta"])
    plan = cost.steps("gossip", 4, 4 * m, degree=2)
    assert [k for k, _, _ in plan][0] == "concurrent"
