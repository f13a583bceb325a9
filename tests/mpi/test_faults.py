"""Faults: one rank's exception ends the job; SIGKILL ends it; SIGTERM/SIGUSR1 checkpoint
and stop, and the resumed run is bit-identical; NaN never reaches a checkpoint."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from hpctrain.checkpoint import list_checkpoints, verify_checkpoint
from mpiutil import HPCTRAIN, WORKERS, descendants, kill_group, mpiexec_cmd, run_mpi

FAULT = os.path.join(WORKERS, "fault_run.py")
TRAIN = ["train", "--dataset", "synthetic", "--dtype", "float64", "--batch-size", "64", "-q"]


def final_params(run_dir):
    with h5py.File(list_checkpoints(run_dir)[-1], "r") as f:
        return f["params"][()], int(f.attrs["step"])


@pytest.mark.mpi
@pytest.mark.parametrize("n,k,s", [(2, 1, 3), (3, 0, 5), (4, 3, 2), (5, 2, 7)])
def test_exception_on_one_rank_ends_job(tmp_path, n, k, s):
    t0 = time.monotonic()
    res = run_mpi(n, [FAULT, "raise", k, s, "--", *TRAIN, "--epochs", "50", "--out", tmp_path / "r"],
                  timeout=60, check=False)
    elapsed = time.monotonic() - t0
    assert res.returncode != 0
    assert f"rank {k}: RuntimeError: injected fault at step {s}" in res.stderr
    assert elapsed < 10 + 3, f"job took {elapsed:.1f}s to end"  # 10 s bound + process start-up


def _start(n, args, cwd):
    return subprocess.Popen(mpiexec_cmd(n) + [sys.executable, *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "HPCTRAIN_THREADS": "1", "PYTHONUNBUFFERED": "1"})


def _wait_for_checkpoint(run_dir, proc, timeout=60):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if list_checkpoints(run_dir):
            return
        if proc.poll() is not None:
            raise AssertionError(f"job ended early: {proc.communicate()}")
        time.sleep(0.05)
    kill_group(proc)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.mpi
@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_checkpoints_and_resume_is_bit_identical(tmp_path, sig):
    n, common = 2, [*TRAIN, "--epochs", "3", "--checkpoint-every", "10steps", "--keep", "0"]
    straight = tmp_path / "straight"
    run_mpi(n, [HPCTRAIN, *common, "--out", straight], timeout=120)
    want, want_step = final_params(straight)

    run = tmp_path / "run"
    proc = _start(n, [FAULT, "sleep", 0, 1, "--", *common, "--out", run], tmp_path)
    try:
        _wait_for_checkpoint(run, proc)
        os.kill(proc.pid, sig)  # mpiexec forwards it to every rank
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert proc.returncode == 75, (proc.returncode, err)
    assert f"stopped: {signal.Signals(sig).name} at step" in err
    stopped_at = int(h5py.File(list_checkpoints(run)[-1], "r").attrs["step"])
    assert 0 < stopped_at < want_step
    assert all(not verify_checkpoint(p) for p in list_checkpoints(run))

    run_mpi(n, [HPCTRAIN, *common, "--out", run, "--resume", "latest"], timeout=120)
    got, got_step = final_params(run)
    assert got_step == want_step
    assert np.array_equal(got, want)


@pytest.mark.mpi
def test_sigkill_of_a_rank_ends_job_and_checkpoint_survives(tmp_path):
    run = tmp_path / "run"
    proc = _start(3, [FAULT, "sleep", 1, 1, "--", *TRAIN, "--epochs", "50", "--checkpoint-every", "5steps",
                      "--out", run], tmp_path)
    try:
        _wait_for_checkpoint(run, proc)
        time.sleep(0.3)
        ranks = [p for p in descendants(proc.pid) if b"fault_run.py" in open(f"/proc/{p}/cmdline", "rb").read()]
        assert ranks, "no rank processes found"
        os.kill(ranks[-1], signal.SIGKILL)
        t0 = time.monotonic()
        proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 30
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert proc.returncode != 0
    found = list_checkpoints(run)
    assert found and verify_checkpoint(found[-1]) == []


@pytest.mark.mpi
def test_nan_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    res = run_mpi(2, [FAULT, "nan", 1, 13, "--", *TRAIN, "--epochs", "5", "--checkpoint-every", "4steps",
                      "--keep", "0", "--out", run], timeout=60, check=False)
    assert res.returncode == 3, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "NaN/Inf at step 13" in lines[0] and "Traceback" not in res.stderr
    found = list_checkpoints(run)
    assert [int(os.path.basename(p)[5:14]) for p in found] == [4, 8, 12]
    for p in found:
        assert verify_checkpoint(p) == []
        assert np.isfinite(h5py.File(p, "r")["params"][()]).all()


@pytest.mark.mpi
@pytest.mark.parametrize("n,bad", [(2, 1), (4, 2), (5, 4)])
def test_bad_input_on_one_rank_ends_every_rank(tmp_path, n, bad):
    t0 = time.monotonic()
    res = run_mpi(n, [os.path.join(WORKERS, "one_rank_bad_data.py"), bad, "--", *TRAIN, "--out", tmp_path / "r"],
                  timeout=60, check=False)
    assert time.monotonic() - t0 < 15
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert f"/scratch/node{bad}/train.h5: truncated" in lines[0]
