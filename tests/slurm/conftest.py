"""Fixtures of the Slurm tests: one private Slurm cluster per session (see cluster.py).

The cluster starts when a test first asks for ``slurm``; when Slurm cannot be installed or
started those tests are skipped with the reason, except in CI (``CI=true``), where that is
a failure: CI must run them. ``HPCTRAIN_SLURM_TESTS=0`` skips them everywhere.
"""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from cluster import SlurmCluster, SlurmUnavailable, slurm_unavailable_reason  # noqa: E402


def _unavailable(reason):
    if os.environ.get("CI", "").lower() == "true" and os.environ.get("HPCTRAIN_SLURM_TESTS") != "0":
        pytest.fail(f"CI must run the Slurm tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm():
    """A running :class:`SlurmCluster`; stopped (jobs cancelled, daemons ended) at the end."""
    reason = slurm_unavailable_reason()
    if reason:
        _unavailable(reason)
    # not under pytest's tmp dir: munged wants every directory of its socket path
    # executable for all users, and pytest's base directory is private
    root = tempfile.mkdtemp(prefix="hpctrain-slurm-")
    cluster = SlurmCluster(root)
    try:
        try:
            cluster.start()
        except SlurmUnavailable as exc:
            _unavailable(f"could not start a private Slurm cluster: {exc}")
        yield cluster
    finally:
        cluster.stop()
        if not os.environ.get("HPCTRAIN_KEEP_SLURM"):
            shutil.rmtree(root, ignore_errors=True)
