"""Fixtures of the emulator tests: emulated clusters (network namespaces), always torn down.

Where the machine cannot emulate (no root, namespaces or tbf) the tests are skipped with the
reason, except in CI (``CI=true``) as root, where that is a failure: CI must run them.
``HPCTRAIN_EMULATOR_TESTS=0`` skips them everywhere.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

from hpctrain.emulator import Cluster, available, teardown  # noqa: E402


def _unavailable(reason):
    if os.environ.get("HPCTRAIN_EMULATOR_TESTS") == "0":
        pytest.skip("HPCTRAIN_EMULATOR_TESTS=0")
    if os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0:
        pytest.fail(f"CI must run the emulator tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def emulator_ok():
    """Skip (or, in CI as root, fail) unless this machine can emulate a cluster."""
    if os.environ.get("HPCTRAIN_EMULATOR_TESTS") == "0":
        pytest.skip("HPCTRAIN_EMULATOR_TESTS=0")
    reason = available()
    if reason:
        _unavailable(reason)
    return True


@pytest.fixture
def cluster(emulator_ok, request):
    """``cluster(nodes, ranks_per_node, rate, node_rates=None)``: a cluster that is up; every one
    made is torn down when the test ends, passed or failed (a finalizer)."""
    made = []

    def make(nodes=2, ranks_per_node=1, rate="1gbit", node_rates=None):
        name = f"hpct-t{os.getpid() % 100000}{len(made)}"[:13]
        c = Cluster(nodes, ranks_per_node, rate, node_rates, name=name)
        made.append(c)
        return c.up()

    def finish():
        for c in made:
            teardown(c.name)
    request.addfinalizer(finish)
    return make
