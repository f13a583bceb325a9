"""The jobs/ scripts across nodes: a private Slurm whose four nodes are emulated on this
machine (``MultiNodeSlurm`` in cluster.py: one slurmd per network namespace with its own
hostname, NIC, address and /dev/shm), so that MPI talks TCP between nodes and shared memory
inside them, a node can be lost, and a requeued job can come back on fewer nodes.

Every job is polled with a timeout; the fixture tears the cluster down (jobs, daemons,
namespaces) however the tests end.
"""

import glob
import json
import os
import shutil
import subprocess
import time

import h5py
import numpy as np
import pytest
from jobutil import REPO, TINY, check_preempted_run, check_run_dir, final_checkpoint, output_of, submit, wait_done
from mpiutil import HPCTRAIN, run_mpi

from hpctrain.checkpoint import list_checkpoints

pytestmark = pytest.mark.mpi

EF = "--algo gmc --compressor topk --density 0.05"  # error-feedback memory to conserve


def srun(cluster, args, timeout=120, env=None):
    """``srun --mpi=pmi2 ARGS`` on the cluster (from the head node); asserts success."""
    res = cluster.run(["srun", "--mpi=pmi2", *[str(a) for a in args]], timeout=timeout, cwd=REPO,
                      env={"HPCTRAIN_THREADS": "1", **(env or {})})
    assert res.returncode == 0, f"srun {args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res.stdout


