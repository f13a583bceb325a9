"""Ctrl-C: SIGINT to the whole process group (what a terminal sends) stops every rank at
the same step with one line on stderr and exit 130, writing a checkpoint when
checkpointing is on; nothing else from hpctrain or MPI (beyond mpiexec's own notice)."""

import os
import re
import signal
import subprocess
import time

import pytest

from hpctrain.checkpoint import list_checkpoints, read_checkpoint, verify_checkpoint
from mpiutil import HPCTRAIN, kill_group, mpiexec_cmd, run_mpi

TRAIN = [HPCTRAIN, "train", "--dataset", "synthetic", "--batch-size", "32", "--epochs", "500", "-q"]


def _ctrl_c(n, run_dir, extra, ready):
    proc = subprocess.Popen(mpiexec_cmd(n) + [*TRAIN, "--out", str(run_dir), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "HPCTRAIN_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    try:
        t_end = time.monotonic() + 90
        while not ready() and time.monotonic() < t_end:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert ready(), "the run never got going"
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole foreground group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    return proc.returncode, out, err


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("checkpointing", [True, False])
def test_ctrl_c_one_line_exit_130(tmp_path, n, checkpointing):
    run_dir = tmp_path / "run"
    extra = ["--checkpoint-every", "40steps", "--keep", "0"] if checkpointing else []
    ready = (lambda: bool(list_checkpoints(run_dir))) if checkpointing else \
        (lambda: (run_dir / "config.toml").exists())  # written just before the loop starts
    rc, out, err = _ctrl_c(n, run_dir, extra, ready)
    lines = [x for x in err.splitlines() if x.strip()]
    assert rc == 130, (rc, out, err)
    assert len(lines) == 1, err
    m = re.fullmatch(r"hpctrain: interrupted: SIGINT at step (\d+): (.*)", lines[0])
    assert m, lines[0]
    assert [x for x in out.splitlines() if x.strip() and not x.startswith("[mpiexec@")] == [], out
    step = int(m.group(1))
    if checkpointing:
        newest = max(list_checkpoints(run_dir), key=lambda p: read_checkpoint(p).meta["step"])
        assert read_checkpoint(newest).meta["step"] == step and newest in m.group(2)
        assert all(verify_checkpoint(p) == [] for p in list_checkpoints(run_dir))
        res = run_mpi(n, [*TRAIN[:-3], "--epochs", str(step // (12000 // n // 32) + 1), "-q", "--out", run_dir,
                          *extra, "--resume", "latest"], timeout=120)
        assert res.returncode == 0
    else:
        assert "nothing saved" in m.group(2) and not list_checkpoints(run_dir)
