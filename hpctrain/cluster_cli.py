"""``hpctrain cluster``: bring up an emulated multi-node cluster, run MPI jobs on it, tear down.

Thin commands over :mod:`hpctrain.emulator` (see ``docs/cluster.md``).
"""

import json
import signal
import sys

import click

from .emulator import Cluster, ClusterError, list_clusters, teardown

__all__ = ["cluster"]


def _node_rates(values):
    out = {}
    for v in values:
        node, sep, rate = v.partition("=")
        if not sep or not node.strip().isdigit():
            raise click.BadParameter(f"{v!r}: write NODE=RATE, e.g. 3=100mbit", param_hint="--node-rate")
        out[int(node)] = rate.strip()
    return out


def _terminate_as_interrupt():
    """SIGTERM/SIGHUP unwind like Ctrl-C, so the ``with`` block tears the cluster down."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _layout(f):
    f = click.option("--name", default=None, help="cluster name hpct-XXXX (default hpct-<pid>)")(f)
    f = click.option("--node-rate", "node_rate", multiple=True, metavar="NODE=RATE",
                     help="override one node's link rate (a straggler), e.g. 3=100mbit; repeatable")(f)
    f = click.option("--rate", default="1gbit", show_default=True, help="every node's link rate (tc notation)")(f)
    f = click.option("--ranks-per-node", "-R", default=1, show_default=True, type=click.IntRange(1, 64))(f)
    f = click.option("--nodes", "-N", default=2, show_default=True, type=click.IntRange(1, 64))(f)
    return f


@click.group()
def cluster():
    """An emulated cluster on this machine: nodes are network namespaces behind rate-limited
    links (needs root). `hpctrain cluster run -N 4 --rate 1gbit -- hpctrain bench collective`."""


@cluster.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_layout
@click.option("--attach", default=None, metavar="NAME", help="run on the cluster NAME brought up by `cluster up`")
@click.option("--timeout", default=None, type=click.FloatRange(min=1), help="kill the job after this many seconds")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_cmd(nodes, ranks_per_node, rate, node_rate, name, attach, timeout, command):
    """Run COMMAND on every rank as one MPI job (a fresh cluster, torn down after, unless --attach)."""
    _terminate_as_interrupt()
    if attach:
        rc = Cluster.attach(attach).run(list(command), timeout=timeout).returncode
    else:
        with Cluster(nodes, ranks_per_node, rate, _node_rates(node_rate), name=name) as c:
            rc = c.run(list(command), timeout=timeout).returncode
    sys.exit(rc)


@cluster.command("up")
@_layout
def up_cmd(nodes, ranks_per_node, rate, node_rate, name):
    """Bring a cluster up and leave it up; prints its name (for run --attach, status, down)."""
    c = Cluster(nodes, ranks_per_node, rate, _node_rates(node_rate), name=name)
    c.up()
    click.echo(c.name)


@cluster.command("status")
@click.option("--name", default=None, help="one cluster (default: every one on this machine)")
def status_cmd(name):
    """Show the clusters that are up (JSON lines)."""
    for n in [name] if name else list_clusters():
        try:
            click.echo(json.dumps(Cluster.attach(n).describe()))
        except ClusterError as exc:
            click.echo(json.dumps({"name": n, "error": str(exc)}))


@cluster.command("down")
@click.option("--name", default=None, help="the cluster to remove")
@click.option("--all", "everything", is_flag=True, help="remove every hpct-* cluster on this machine")
def down_cmd(name, everything):
    """Tear a cluster down: processes, namespaces, links (idempotent)."""
    if not name and not everything:
        raise ClusterError("say which cluster: --name NAME or --all")
    for n in list_clusters() if everything else [name]:
        gone = teardown(n)
        click.echo(f"{n}: removed {len(gone)} namespaces")
