"""The stall inspector names the rank that keeps the others waiting: one rank sleeps inside
a step (a ``python:`` model), rank 0 prints which rank has not arrived and where it is;
``--stall-timeout`` aborts the job with that message and exit status 4."""

import os

import pytest

from mpiutil import HPCTRAIN, WORKERS, run_mpi

MODEL = "python:" + os.path.join(WORKERS, "sleepy_model.py") + ":make"


def _train(tmp_path, ranks, sleepy, seconds, *flags):
    env = {"SLEEPY_RANK": str(sleepy), "SLEEPY_STEP": "3", "SLEEPY_SECONDS": str(seconds)}
    return run_mpi(ranks, [HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "-q", "--model", MODEL,
                           "--out", tmp_path / "run", *flags], timeout=240, env=env, cwd=tmp_path, check=False)


@pytest.mark.parametrize("ranks,sleepy", [(2, 1), (3, 2)])
def test_stall_warning_names_the_sleeping_rank(tmp_path, ranks, sleepy):
    r = _train(tmp_path, ranks, sleepy, 8, "--stall-warning", "2")
    assert r.returncode == 0, r.stderr
    warnings = [x for x in r.stderr.splitlines() if "stall:" in x]
    assert len(warnings) == 1, r.stderr  # once per stall, not once per second
    line = warnings[0]
    assert line.startswith("hpctrain: warning: stall: rank ")
    assert f"not arrived: rank {sleepy} (in compute at step 3 for " in line, line
    others = [q for q in range(ranks) if q != sleepy]
    assert all(f"rank {q} (" not in line.split("not arrived:")[1] for q in others), line


def test_no_warning_without_a_stall(tmp_path):
    r = _train(tmp_path, 2, 1, 0, "--stall-warning", "2")
    assert r.returncode == 0 and "stall" not in r.stderr, r.stderr


def test_stall_timeout_aborts_the_job(tmp_path):
    r = _train(tmp_path, 3, 1, 600, "--stall-warning", "2", "--stall-timeout", "5")
    assert r.returncode == 4, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines[-1].startswith("hpctrain: error: stall: rank "), r.stderr
    assert "not arrived: rank 1 (in compute at step 3" in lines[-1] and "--stall-timeout 5 s (exit 4)" in lines[-1]
    assert "Traceback" not in r.stderr and len(lines) == 2, r.stderr  # the warning, then the error
