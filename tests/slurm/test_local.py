"""jobs/local.sh (the workstation twin of train.sbatch): no Slurm needed.

A run, SIGUSR1 to the script mid-run (checkpoint, exit 75), the same command again
(resumes from the latest checkpoint) ends bit-identical to an uninterrupted run.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from mpiutil import kill_group

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL = os.path.join(REPO, "jobs", "local.sh")

pytestmark = pytest.mark.mpi


def _env(run_dir):
    return {**os.environ, "VENV": sys.prefix, "HPCTRAIN_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "RUN_DIR": str(run_dir), "CONFIG": "jobs/configs/tiny-a.toml", "CHECKPOINT_EVERY": "1steps",
            "KEEP": "2", "TRAIN_ARGS": "--epochs 3"}


def _start(run_dir):
    return subprocess.Popen(["bash", LOCAL, "2", "-q"], cwd=REPO, env=_env(run_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(proc, timeout=90):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"jobs/local.sh hung for {timeout}s and was killed") from None
    finally:
        if proc.poll() is None:
            kill_group(proc)
    return proc.returncode, out


def _final(run_dir):
    path = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.h5")))[-1]
    with h5py.File(path, "r") as f:
        return f["params"][()], int(f.attrs["step"])


def test_local_sh_sigusr1_checkpoints_and_rerun_resumes_bit_identical(tmp_path):
    straight = tmp_path / "straight"
    rc, out = _finish(_start(straight))
    assert rc == 0, out
    assert "running: mpiexec -n 2 hpctrain train" in out, out
    want, want_step = _final(straight)

    run = tmp_path / "run"
    proc = _start(run)
    try:
        t_end = time.monotonic() + 60
        while not glob.glob(str(run / "checkpoints" / "ckpt-*.h5")):
            assert proc.poll() is None, f"local.sh ended before its first checkpoint: {proc.communicate()}"
            assert time.monotonic() < t_end, "no checkpoint after 60 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGUSR1)  # the script, not mpiexec: it must forward the signal
        rc, out = _finish(proc)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert rc == 75, out
    assert "got SIGUSR1; forwarding it to the job step" in out, out
    assert "stopped: SIGUSR1 at step" in out and f"RUN_DIR={run} bash jobs/local.sh 2" in out, out
    stopped_at = _final(run)[1]
    assert 0 < stopped_at < want_step

    rc, out = _finish(_start(run))
    assert rc == 0, out
    assert "resuming from the latest checkpoint" in out and "--resume latest" in out, out
    got, got_step = _final(run)
    assert got_step == want_step
    assert np.array_equal(got, want)
