"""A malformed HPCTRAIN_THREADS is one line and exit 2 on every launch form (the
import-time default ignores it; the run reports it instead of silently using its own)."""

import os
import subprocess

import pytest

from mpiutil import HPCTRAIN, run_mpi


@pytest.mark.parametrize("value", ["abc", "0", "-3", "99999"])
@pytest.mark.parametrize("ranks", [1, 2])
def test_bad_thread_env_is_one_line(tmp_path, value, ranks):
    cmd = [HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "-q", "--out", str(tmp_path / "run")]
    if ranks > 1:
        res = run_mpi(ranks, cmd, timeout=120, env={"HPCTRAIN_THREADS": value}, check=False)
    else:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "HPCTRAIN_THREADS": value})
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "HPCTRAIN_THREADS must be an integer" in lines[0] and repr(value) in lines[0], lines


def test_good_thread_env_trains(tmp_path):
    res = subprocess.run([HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "-q", "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HPCTRAIN_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    assert "final test accuracy" in res.stdout
