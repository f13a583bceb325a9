"""Fixtures of the Slurm tests: one private Slurm cluster per session (see cluster.py).

The cluster starts when a test first asks for ``slurm`` (one node) or ``slurm_nodes`` (four
emulated nodes, each a network namespace with its own slurmd); when Slurm cannot be installed or
started those tests are skipped with the reason, except in CI (``CI=true``), where that is
a failure: CI must run them. ``HPCTRAIN_SLURM_TESTS=0`` skips them everywhere.
"""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from cluster import MultiNodeSlurm, SlurmCluster, SlurmUnavailable, slurm_unavailable_reason  # noqa: E402


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
    yield from _running(SlurmCluster(root), "a private Slurm cluster")


def _running(cluster, what):
    """Start ``cluster``, yield it, and stop it (and remove its directory) however the
    tests end."""
    try:
        try:
            cluster.start()
        except SlurmUnavailable as exc:
            _unavailable(f"could not start {what}: {exc}")
        yield cluster
    finally:
        cluster.stop()
        if not os.environ.get("HPCTRAIN_KEEP_SLURM"):
            shutil.rmtree(cluster.root, ignore_errors=True)


#: nodes of the multi-node cluster: 4 lets a 4-rank job lose one and go on with 3
NODES = 4


def multinode_possible():
    """Skip (fail in CI) with the reason when a multi-node Slurm cannot run here."""
    reason = slurm_unavailable_reason()
    if reason is None:
        from hpctrain.emulator import available

        reason = available()
        if reason:
            reason = f"the multi-node Slurm runs on the cluster emulator: {reason}"
    if reason:
        _unavailable(reason)


@pytest.fixture
def multinode_slurm_possible():
    """For tests that start a multi-node Slurm of their own (jobs/chaos_soak.py): skips
    where :func:`slurm_nodes` would."""
    multinode_possible()


@pytest.fixture(scope="session")
def slurm_nodes():
    """A running :class:`MultiNodeSlurm` of ``NODES`` emulated nodes (2 CPUs each, 10 Gbit/s
    links); torn down at the end: jobs cancelled, daemons stopped, namespaces deleted."""
    multinode_possible()
    cluster = MultiNodeSlurm(tempfile.mkdtemp(prefix="hpctrain-slurmN-"), nodes=NODES, cpus=2)
    yield from _running(cluster, "a multi-node Slurm cluster")
    left = cluster.left_behind()
    assert left == {"processes": [], "namespaces": []}, f"the multi-node Slurm left behind {left}"


def _git_status():
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        res = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


@pytest.fixture(scope="module", autouse=True)
def repository_untouched():
    """The Slurm tests write nothing into the repository (no slurm-*.out at its root):
    ``git status --porcelain`` is the same after each test module as before it."""
    before = _git_status()
    yield
    after = _git_status()
    if before is not None and after is not None:
        assert after == before, f"the Slurm tests changed the repository:\n{after}"
