"""Each rank's BLAS pool is sized to its share of the node's cores."""

import os

import pytest

from hpctrain.threads import default_threads, default_thread_env, local_ranks, slurm_tasks_per_node
from mpiutil import run_mpi


def test_local_ranks_from_launchers():
    assert local_ranks({}) == 1
    assert local_ranks({"MPI_LOCALNRANKS": "4"}) == 4
    assert local_ranks({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"}) == 3
    assert local_ranks({"SLURM_TASKS_PER_NODE": "2(x3)", "SLURM_PROCID": "0"}) == 2
    assert local_ranks({"SLURM_TASKS_PER_NODE": "2(x3)"}) == 1  # not launched by srun
    # a heterogeneous allocation: this node's entry (SLURM_NODEID), the step's list first
    het = {"SLURM_TASKS_PER_NODE": "3(x2),1", "SLURM_PROCID": "6"}
    assert [local_ranks({**het, "SLURM_NODEID": str(i)}) for i in range(3)] == [3, 3, 1]
    assert local_ranks({**het, "SLURM_NODEID": "1", "SLURM_STEP_TASKS_PER_NODE": "2,1,1"}) == 1


def test_slurm_tasks_per_node_expands_slurms_list():
    assert slurm_tasks_per_node("4") == [4]
    assert slurm_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    assert slurm_tasks_per_node("1,2(x2)") == [1, 2, 2]
    assert slurm_tasks_per_node("") == [] and slurm_tasks_per_node("x(2)") == []


def test_default_threads_divides_cores():
    cores = len(os.sched_getaffinity(0))
    assert default_threads({"MPI_LOCALNRANKS": "1"}) == cores
    assert default_threads({"MPI_LOCALNRANKS": str(cores * 4)}) == 1
    assert default_threads({"HPCTRAIN_THREADS": "3", "MPI_LOCALNRANKS": "64"}) == 3


def test_user_setting_wins():
    env = {"OMP_NUM_THREADS": "7", "MPI_LOCALNRANKS": "2"}
    n = default_thread_env(env)
    assert env["OMP_NUM_THREADS"] == "7"
    assert env["OPENBLAS_NUM_THREADS"] == str(n)


@pytest.mark.mpi
def test_ranks_get_their_share_under_mpiexec(tmp_path):
    code = (
        "import hpctrain, numpy, os; from threadpoolctl import threadpool_info;"
        "open(os.path.join(os.environ['OUT'], os.environ['PMI_RANK']), 'w').write("
        "'%s %d' % (os.environ['OPENBLAS_NUM_THREADS'], max([p['num_threads'] for p in threadpool_info()] or [0])))"
    )
    cores = len(os.sched_getaffinity(0))
    unset = {k: None for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "HPCTRAIN_THREADS")}
    run_mpi(4, ["-c", code], timeout=60, env={**unset, "OUT": str(tmp_path)})
    want = max(1, cores // 4)
    lines = [(tmp_path / str(r)).read_text().split() for r in range(4)]
    for var, live in lines:
        assert int(var) == want
        assert int(live) <= want
