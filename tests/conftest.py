"""Shared pytest fixtures: launching real ``mpiexec`` jobs with a timeout."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from mpiutil import run_mpi  # noqa: E402


@pytest.fixture
def mpirun(tmp_path):
    """Call ``mpirun(n, args, timeout=...)`` to run ``mpiexec -n n python args...``."""

    def _run(n, args, timeout=120, env=None, cwd=None, check=True):
        return run_mpi(n, args, timeout=timeout, env=env, cwd=cwd or tmp_path, check=check)

    return _run
