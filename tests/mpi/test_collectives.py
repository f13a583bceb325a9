"""Every hand-made allreduce equals MPI's Allreduce on 1..5 real MPI ranks; gossip,
multi-PS placements, sparse allgather and the staged transport checked inside one job per n."""

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hpctrain.collectives import ALLREDUCE
from mpiutil import WORKERS, run_mpi

# every hand-made allreduce in the registry (MPI's own is the oracle)
ALGOS = [name for name in ALLREDUCE if name != "mpi"]


def _assert_allreduce_results(path, n):
    checked = 0
    first = np.load(path / "rank0.npz")
    for r in range(n):
        res = np.load(path / f"rank{r}.npz")
        for key in res.files:
            if not key.endswith("|got"):
                continue
            base = key[: -len("|got")]
            got, ref = res[key], res[base + "|ref"]
            assert got.shape == ref.shape and got.dtype == ref.dtype, base
            if got.dtype.kind == "i":
                assert np.array_equal(got, ref), base
            else:
                tol = 1e-5 if got.dtype == np.float32 else 1e-12
                np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * n, err_msg=base)
            # every rank holds the very same bits (replicated training relies on it)
            assert np.array_equal(got, first[key]), f"{base}: rank {r} differs from rank 0"
            checked += 1
    return checked


@pytest.mark.mpi
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_every_allreduce_matches_mpi(mpirun, tmp_path, n):
    # lengths 0, 1, n-1, n, n+1, 1009 (prime), 2^20; float32/float64/int32/int64; sum/mean/max/min
    mpirun(n, [os.path.join(WORKERS, "collective_cases.py"), tmp_path, *ALGOS], timeout=180)
    assert _assert_allreduce_results(tmp_path, n) >= n * len(ALGOS) * (4 * 3 * 4 + 3)


@pytest.mark.mpi
@pytest.mark.parametrize("colors", ["0,0,1,1", "0,0,1,1,1", "0,1,1", "0,1,0,1", "0,0,0,1,1"])
def test_hierarchical_on_declared_nodes_matches_mpi(mpirun, tmp_path, colors):
    # nodes declared per rank (one machine): equal, unequal (a fold), interleaved ranks
    n = len(colors.split(","))
    mpirun(n, [os.path.join(WORKERS, "collective_cases.py"), tmp_path, "hierarchical"], timeout=180,
           env={"HPCTRAIN_TEST_NODE_COLORS": colors})
    assert _assert_allreduce_results(tmp_path, n) >= n * (4 * 3 * 4 + 3)


def _misc_checks(path, n):
    results = [json.loads((path / f"rank{r}.json").read_text()) for r in range(n)]
    bad = {k: v[1] for res in results for k, v in res["checks"].items() if not v[0]}
    assert not bad, bad
    return results


@pytest.mark.mpi
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_gossip_multips_sparse_staged(mpirun, tmp_path, n):
    results = _misc_checks_run(mpirun, tmp_path, n)
    names = results[0]["checks"]
    for topo in ("ring", "torus", "exponential", "complete", "star"):
        assert names[f"gossip-step|{topo}"][0] and names[f"gossip-rate|{topo}"][0]
    assert any(k.startswith("staged|") for k in names)
    assert any(k.startswith("sparse|ring") for k in names)
    assert sum(k.startswith("ring-pipelined|") for k in names) == 2 * (13 * n + 1)
    assert names["ring-pipelined-scratch"][0]
    assert sum(k.startswith("mps-segmented|") for k in names) == 2 * (13 * n + 1)
    assert sum(k.startswith("mps-segmented-bits|") for k in names) == 2
    if n > 1:
        assert any(k.startswith("mps-dedicated|") for k in names)


def _misc_checks_run(mpirun, tmp_path, n):
    mpirun(n, [os.path.join(WORKERS, "collective_misc.py"), tmp_path, 3], timeout=120)
    return _misc_checks(tmp_path, n)


@pytest.mark.mpi
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_fuzz_lengths_against_mpi(tmp_path_factory, n, seed):
    # one mpiexec launch per example; inside it 12 random lengths x every algorithm
    out = tmp_path_factory.mktemp("fuzz")
    run_mpi(n, [os.path.join(WORKERS, "collective_misc.py"), out, seed, "fuzz-only"], timeout=120, cwd=out)
    results = _misc_checks(out, n)
    assert len(results[0]["checks"]) >= 12 * len(ALGOS)
