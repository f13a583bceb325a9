"""What ``--collective auto`` chose is shown, and only for algorithms that use an
allreduce: each algorithm's declared allreduce sizes match what its steps hand to the
collective (so a new algorithm that declares wrongly fails here)."""

import json
import os

import pytest

from mpiutil import WORKERS


@pytest.mark.mpi
def test_declared_allreduce_sizes_are_the_ones_used(mpirun, tmp_path):
    out = tmp_path / "sizes.json"
    mpirun(2, [os.path.join(WORKERS, "allreduce_sizes.py"), str(out)], timeout=240)
    res = json.loads(out.read_text())
    assert len(res) >= 14
    wrong = {case: v for case, v in res.items() if v["declared"] != v["observed"]}
    assert not wrong, wrong
    assert res["dmsgd/allreduce/None"]["declared"] == [4000]
    assert res["dpsgd/allreduce/None"]["declared"] == []
