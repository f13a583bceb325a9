"""The cluster emulator: MPI across network namespaces behind rate-limited links.

Every hand-made allreduce against MPI's own Allreduce across nodes (2 x 1, 2 x 2), the node
layout MPI and hpctrain see, a lower bound on transfer time from the configured rate (which
noise cannot fail), overlap auto counting the emulated nodes' ranks as sharing the host's cores, and
teardown: idempotent, after a failure and after an interrupted run.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hpctrain.emulator import Cluster, ClusterError, _netns_list, parse_rate, teardown
from mpiutil import HPCTRAIN, WORKERS, descendants

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "mpi"))
from test_collectives import _assert_allreduce_results  # noqa: E402

ALGOS = ["ring", "recursive", "multi-ps", "ps", "ring-unpartitioned", "hierarchical", "auto"]
ENV = {**os.environ, "HPCTRAIN_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _ours(name):
    return [ns for ns in _netns_list() if ns.startswith(name + "-")]


def _run(c, args, tmp_path, timeout=240, env=None):
    res = c.run([sys.executable, *map(str, args)], timeout=timeout, capture=True, env=env or ENV, cwd=tmp_path)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.mpi
@pytest.mark.parametrize("nodes,rpn", [(2, 1), (2, 2)])
def test_every_allreduce_matches_mpi_across_nodes(cluster, tmp_path, nodes, rpn):
    c = cluster(nodes, rpn, "1gbit")
    _run(c, [os.path.join(WORKERS, "collective_cases.py"), tmp_path, *ALGOS], tmp_path,
         env={**ENV, "HPCTRAIN_CACHE": str(tmp_path)})  # no fit: auto's built-in rule
    n = nodes * rpn
    assert _assert_allreduce_results(tmp_path, n) >= n * len(ALGOS) * (4 * 3 * 4 + 3)


@pytest.mark.mpi
def test_nodes_are_hosts_with_shared_memory_and_auto_picks_hierarchical(cluster, tmp_path):
    c = cluster(2, 2, "1gbit")
    _run(c, [os.path.join(WORKERS, "node_layout.py"), tmp_path], tmp_path, timeout=120,
         env={**ENV, "HPCTRAIN_CACHE": str(tmp_path)})
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)]
    assert [r["hostname"] for r in res] == ["node1", "node1", "node2", "node2"]
    assert [r["local_members"] for r in res] == [[0, 1], [0, 1], [2, 3], [2, 3]]
    assert all(r["layout"] == {"nodes": 2, "ranks_per_node": [2, 2], "shards": 2} for r in res)
    assert {r["auto_4m"] for r in res} == {"hierarchical"} and {r["auto_1k"] for r in res} == {"recursive"}


def _tx_bytes(ns):
    out = subprocess.run(["ip", "-n", ns, "-s", "-j", "link", "show", "eth0"], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)[0]["stats64"]["tx"]["bytes"]


@pytest.mark.mpi
def test_hierarchical_sends_two_thirds_of_the_flat_rings_nic_bytes(cluster, tmp_path):
    # 2 nodes x 2 ranks: per allreduce of S the flat ring puts 2(n-1)/n S = 1.5 S through each
    # NIC, hierarchical 2(N-1)/N S = S; counted by the kernel on node 1's NIC (bytes, not time)
    c = cluster(2, 2, "1gbit")
    nbytes, reps = 4 << 20, 4
    sent = {}
    for algo in ("ring", "hierarchical"):
        before = _tx_bytes(c.ns(1))
        _run(c, [os.path.join(WORKERS, "repeat_allreduce.py"), algo, nbytes, reps], tmp_path, timeout=180)
        sent[algo] = _tx_bytes(c.ns(1)) - before
    payload = {"ring": 1.5 * nbytes * reps, "hierarchical": 1.0 * nbytes * reps}
    for algo, b in sent.items():  # + headers (< 5% at MTU 1500) and MPI's start-up and the check
        assert payload[algo] <= b <= 1.1 * payload[algo] + 2e6, (algo, b, payload[algo])
    assert 1.3 < sent["ring"] / sent["hierarchical"] < 1.6, sent


@pytest.mark.mpi
@pytest.mark.parametrize("rate,node_rates", [("100mbit", None), ("1gbit", {2: "100mbit"})])
def test_a_transfer_cannot_beat_the_configured_rate(cluster, tmp_path, rate, node_rates):
    # node 1 -> node 2 passes node 1's and the switch's port-2 tbf: the slower one bounds it
    c = cluster(2, 1, rate, node_rates)
    nbytes, burst = 4 << 20, 128 << 10  # tbf lets one bucket (burst) through at once
    _run(c, [os.path.join(WORKERS, "pingpong_time.py"), tmp_path / "t.json", nbytes, 3], tmp_path, timeout=120)
    seconds = json.loads((tmp_path / "t.json").read_text())["seconds"]
    bound = (nbytes - 2 * burst) * 8 / parse_rate("100mbit")
    assert min(seconds) >= bound, (seconds, bound)
    qdisc = subprocess.run(["ip", "netns", "exec", c.switch, "tc", "qdisc", "show", "dev", "p2"],
                           capture_output=True, text=True).stdout
    assert "tbf" in qdisc and "100Mbit" in qdisc


def _dropped(ns, dev):
    out = subprocess.run(["ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", dev], capture_output=True,
                         text=True, check=True).stdout
    return int(out.split("dropped", 1)[1].split(",", 1)[0])


@pytest.mark.mpi
def test_ps_workers_never_crowd_the_servers_link(cluster, tmp_path):
    # 2 workers of a single-PS allreduce of 512 KiB: sent at once, they overflow the switch
    # port's 5 ms queue into the server (62 KB at 100 Mbit/s) and TCP's retransmission
    # timeouts stall the step; each sends on its turn, so nothing is lost on that port
    c = cluster(3, 1, "100mbit")
    _run(c, [os.path.join(WORKERS, "repeat_allreduce.py"), "ps", 512 << 10, 4], tmp_path, timeout=120)
    assert _dropped(c.switch, "p1") == 0


def test_teardown_is_idempotent_and_complete(emulator_ok):
    c = Cluster(3, 1, "1gbit", name=f"hpct-d{os.getpid() % 100000}")
    try:
        c.up()
        assert len(_ours(c.name)) == 4  # 3 nodes + the switch
        with pytest.raises(ClusterError, match="already exists"):
            Cluster(2, 1, "1gbit", name=c.name).up()
        assert sorted(c.down()) == sorted([c.ns(i) for i in (1, 2, 3)] + [c.switch])
        assert c.down() == [] and _ours(c.name) == []
        assert not os.path.exists(c.state_dir)
    finally:
        teardown(c.name)


def test_a_failed_bring_up_leaves_nothing(emulator_ok):
    c = Cluster(2, 1, "1gbit", name=f"hpct-f{os.getpid() % 100000}")
    c.rate = "1xbit"  # tc refuses it half way through the bring-up
    try:
        with pytest.raises(ClusterError, match="tc"):
            c.up()
        assert _ours(c.name) == []
    finally:
        teardown(c.name)


@pytest.mark.mpi
def test_an_interrupted_run_leaves_nothing(emulator_ok, tmp_path):
    name = f"hpct-i{os.getpid() % 100000}"
    marker = f"hpctrain-interrupt-{os.getpid()}"
    cmd = [HPCTRAIN, "cluster", "run", "-N", "2", "--name", name, "--", sys.executable, "-c",
           "import time, sys; open(sys.argv[1] + '/started', 'w').close(); time.sleep(120)", str(tmp_path), marker]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert _ours(name) == []
        left = []
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        left.append(pid)
            except OSError:
                pass
        assert left == [], f"processes left behind: {left}"
    finally:
        if proc.poll() is None:
            for pid in descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
        teardown(name)


def test_refuses_without_root_with_one_line_and_exit_2(monkeypatch, capsys):
    # in-process, as a non-root user would see it (root is what this machine kind has)
    from hpctrain.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as exc:
        main(["cluster", "run", "-N", "2", "--", "true"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "hpctrain: error: the cluster emulator needs root (network namespaces and tc)"


@pytest.mark.parametrize("args,msg", [
    (["--rate", "1xbit"], "bad link rate"),
    (["--rate", "1mbps"], "bad link rate"),
    (["--node-rate", "3=1gbit"], "rate override for node 3"),
    (["--node-rate", "x"], "NODE=RATE"),
    (["--name", "other-1"], "bad cluster name"),
])
def test_bad_input_one_line_exit_2(args, msg):
    res = subprocess.run([HPCTRAIN, "cluster", "run", "-N", "2", *args, "--", "true"], capture_output=True,
                         text=True, timeout=60, env=ENV)
    assert res.returncode == 2 and msg in res.stderr and len(res.stderr.strip().splitlines()) == 1, res


def test_parse_rate_in_bits():
    assert parse_rate("1gbit") == 10**9 and parse_rate("100mbit") == 10**8 and parse_rate("2.5Mbit") == 2_500_000
    assert np.isclose(parse_rate("500kbit"), 5e5)


@pytest.mark.mpi
def test_bench_fit_on_2x2_fits_the_network_apart_from_the_node(cluster, tmp_path):
    c = cluster(2, 2, "100mbit")
    res = c.run([HPCTRAIN, "bench", "fit", "--min-bytes", "512K", "--max-bytes", "2M", "--algo", "ring,hierarchical",
                 "--compare-min", "2M", "--rounds", "1", "--iters", "1", "--json", tmp_path / "fit.json"],
                timeout=240, capture=True, env={**ENV, "HPCTRAIN_CACHE": str(tmp_path)}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    fit = json.loads((tmp_path / "fit.json").read_text())["fit"]
    assert fit["nodes"] == 2 and fit["ranks_per_node"] == 2 and fit["link_rate_bits"] == 10**8
    assert "concurrent" not in fit  # an all-to-all here would mix the node's link with the network's
    # the network cannot beat its configured rate (2 tbf buckets of slack over the sizes fitted)
    assert fit["inter"]["beta"] > fit["beta"] and 1 / fit["inter"]["beta"] < 1.25 * 10**8 / 8
    assert "# network: 1/beta = " in res.stdout and "configured link 0.0125 GB/s" in res.stdout


@pytest.mark.mpi
def test_emulated_nodes_share_the_hosts_cores_and_overlap_auto_counts_them_together(cluster, tmp_path):
    """Four emulated nodes of one rank: MPI sees four hosts, but their ranks share this
    machine's cores, and overlap auto counts them together (where overlap measured slower)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "mpi"))
    from test_models_train import image_h5

    c = cluster(4, 1, "1gbit")
    data = image_h5(tmp_path / "img.h5", n=64, n_test=16)
    _run(c, [os.path.join(WORKERS, "train_params.py"), tmp_path, "model=conv:4:3,relu,maxpool:2,flatten,linear:4",
             f"dataset={data}", "epochs=1", "max_steps=1", "batch_size=8"], tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["nodes"]["nodes"] == 4
    cores = len(os.sched_getaffinity(0))  # the ranks inherit this process's mask
    if cores >= 8:
        assert summary["overlap"] is True, summary["overlap_note"]
    else:
        assert summary["overlap"] is False
        shared = f"4 ranks share {cores} core{'s' if cores != 1 else ''} on this machine"
        need = "(overlap needs a free core per rank; --overlap forces it)"
        assert summary["overlap_note"] == f"overlap off: {shared} {need}"
