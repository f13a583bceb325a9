"""The repository holds no test output: no slurm-*.out at its root, and git ignores them."""

import glob
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_no_slurm_output_committed():
    assert glob.glob(os.path.join(REPO, "slurm-*.out")) == []


def test_slurm_output_is_ignored():
    if not os.path.exists(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout")
    res = subprocess.run(["git", "check-ignore", "-q", "slurm-123.out"], cwd=REPO, timeout=30)
    assert res.returncode == 0
