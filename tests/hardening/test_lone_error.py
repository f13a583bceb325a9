"""An error on one rank only, outside the all-ranks agreement, ends the whole job promptly
with that rank's one line and its exit status (no hang, no traceback)."""

import os
import time

import pytest

from mpiutil import WORKERS, run_mpi

WORKER = os.path.join(WORKERS, "lone_error.py")


@pytest.mark.parametrize("ranks,bad", [(2, 1), (3, 2), (2, 0)])
def test_lone_error_ends_the_job(ranks, bad):
    t0 = time.monotonic()
    r = run_mpi(ranks, [WORKER, bad, "config"], timeout=150, check=False, env={"HPCTRAIN_EXIT_WAIT": "3"})
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2, r.stderr
    assert lines == [f"hpctrain: error: lone error on rank {bad}"], r.stderr
    assert time.monotonic() - t0 < 140  # the run_mpi timeout is the hang guard; this just documents it


@pytest.mark.parametrize("kind,line", [("alike", "hpctrain: error: alike on rank 0"),
                                        ("onroot", "hpctrain: error: on root")])
def test_agreed_errors_do_not_wait(kind, line):
    # HPCTRAIN_EXIT_WAIT far above the run_mpi timeout: only a prompt agreement passes
    r = run_mpi(3, [WORKER, 0, kind], timeout=120, check=False, env={"HPCTRAIN_EXIT_WAIT": "600"})
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2, r.stderr
    assert lines == [line], r.stderr


@pytest.mark.parametrize("ranks", [1, 2])
def test_user_thread_does_not_keep_the_job_alive(tmp_path, ranks):
    from mpiutil import HPCTRAIN

    model = "python:" + os.path.join(WORKERS, "thread_model.py") + ":make"
    r = run_mpi(ranks, [HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "-q", "--model", model,
                        "--out", tmp_path / "run"], timeout=120, cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stderr
    assert "not waiting for 1 thread(s) left running by user code (user-loop)" in r.stderr
    assert (tmp_path / "run" / "summary.json").exists()
