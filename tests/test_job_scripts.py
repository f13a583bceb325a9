"""The Slurm scripts as a benchmark or site user expects them: bench.sbatch takes its nodes
exclusively, srun binds ranks to cores (site-overridable), and a job that spans several
nodes warns, in one line, when the venv's MPICH wheel from PyPI would carry it."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = os.path.join(REPO, "jobs", "common.sh")


def _sh(script, **env):
    full = {"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp")}
    full.update({k: str(v) for k, v in env.items()})
    return subprocess.run(["bash", "-c", f'. "{COMMON}"; {script}'], capture_output=True, text=True, timeout=60,
                          env=full)


def test_bench_sbatch_is_exclusive():
    lines = open(os.path.join(REPO, "jobs", "bench.sbatch"), encoding="utf-8").read().splitlines()
    assert "#SBATCH --exclusive" in lines


def test_srun_binds_ranks_to_cores_unless_the_site_says_otherwise():
    res = _sh('LAUNCHER=srun hpctrain_launcher_cmd; echo "${LAUNCH[*]}"')
    assert res.returncode == 0, res.stderr
    assert "--cpu-bind=cores" in res.stdout.split()
    res = _sh('LAUNCHER=srun hpctrain_launcher_cmd; echo "${LAUNCH[*]}"', SRUN_CPU_BIND="map_cpu:0,2")
    assert "--cpu-bind=map_cpu:0,2" in res.stdout.split() and "--cpu-bind=cores" not in res.stdout


def _has_mpich_wheel():
    try:
        import importlib.metadata as m

        m.distribution("mpich")
        return True
    except Exception:
        return False


@pytest.mark.skipif(not _has_mpich_wheel(), reason="this Python has no MPICH wheel")
def test_mpich_wheel_under_a_multi_node_allocation_warns_once():
    res = _sh('LAUNCHER=srun hpctrain_launcher_cmd', SLURM_JOB_NUM_NODES=2)
    warn = [x for x in res.stdout.splitlines() if "WARNING" in x]
    assert len(warn) == 1 and "MPICH wheel" in warn[0] and "2-node" in warn[0], res.stdout
    one = _sh('LAUNCHER=srun hpctrain_launcher_cmd', SLURM_JOB_NUM_NODES=1)
    assert "WARNING" not in one.stdout
    site = _sh('LAUNCHER=srun hpctrain_launcher_cmd', SLURM_JOB_NUM_NODES=2, HPCTRAIN_NO_MPI_WARNING=1)
    assert "WARNING" not in site.stdout
