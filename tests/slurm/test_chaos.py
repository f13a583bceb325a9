"""The chaos soak, short: jobs/chaos_soak.py brings up its own four-node emulated Slurm, runs
one deterministic job through three faults of three different kinds (a rank SIGKILLed, USR1
preemption, the checkpoint directory full), each followed by a requeue and a resume, and
passes only when the job's final parameters equal an uninterrupted run's bit for bit, every
checkpoint verifies, none is lost and nothing (process, namespace) is left behind.

The long soak (>= 10 faults of every kind) is run by hand, see docs/cluster.md.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from jobutil import REPO

from hpctrain.emulator import list_clusters

pytestmark = pytest.mark.mpi

SOAK = os.path.join(REPO, "jobs", "chaos_soak.py")
KINDS = ("rank", "preempt", "diskfull")  # the three ways back: operator requeue, self-requeue, clean write failure


def test_short_chaos_soak_passes(multinode_slurm_possible):
    # not under pytest's tmp dir: munged wants every directory of its socket path executable for all
    root = tempfile.mkdtemp(prefix="hpctrain-chaos-")
    try:
        proc = subprocess.Popen([sys.executable, SOAK, "--faults", "3", "--seed", "7", "--kinds", ",".join(KINDS),
                                 "--out", os.path.join(root, "soak")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            out, err = proc.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the chaos soak hung (900 s):\n{(out + err)[-6000:]}")
        res = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        own = f"hpct-c{proc.pid % 10**6}"  # the soak's cluster (chaos_soak.py names it by its pid)
        text = res.stdout + res.stderr
        print(text)  # pytest -s shows the table
        assert res.returncode == 0 and text.rstrip().endswith("PASS"), text[-6000:]
        rows = [line.split() for line in text.splitlines() if line[:3].strip().isdigit() and len(line.split()) == 7]
        assert sorted(r[1] for r in rows) == sorted(KINDS), text
        for _, _, _, _, at_fault, reached, _ in rows:  # every fault was followed by progress
            assert int(reached) > int(at_fault), text
        assert "inspect --verify:" in text, text
        # its own cluster only: other emulated clusters may come and go on a shared machine
        assert own not in list_clusters(), f"the soak left a network namespace ({own})"
        kept = os.path.join(root, "soak", "chaos", "checkpoints-kept")
        assert any(n.startswith("ckpt-") for n in os.listdir(kept)), kept
    finally:
        if not os.environ.get("HPCTRAIN_KEEP_SLURM"):
            shutil.rmtree(root, ignore_errors=True)


def test_chaos_soak_refuses_bad_arguments():
    """Bad arguments: one line, exit 2, before anything starts (no root or Slurm needed)."""
    for args in (["--kinds", "meteor"], ["--faults", "0"], ["--faults", "x"]):
        res = subprocess.run([sys.executable, SOAK, *args], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert res.returncode == 2 and "Traceback" not in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "error:" in res.stderr, (args, res.stderr)


def test_fault_plan_is_seeded_and_covers_every_kind():
    sys.path.insert(0, os.path.dirname(SOAK))
    try:
        import chaos_soak
    finally:
        sys.path.remove(os.path.dirname(SOAK))
    seq, _ = chaos_soak.plan(12, 5, chaos_soak.KINDS)
    assert len(seq) == 12 and set(seq) == set(chaos_soak.KINDS)  # every kind at least once
    assert seq == chaos_soak.plan(12, 5, chaos_soak.KINDS)[0]  # the same seed, the same faults
    assert any(chaos_soak.plan(12, s, chaos_soak.KINDS)[0] != seq for s in range(6, 10))
    three, _ = chaos_soak.plan(3, 1, KINDS)
    assert sorted(three) == sorted(KINDS)  # fewer faults than kinds: all different
