"""Helpers of the Slurm tests: submit a jobs/ script with overrides for a tiny run, wait for
it with a timeout, read what it wrote."""

import glob
import json
import os
import sys

import h5py
import numpy as np

__all__ = ["REPO", "JOBS", "VENV", "TINY", "job_env", "output_of", "submit", "wait_done", "final_checkpoint",
           "check_run_dir", "check_preempted_run"]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOBS = os.path.join(REPO, "jobs")
VENV = sys.prefix
TINY = "jobs/configs/tiny-a.toml"


def job_env(tmp_path, **extra):
    env = {"RUN_ROOT": tmp_path, "VENV": VENV, "HPCTRAIN_THREADS": 1, "PYTHONUNBUFFERED": 1,
           "HPCTRAIN_CACHE": tmp_path / "cache"}
    env.update(extra)
    return env


def output_of(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return f"(no output file {path})"


def submit(slurm, tmp_path, script, options=(), args=(), **env):
    """sbatch jobs/SCRIPT from the repository root; output to tmp_path/<name>-<id>.out."""
    out = "%x-%A_%a.out" if any(o.startswith("--array") for o in options) else "%x-%j.out"
    return slurm.sbatch(os.path.join(JOBS, script), ["-o", str(tmp_path / out), *options],
                        env=job_env(tmp_path, **env), args=args, cwd=REPO)


def wait_done(slurm, job, out, timeout=90, **kw):
    """Wait for ``job`` to end; assert that every task COMPLETED with exit code 0."""
    try:
        tasks = slurm.wait(job, timeout=timeout, **kw)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- job output\n{output_of(out)[-4000:]}") from None
    for t in tasks:
        assert t["JobState"] == "COMPLETED" and t["ExitCode"] == "0:0", (
            f"job {t['JobId']}: {t['JobState']} exit {t['ExitCode']}\n--- output\n"
            f"{output_of(t.get('StdOut', out))[-4000:]}\n{slurm.logs(1500)}")
    return tasks


def final_checkpoint(run_dir):
    """(params, step) of the newest checkpoint in ``run_dir``."""
    path = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.h5")))[-1]
    with h5py.File(path, "r") as f:
        return f["params"][()], int(f.attrs["step"])


def check_run_dir(run_dir, epochs, world_size):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    assert [r["epoch"] for r in lines] == list(range(1, epochs + 1))
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["world_size"] == world_size
    assert glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.h5"))
    return summary


def check_preempted_run(text, job, run_dir, ref_dir, steps, epochs, world_size):
    """A job stopped by SIGUSR1 (output ``text``), requeued and resumed: the messages of each
    stage, and final parameters bit-identical to the uninterrupted run in ``ref_dir``."""
    assert "stopped: SIGUSR1 at step" in text, text
    assert f"(exit 75); requeueing job {job}" in text, text
    assert "restart 1: resuming from the latest checkpoint" in text, text
    assert "resumed from" in text and "--resume latest" in text, text
    stopped_at = int(text.split("stopped: SIGUSR1 at step ")[1].split(":")[0])
    want, want_step = final_checkpoint(ref_dir)
    got, got_step = final_checkpoint(run_dir)
    assert 0 < stopped_at < want_step == got_step == steps
    assert np.array_equal(got, want)
    check_run_dir(run_dir, epochs=epochs, world_size=world_size)
