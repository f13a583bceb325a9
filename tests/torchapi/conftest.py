"""Fixtures of the torch API tests: write the user script, launch it, read its results."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from mpiutil import run_mpi  # noqa: E402
from scripts import USER_SCRIPT  # noqa: E402


@pytest.fixture
def user_script(tmp_path):
    """``run(ranks, **cfg)`` writes the user script, runs it (``mode=single``: plain
    ``python``; otherwise ``mpiexec -n ranks``) and returns (per-rank params, per-rank
    results, the CompletedProcess)."""
    path = tmp_path / "train_user.py"
    path.write_text(USER_SCRIPT)
    count = [0]

    def run(ranks, check=True, timeout=180, **cfg):
        count[0] += 1
        out = tmp_path / f"out{count[0]}"
        out.mkdir()
        cfg = {"out": str(out), "ranks": ranks, "steps": 6, "batch": 4, **cfg}
        if cfg["mode"] == "single":
            env = dict(os.environ, OMP_NUM_THREADS="1")
            res = subprocess.run([sys.executable, str(path), json.dumps(cfg)], capture_output=True, text=True,
                                 timeout=timeout, env=env, cwd=tmp_path)
            assert res.returncode == 0 or not check, res.stderr[-3000:]
            n = 1
        else:
            res = run_mpi(ranks, [str(path), json.dumps(cfg)], timeout=timeout, cwd=tmp_path, check=check)
            n = ranks
        if res.returncode != 0:
            return None, None, res
        params = [np.load(out / f"params-{r}.npy") for r in range(n)]
        results = [json.loads((out / f"result-{r}.json").read_text()) for r in range(n)]
        return params, results, res

    return run
