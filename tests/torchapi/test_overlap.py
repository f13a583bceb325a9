"""The overlap engine under mpiexec: buckets reduced on the communication thread during a
simulated backward equal the same buckets reduced afterwards bit for bit, and the
unbucketed allreduce to 1e-6 (float32) / 1e-12 (float64) relative."""

import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("ranks,collective", [(2, "ring"), (4, "ring"), (3, "recursive"), (4, "multi-ps")])
def test_overlap_bit_identical_and_close_to_unbucketed(mpirun, tmp_path, ranks, collective):
    mpirun(ranks, [os.path.join(HERE, "overlap_run.py"), str(tmp_path), collective], timeout=120)
    for r in range(ranks):
        res = json.loads((tmp_path / f"overlap-{r}.json").read_text())
        for dtype, tol in (("float32", 1e-6), ("float64", 1e-12)):
            for step in res[dtype]:
                assert step["n_buckets"] > 3
                assert step["on_equals_off"], (r, dtype)
                assert step["rel_vs_unbucketed"] <= tol, (r, dtype, step)
                assert step["rel_vs_float64_mpi"] <= (tol if dtype == "float64" else 1e-6), (r, dtype, step)
        assert res["error"] == "bucket 0 failed"
        prof = res["profile"]
        assert prof["per_step"] == [True, True] and prof["ordered"] and prof["waits"] == 2
        assert prof["trace_ranks"] == list(range(ranks))
        assert prof["trace_buckets"] == 2 * ranks * res["float32"][0]["n_buckets"]
