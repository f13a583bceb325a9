"""Misuse of hpctrain.torch: one clear line, exit status 2, no traceback, never a hang;
outside an MPI launch it runs as one rank and says so."""

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "misuse.py")

CASES = {
    "shapes": "the model differs across ranks",
    "shapes-broadcast": "tensors differ from rank 0's",
    "dtype": "takes float32 or float64 parameters",
    "device": "takes cpu or cuda tensors",
    "step-before-backward": "step() called before any backward()",
    "bucket0": "bucket size must be > 0",
    "bucket-big": "larger than the model",
    "bucket-text": "bucket size must be a number of MiB",
    "bucket-negative": "bucket size must be > 0",
    "mixed-dtype": "all parameters must share one dtype and device",
    "double-backward": "a second backward before step()",
    "closure": "step() takes no closure",
    "ckpt-corrupt": "not a readable checkpoint",
    "ckpt-other-wrapper": "was written by torch-gradient, this run uses dmsgd",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_misuse_ends_every_rank_with_one_line(mpirun, tmp_path, case):
    res = mpirun(2, [SCRIPT, case, str(tmp_path / "ck.h5")], timeout=60, check=False)
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("hpctrain: error") and CASES[case] in lines[0], lines[0]
    assert "Traceback" not in res.stderr and "trained one step" not in res.stdout


def test_outside_mpi_runs_as_one_rank_and_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "SLURM", "OMPI", "HYD", "MPI_"))}
    res = subprocess.run([sys.executable, SCRIPT, "ok"], capture_output=True, text=True, timeout=60, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "running as one rank" in res.stderr
    assert "trained one step on 1 rank(s)" in res.stdout


def test_mpi_without_thread_multiple_falls_back_to_no_overlap_with_one_line(mpirun):
    res = mpirun(2, [SCRIPT, "overlap-refused"], timeout=60, env={"MPI4PY_RC_THREAD_LEVEL": "serialized"})
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "overlap off: MPI granted thread level 'serialized'" in lines[0], res.stderr
    assert "trained one step on 2 rank(s), overlap [0, 0]" in res.stdout, res.stdout
    assert "note: overlap off: MPI granted thread level 'serialized', not 'multiple'" in res.stdout, res.stdout


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_auto_overlap_is_off_where_the_ranks_fill_the_cores(mpirun):
    """overlap="auto" (the default) on 2 ranks pinned to one core: no communication thread."""
    res = mpirun(2, [shutil.which("taskset"), "-c", "0", sys.executable, SCRIPT, "auto"], timeout=60)
    assert "trained one step on 2 rank(s), overlap [0, 0]" in res.stdout, res.stdout
    assert not res.stderr.strip(), res.stderr  # auto says nothing: opt.overlap and opt.overlap_note tell
    assert ("note: overlap off: 2 ranks share 1 core on this machine (overlap needs a free core per rank; "
            "overlap=True forces it)") in res.stdout, res.stdout


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_explicit_overlap_where_the_ranks_fill_the_cores_runs_and_says_so(mpirun):
    res = mpirun(2, [shutil.which("taskset"), "-c", "0", sys.executable, SCRIPT, "forced"], timeout=60)
    assert "trained one step on 2 rank(s), overlap [1, 1]" in res.stdout, res.stdout
    assert ("note: overlap on, although 2 ranks share 1 core on this machine (overlap needs a free core per "
            "rank)") in res.stdout, res.stdout


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
@pytest.mark.parametrize("per_rank", [1, 2])
def test_auto_overlap_counts_the_cores_each_rank_is_bound_to(mpirun, per_rank):
    """Rank r bound to cores [r*per_rank, (r+1)*per_rank): on with two of its own, off with one."""
    if not set(range(2 * per_rank)) <= os.sched_getaffinity(0):
        pytest.skip(f"needs cores 0-{2 * per_rank - 1}")
    bind = f'exec {shutil.which("taskset")} -c $((PMI_RANK*{per_rank}))-$((PMI_RANK*{per_rank}+{per_rank}-1)) "$0" "$@"'
    res = mpirun(2, ["sh", "-c", bind, sys.executable, SCRIPT, "auto"], timeout=60)
    if per_rank == 2:
        assert "trained one step on 2 rank(s), overlap [1, 1]\nnote: overlap on\n" in res.stdout, res.stdout
    else:
        assert "trained one step on 2 rank(s), overlap [0, 0]\nnote: overlap off: 1 rank has 1 core on this machine" \
            in res.stdout, res.stdout
