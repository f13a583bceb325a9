"""Ring allreduce equals MPI's Allreduce on 1..5 real MPI ranks."""

import os

import numpy as np
import pytest

from mpiutil import WORKERS


@pytest.mark.mpi
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_ring_matches_mpi_allreduce(mpirun, tmp_path, n):
    mpirun(n, [os.path.join(WORKERS, "allreduce_cases.py"), tmp_path, "ring"], timeout=180)
    checked = 0
    for r in range(n):
        res = np.load(tmp_path / f"rank{r}.npz")
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
            checked += 1
    # 4 dtypes x 2 ops x distinct lengths, on every rank
    assert checked >= n * 4 * 2 * 4


@pytest.mark.mpi
def test_ring_result_identical_on_all_ranks(mpirun, tmp_path):
    mpirun(3, [os.path.join(WORKERS, "allreduce_cases.py"), tmp_path, "ring"], timeout=120)
    first = np.load(tmp_path / "rank0.npz")
    for r in (1, 2):
        other = np.load(tmp_path / f"rank{r}.npz")
        for key in first.files:
            if key.endswith("|got"):
                assert np.array_equal(first[key], other[key]), key