def nic_bytes(cluster, name):
    """Bytes received + sent by node ``name``'s NIC so far."""
    out = subprocess.run(["ip", "-n", cluster.namespace(name), "-s", "-j", "link", "show", "eth0"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    stats = json.loads(out)[0]["stats64"]
    return stats["rx"]["bytes"] + stats["tx"]["bytes"]


def wait_for_checkpoint(cluster, job, run_dir, out, timeout=60):
    t_end = time.monotonic() + timeout
    while not glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.h5")):
        state = (cluster.job(job) or [{}])[0].get("JobState")
        assert state in ("PENDING", "RUNNING", "CONFIGURING"), f"job ended early: {state}\n{output_of(out)}"
        assert time.monotonic() < t_end, f"no checkpoint after {timeout} s\n{output_of(out)}"
        time.sleep(0.05)


def no_ranks_left(cluster):
    return {n: cluster.node_pids(n, ranks_only=True) for n in cluster.names if cluster.node_pids(n, ranks_only=True)}


def start_four_node_ef_job(cluster, tmp_path):
    """A 4-node, 1-rank-per-node error-feedback job, running with a checkpoint written;
    returns (job, run_dir, output file)."""
    job = submit(cluster, tmp_path, "train.sbatch", options=["-N", "4", "--ntasks-per-node=1"], CONFIG=TINY,
                 CHECKPOINT_EVERY="1epochs", KEEP=0, TRAIN_ARGS=f"--epochs 12 {EF}")
    run_dir, out = tmp_path / f"train-{job}", tmp_path / f"train-{job}.out"
    wait_for_checkpoint(cluster, job, run_dir, out)
    assert cluster.job(job)[0]["NodeList"] == "node[1-4]"
    return job, run_dir, out


def shrink(cluster, job, nodes=3):
    """Let the pending (requeued) ``job`` start on ``nodes`` nodes, one task each: what a
    user does when a node is gone for good (Slurm keeps a job's node count)."""
    res = cluster.run(["scontrol", "update", f"jobid={job}", f"NumNodes={nodes}", f"NumTasks={nodes}"])
    assert res.returncode == 0, res.stderr


def test_info_under_srun_reports_the_nodes(slurm_nodes):
    text = srun(slurm_nodes, ["-N", "2", "--ntasks-per-node=2", HPCTRAIN, "info"], env={"HPCTRAIN_THREADS": ""})
    assert "world size          4" in text, text
    assert "nodes               2 (node1, node2)" in text, text
    assert "ranks per node      2, 2" in text, text
    assert "ranks on this node  2" in text, text
    for rank in range(4):  # 2 real cores per node shared by 2 ranks: one BLAS thread each
        assert f"rank {rank}              node{rank // 2 + 1}  local rank {rank % 2} of 2  BLAS threads 1" in text, text


@pytest.mark.parametrize("launcher", ["srun", "mpiexec"])
def test_two_nodes_train_bit_identical_to_one_node(slurm_nodes, tmp_path, launcher):
    """2 nodes x 2 ranks (TCP between the nodes, shared memory inside) end with the same
    parameters, bit for bit, as 4 ranks on one node: the ring's order does not depend on
    where the ranks run."""
    ref = tmp_path / "one-node"
    run_mpi(4, [HPCTRAIN, "train", TINY, "--out", ref], timeout=120, cwd=REPO, env={"HPCTRAIN_THREADS": "1"})
    before = nic_bytes(slurm_nodes, "node2")
    job = submit(slurm_nodes, tmp_path, "train.sbatch", options=["-N", "2", "--ntasks-per-node=2"], CONFIG=TINY,
                 LAUNCHER=launcher)
    out = tmp_path / f"train-{job}.out"
    wait_done(slurm_nodes, job, out)
    text = output_of(out)
    assert "on node[1-2]: 4 tasks" in text and "on 4 ranks" in text, text
    check_run_dir(tmp_path / f"train-{job}", epochs=2, world_size=4)
    got, step = final_checkpoint(tmp_path / f"train-{job}")
    want, want_step = final_checkpoint(ref)
    assert step == want_step and np.array_equal(got, want)
    # the ring's traffic crossed node2's NIC: per step each node sends and receives about
    # d/4 floats per hop that leaves the node; at least the parameters' size once in total
    assert nic_bytes(slurm_nodes, "node2") - before > got[0].nbytes


def test_hierarchical_sees_the_nodes_slurm_gave(slurm_nodes, tmp_path):
    job = submit(slurm_nodes, tmp_path, "train.sbatch", options=["-N", "2", "--ntasks-per-node=2"], CONFIG=TINY,
                 TRAIN_ARGS="--collective hierarchical --epochs 1")
    out = tmp_path / f"train-{job}.out"
    wait_done(slurm_nodes, job, out)
    assert "over hierarchical on 4 ranks" in output_of(out) and "2 nodes (ranks per node 2, 2)" in output_of(out)
    summary = check_run_dir(tmp_path / f"train-{job}", epochs=1, world_size=4)
    assert summary["nodes"] == {"nodes": 2, "ranks_per_node": [2, 2], "shards": 2}


def test_bench_sbatch_across_nodes(slurm_nodes, tmp_path):
    job = submit(slurm_nodes, tmp_path, "bench.sbatch", options=["-N", "2", "--ntasks-per-node=1"],
                 MAX_BYTES="64K", FIT_MAX_BYTES="64K", FIT_ARGS="--compare-min 4K --iters 2 --rounds 3", ITERS=2,
                 WARMUP=1, COLLECTIVE_ALGOS="ring,ps,mpi")
    wait_done(slurm_nodes, job, tmp_path / f"bench-{job}.out", timeout=180)
    res = tmp_path / f"bench-{job}"
    with open(res / "allreduce.json") as f:
        rows = json.load(f)
    assert {r["ranks"] for r in rows} == {2} and all(r["wrong"] == 0 for r in rows)
    info = output_of(res / "info.txt")
    assert "nodes               2 (node1, node2)" in info, info
    for name in ("fit.json", "alpha_beta.json", "collective.json"):
        assert (res / name).stat().st_size > 0, name


def memory_sum(path):
    with h5py.File(path, "r") as f:
        return f["state/memory"][()].sum(0), dict(f.attrs)


def test_node_loss_ends_the_job_and_the_requeue_resumes_on_three_ranks(slurm_nodes, tmp_path):
    """Every rank of node4 SIGKILLed mid-run: the job ends within 30 s naming the node, no
    rank is left anywhere, the last checkpoint verifies; requeued with node4 down and
    allowed 3 nodes, the job comes back on them, resumes from that checkpoint (4 -> 3 ranks, error
    feedback memory re-split with its sum conserved) and completes."""
    c = slurm_nodes
    job, run_dir, out = start_four_node_ef_job(c, tmp_path)
    try:
        killed = c.kill_node("node4", ranks_only=True)
        t_kill = time.monotonic()
        assert killed, f"no rank found on node4\n{output_of(out)}"
        tasks = c.wait(job, timeout=60)
        took = time.monotonic() - t_kill
        print(f"node4's ranks killed: the job ended {took:.1f} s later")  # pytest -s shows it
        text = output_of(out)
        assert tasks[0]["JobState"] == "FAILED" and took < 30, (tasks[0]["JobState"], took, text)
        assert "node4: task 3: Killed" in text and "a rank was killed (SIGKILL)" in text, text
        assert no_ranks_left(c) == {}

        last = list_checkpoints(run_dir)[-1]
        res = subprocess.run([HPCTRAIN, "inspect", "--verify", last], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        before, meta = memory_sum(last)
        assert meta["world_size"] == 4 and meta["step_in_epoch"] == 0 and np.abs(before).sum() > 0
        shutil.copy(last, tmp_path / "lost.h5")

        assert c.run(["scontrol", "update", "nodename=node4", "state=down", "reason=lost"]).returncode == 0
        assert c.run(["scontrol", "requeue", job]).returncode == 0
        shrink(c, job)
        wait_done(c, job, out, timeout=150, cond=lambda ts: ts[0].get("Restarts") == "1")
        text = output_of(out)
        assert "restart 1 on node[1-3]: 3 tasks" in text and "on 3 ranks" in text, text
        assert f"resumed from {last}" in text, text
        check_run_dir(run_dir, epochs=12, world_size=3)

        # the re-split itself: resume the same checkpoint on the same 3 nodes with no step
        # left; its end-of-run checkpoint holds the memory as every rank received it
        done = int(meta["epoch"]) - 1  # the checkpoint's cursor: the start of the next epoch
        srun(c, ["-N", "3", "--ntasks-per-node=1", HPCTRAIN, "train", TINY, *EF.split(), "--epochs", done,
                 "--resume", tmp_path / "lost.h5", "--out", tmp_path / "resplit", "-q"])
        after, meta2 = memory_sum(list_checkpoints(tmp_path / "resplit")[-1])
        assert meta2["world_size"] == 3 and meta2["step"] == meta["step"]
        np.testing.assert_allclose(after, before, rtol=1e-12, atol=1e-15)
    finally:
        c.resume_node("node4")


def test_node_crash_is_requeued_by_slurm_onto_fewer_nodes(slurm_nodes, tmp_path):
    """node3 crashes (slurmd, slurmstepd and its rank SIGKILLed): Slurm marks it DOWN, ends
    the job NODE_FAIL and requeues it (``--requeue``); allowed 3 nodes, it comes back on
    the 3 others and resumes from the last checkpoint by itself. Nothing hangs."""
    c = slurm_nodes
    job, run_dir, out = start_four_node_ef_job(c, tmp_path)
    try:
        c.kill_node("node3")
        c.wait(job, states=("PENDING",), timeout=90, cond=lambda ts: ts[0].get("Restarts") == "1")
        shrink(c, job)
        wait_done(c, job, out, timeout=150, cond=lambda ts: ts[0].get("Restarts") == "1")
        text = output_of(out)
        assert "restart 1 on node[1-2,4]: 3 tasks" in text and "resuming from the latest checkpoint" in text, text
        assert "on 3 ranks" in text and "resumed from" in text, text
        assert c.node_states()["node3"].startswith("down")
        check_run_dir(run_dir, epochs=12, world_size=3)
        assert no_ranks_left(c) == {}
    finally:
        c.revive_node("node3")


def test_preempted_two_node_job_requeues_and_resumes_bit_identical(slurm_nodes, tmp_path):
    """SIGUSR1 to the batch shell of a 2-node job -> every rank checkpoints -> exit 75 ->
    requeue -> resume; ends bit-identical to an uninterrupted 2-node job."""
    c = slurm_nodes
    common = dict(options=["-N", "2", "--ntasks-per-node=2"], CONFIG=TINY, CHECKPOINT_EVERY="1steps", KEEP=2,
                  TRAIN_ARGS="--epochs 3")
    ref = submit(c, tmp_path, "train.sbatch", **common)
    job = submit(c, tmp_path, "train.sbatch", **common)
    run_dir, out = tmp_path / f"train-{job}", tmp_path / f"train-{job}.out"
    wait_for_checkpoint(c, job, run_dir, out)
    res = c.run(["scancel", "--signal=USR1", "--batch", job])
    assert res.returncode == 0, res.stderr
    wait_done(c, job, out, timeout=150, cond=lambda ts: ts[0].get("Restarts") == "1")
    wait_done(c, ref, tmp_path / f"train-{ref}.out", timeout=90)
    check_preempted_run(output_of(out), job, run_dir, tmp_path / f"train-{ref}", steps=3 * 46, epochs=3, world_size=4)


def test_a_straggler_node_finishes_and_bench_links_names_it(slurm_nodes, tmp_path):
    """node2's link at 1/10 of the others' rate: a 4-node job still completes, and
    ``hpctrain bench links`` (every pair alone) names node2 as the slow node."""
    c = slurm_nodes
    try:
        for name in c.names:
            c.set_rate(name, "100mbit" if name == "node2" else "1gbit")
        job = submit(c, tmp_path, "train.sbatch", options=["-N", "4", "--ntasks-per-node=1"], CONFIG=TINY,
                     TRAIN_ARGS="--epochs 1")
        wait_done(c, job, tmp_path / f"train-{job}.out", timeout=120)
        text = srun(c, ["-N", "4", "--ntasks-per-node=1", HPCTRAIN, "bench", "links", "--bytes", "1M", "--json",
                        tmp_path / "links.json"])
        print(text)  # pytest -s shows the table
        assert "slow: node2 " in text, text
        with open(tmp_path / "links.json") as f:
            nodes = {r["node"]: r for r in json.load(f)["nodes"]}
        assert [n for n, r in nodes.items() if r["slow"]] == ["node2"]
        assert nodes["node2"]["vs_median"] < 0.2, nodes  # 100 Mbit/s against 1 Gbit/s
    finally:
        for name in c.names:
            c.set_rate(name, "10gbit")
