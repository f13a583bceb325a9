"""Cluster emulator: N "nodes" on one machine, each a network namespace behind a rate-limited link.

Each node is a Linux network namespace ``<prefix>-n<i>`` with one NIC ``eth0`` (a veth) into
a Linux bridge in a switch namespace ``<prefix>-sw``; ``tc tbf`` limits both directions of
every veth to the node's rate. Addresses live in a private /24 that exists only inside these
namespaces. MPI sees one host per node: mpiexec (MPICH's hydra) runs in the switch namespace
and starts one proxy per node through hydra's ssh launcher with a ``-launcher-exec`` wrapper
that enters the node's namespace (and a UTS namespace with the node's hostname) instead of
ssh, so ranks of one node share memory and nodes talk TCP (libfabric's tcp provider) over
the limited links. The design is in ``docs/cluster.md``.

Library code only (no click, no mpi4py): ``hpctrain cluster`` and the tests drive it.

Example::

    with Cluster(nodes=4, ranks_per_node=1, rate="1gbit") as c:
        c.run(["hpctrain", "bench", "collective", "--algo", "ring,mpi"])
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

from .errors import HpctrainError

__all__ = ["Cluster", "ClusterError", "ClusterUnavailable", "available", "parse_rate", "teardown",
           "list_clusters", "STATE_DIR", "NIC"]

#: where each cluster's state (JSON) and launcher wrapper live
STATE_DIR = os.environ.get("HPCTRAIN_CLUSTER_DIR", "/run/hpctrain-cluster")
#: every node's NIC is called this inside its namespace (so FI_TCP_IFACE is one value)
NIC = "eth0"
_PREFIX_RE = re.compile(r"^hpct-[A-Za-z0-9]{1,8}$")
_RATE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)(bit|bps)?\s*$", re.I)


def _sbin_on_path():
    """Put /usr/sbin and /sbin (where Debian keeps ``ip`` and ``tc``) on PATH when running
    as root: ``env -i``, cron and some batch systems give root a PATH without them. Only
    appends; the user's order is kept."""
    if os.geteuid() != 0:
        return
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    extra = [d for d in ("/usr/sbin", "/sbin") if d not in parts and os.path.isdir(d)]
    if extra:
        os.environ["PATH"] = os.pathsep.join(parts + extra)


_sbin_on_path()


class ClusterError(HpctrainError):
    """The emulated cluster cannot be brought up, run or torn down as asked."""


class ClusterUnavailable(ClusterError):
    """This machine cannot emulate a cluster (no root, no network namespaces or no tbf)."""


def parse_rate(text):
    """Link rate in bits per second from ``tc`` notation (``1gbit``, ``100mbit``, ``500kbit``).

    Raises:
        ClusterError: on anything else, or a rate outside 1 kbit/s .. 100 gbit/s.
    """
    m = _RATE_RE.match(str(text))
    if not m or (m.group(3) or "bit").lower() != "bit":
        raise ClusterError(f"bad link rate {text!r}: write it as tc does, e.g. 1gbit, 100mbit, 500kbit")
    bits = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    if not 1e3 <= bits <= 1e11:
        raise ClusterError(f"link rate {text!r} out of range (1kbit .. 100gbit)")
    return int(bits)


def _sh(args, check=True, **kw):
    res = subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)
    if check and res.returncode != 0:
        raise ClusterError(f"{' '.join(args)} failed: {(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    return res


def _netns_list():
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def available():
    """``None`` when this machine can emulate a cluster, else the reason (one line).

    Probes for real: root, ``ip``/``tc``/``nsenter``/``unshare``, a network namespace with a
    veth pair, and a ``tbf`` qdisc on it (the probe namespace is deleted again).
    """
    if os.geteuid() != 0:
        return "the cluster emulator needs root (network namespaces and tc)"
    for tool in ("ip", "tc", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"the cluster emulator needs {tool!r} (apt-get install iproute2 util-linux)"
    ns = f"hpct-p{os.getpid()}-probe"
    try:
        if _sh(["ip", "netns", "add", ns], check=False).returncode:
            return "network namespaces are not available here (ip netns add failed)"
        if _sh(["ip", "-n", ns, "link", "add", "pa", "type", "veth", "peer", "name", "pb"], check=False).returncode:
            return "veth interfaces are not available here (ip link add type veth failed)"
        res = _sh(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "pa", "root", "tbf", "rate", "1gbit",
                   "burst", "128kb", "latency", "5ms"], check=False)
        if res.returncode:
            return "tc's tbf qdisc is not available here (needed to limit link rates)"
        return None
    finally:
        _sh(["ip", "netns", "del", ns], check=False)


def _kill_netns_pids(ns):
    """SIGKILL every process inside namespace ``ns`` (ranks, proxies, mpiexec)."""
    for _ in range(5):
        res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30)
        pids = [int(p) for p in res.stdout.split() if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.1)


def teardown(prefix):
    """Remove every namespace, link, process and state file of the cluster ``prefix``.

    Idempotent: safe to call twice, after a partial bring-up, or for a cluster that never
    existed. Returns the namespaces it deleted.
    """
    if not _PREFIX_RE.match(prefix):
        raise ClusterError(f"bad cluster name {prefix!r} (hpct- and 1-8 letters or digits)")
    mine = [ns for ns in _netns_list() if ns.startswith(prefix + "-")]
    for ns in mine:  # processes first, or a rank keeps its namespace's veth alive
        _kill_netns_pids(ns)
    for ns in mine:
        _sh(["ip", "netns", "del", ns], check=False)
    # a veth made in the root namespace but not yet moved (interrupted bring-up)
    tag = _ifname_tag(prefix)
    try:
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        links = ""
    for line in links.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(tag):
                _sh(["ip", "link", "del", name], check=False)
    state = os.path.join(STATE_DIR, prefix)
    shutil.rmtree(state, ignore_errors=True)
    return mine


def list_clusters():
    """Names (prefixes) of the clusters with a namespace on this machine."""
    found = set()
    for ns in _netns_list():
        m = re.match(r"^(hpct-[A-Za-z0-9]{1,8})-(n\d+|sw)$", ns)
        if m:
            found.add(m.group(1))
    return sorted(found)


def _ifname_tag(prefix):
    return "hq" + prefix[len("hpct-"):]  # <= 10 chars; + "a12" stays under IFNAMSIZ (15)


_WRAPPER = r'''#!{python}
"""hydra's ssh launcher, emulated: enter the node's namespaces instead of ssh (generated)."""
import os, sys
NODES = {nodes}
HEAD = {head!r}
args = sys.argv[1:]
while args and args[0].startswith("-") and args[0] != "--":
    args = args[1:]  # ssh options hydra passes (-x)
host, cmd = args[0], " ".join(args[1:])
ns, name = NODES[host]
# the proxy calls back to mpiexec's hostname, which no node can resolve: use the head address
cmd = __import__("re").sub(r"--control-port \S+:(\d+)", lambda m: "--control-port %s:%s" % (HEAD, m.group(1)), cmd)
os.execvp("nsenter", ["nsenter", "--net=/run/netns/" + ns, "unshare", "--uts", "sh", "-c",
                      "hostname %s && exec %s" % (name, cmd)])
'''


class Cluster:
    """An emulated cluster: ``nodes`` namespaces, ``ranks_per_node`` MPI ranks on each.

    Args:
        nodes: number of nodes (1..64).
        ranks_per_node: MPI ranks started on each node (shared memory among them).
        rate: every node's link rate in tc notation (``1gbit``), both directions.
        node_rates: ``{node index (1-based): rate}`` overrides (one slow node = a straggler).
        name: cluster name ``hpct-XXXX`` (default ``hpct-<pid>``); namespaces are
            ``<name>-n1 .. <name>-nN`` and ``<name>-sw``.
        mpiexec: hydra's mpiexec (default: the one next to this Python, else on PATH).
    """

    def __init__(self, nodes=2, ranks_per_node=1, rate="1gbit", node_rates=None, name=None, mpiexec=None):
        if not isinstance(nodes, int) or not 1 <= nodes <= 64:
            raise ClusterError(f"nodes must be 1..64, got {nodes!r}")
        if not isinstance(ranks_per_node, int) or not 1 <= ranks_per_node <= 64:
            raise ClusterError(f"ranks per node must be 1..64, got {ranks_per_node!r}")
        self.nodes, self.ranks_per_node = nodes, ranks_per_node
        self.rate = rate
        self.rate_bits = parse_rate(rate)
        self.node_rates = {}
        for k, v in (node_rates or {}).items():
            if not 1 <= int(k) <= nodes:
                raise ClusterError(f"rate override for node {k}, but nodes are 1..{nodes}")
            parse_rate(v)
            self.node_rates[int(k)] = v
        self.name = name or f"hpct-{os.getpid()}"
        if not _PREFIX_RE.match(self.name):
            raise ClusterError(f"bad cluster name {self.name!r} (hpct- and 1-8 letters or digits)")
        self.mpiexec = mpiexec or _find_mpiexec()
        h = sum(ord(c) * 31 ** i for i, c in enumerate(self.name)) % (100 * 256)
        self.subnet = f"10.{100 + h // 256}.{h % 256}"  # exists only inside this cluster's namespaces
        self.state_dir = os.path.join(STATE_DIR, self.name)
        self.is_up = False

    # -- names -------------------------------------------------------------------------
    def ns(self, i):
        """Namespace of node ``i`` (1-based)."""
        return f"{self.name}-n{i}"

    @property
    def switch(self):
        """The switch namespace (bridge, mpiexec)."""
        return f"{self.name}-sw"

    def addr(self, i):
        """Address of node ``i``'s NIC."""
        return f"{self.subnet}.{i}"

    @property
    def head(self):
        """The switch's own address on the bridge (where mpiexec listens)."""
        return f"{self.subnet}.254"

    def node_rate(self, i):
        """Rate (tc notation) of node ``i``'s link."""
        return self.node_rates.get(i, self.rate)

    # -- life cycle --------------------------------------------------------------------
    def up(self):
        """Create the namespaces, links, rate limits and launcher wrapper.

        Raises:
            ClusterUnavailable: the machine cannot do it (the reason in one line).
            ClusterError: a step failed (everything made so far is torn down first).
        """
        reason = available() or _not_hydra(self.mpiexec)
        if reason:
            raise ClusterUnavailable(reason)
        if any(ns.startswith(self.name + "-") for ns in _netns_list()):
            raise ClusterError(f"cluster {self.name} already exists (hpctrain cluster down --name {self.name})")
        try:
            self._build()
        except BaseException:
            teardown(self.name)
            raise
        self.is_up = True
        return self

    def _build(self):
        sw, tag = self.switch, _ifname_tag(self.name)
        _sh(["ip", "netns", "add", sw])
        _sh(["ip", "-n", sw, "link", "add", "br0", "type", "bridge"])
        _sh(["ip", "-n", sw, "addr", "add", f"{self.head}/24", "dev", "br0"])
        _sh(["ip", "-n", sw, "link", "set", "br0", "up"])
        _sh(["ip", "-n", sw, "link", "set", "lo", "up"])
        for i in range(1, self.nodes + 1):
            ns, a, b = self.ns(i), f"{tag}a{i}", f"{tag}b{i}"
            _sh(["ip", "netns", "add", ns])
            _sh(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
            _sh(["ip", "link", "set", a, "netns", ns])
            _sh(["ip", "link", "set", b, "netns", sw])
            _sh(["ip", "-n", ns, "link", "set", a, "name", NIC])
            _sh(["ip", "-n", sw, "link", "set", b, "name", f"p{i}"])
            _sh(["ip", "-n", sw, "link", "set", f"p{i}", "master", "br0"])
            _sh(["ip", "-n", sw, "link", "set", f"p{i}", "up"])
            _sh(["ip", "-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", NIC])
            _sh(["ip", "-n", ns, "link", "set", NIC, "up"])
            _sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            self._tbf(i, "add")
        os.makedirs(self.state_dir, exist_ok=True)
        nodes = {self.addr(i): (self.ns(i), f"node{i}") for i in range(1, self.nodes + 1)}
        with open(self.wrapper, "w", encoding="utf-8") as f:
            f.write(_WRAPPER.format(python=sys.executable, nodes=repr(nodes), head=self.head))
        os.chmod(self.wrapper, 0o755)
        with open(os.path.join(self.state_dir, "cluster.json"), "w", encoding="utf-8") as f:
            json.dump(self.describe(), f, indent=1)

    def _tbf(self, i, how):
        """Add (or change) the rate limit of node ``i``'s link, both directions."""
        for where, dev in ((self.ns(i), NIC), (self.switch, f"p{i}")):  # node -> switch, switch -> node
            _sh(["ip", "netns", "exec", where, "tc", "qdisc", how, "dev", dev, "root", "tbf",
                 "rate", self.node_rate(i), "burst", "128kb", "latency", "5ms"])

    def set_rate(self, i, rate):
        """Change node ``i``'s link rate (tc notation) on a cluster that is up, e.g. to make
        it a straggler mid-run."""
        if not 1 <= i <= self.nodes:
            raise ClusterError(f"no node {i} (nodes are 1..{self.nodes})")
        parse_rate(rate)
        self.node_rates[i] = rate
        self._tbf(i, "change")

    @property
    def wrapper(self):
        """The generated hydra launcher wrapper."""
        return os.path.join(self.state_dir, "launch")

    def down(self):
        """Tear everything down (idempotent)."""
        self.is_up = False
        return teardown(self.name)

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()
        return False

    # -- running -----------------------------------------------------------------------
    def env(self):
        """Environment of every rank: MPICH's ofi netmod over TCP on the node NIC, and the
        link facts (``HPCTRAIN_LINK_RATE`` bits/s, ``HPCTRAIN_NODES``) for the reports."""
        return {
            "MPIR_CVAR_CH4_NETMOD": "ofi",
            "FI_PROVIDER": "tcp",
            "FI_TCP_IFACE": NIC,
            "HPCTRAIN_LINK_RATE": str(min(parse_rate(self.node_rate(i)) for i in range(1, self.nodes + 1))),
            "HPCTRAIN_NODES": str(self.nodes),
        }

    def mpiexec_argv(self, cmd, ranks_per_node=None):
        """The argv (run from the root namespace) that starts ``cmd`` as one MPI job."""
        ppn = ranks_per_node or self.ranks_per_node
        hosts = ",".join(self.addr(i) for i in range(1, self.nodes + 1))
        envs = []
        for k, v in self.env().items():
            envs += ["-genv", k, v]
        return (["nsenter", f"--net=/run/netns/{self.switch}", self.mpiexec, "-launcher", "ssh",
                 "-launcher-exec", self.wrapper, "-hosts", hosts, "-ppn", str(ppn),
                 "-n", str(ppn * self.nodes)] + envs + [str(c) for c in cmd])

    def run(self, cmd, timeout=None, ranks_per_node=None, capture=False, env=None, cwd=None):
        """Run ``cmd`` on every rank as one MPI job.

        On timeout or Ctrl-C the job (and everything in the namespaces) is killed.

        Args:
            timeout: seconds, then :class:`ClusterError`.
            capture: collect stdout and stderr (text) instead of passing them through.
            env: the job's environment (default: this process's).

        Returns:
            A :class:`subprocess.CompletedProcess`.
        """
        if not self.is_up:
            raise ClusterError(f"cluster {self.name} is not up")
        argv = self.mpiexec_argv(cmd, ranks_per_node)
        pipe = subprocess.PIPE if capture else None
        proc = subprocess.Popen(argv, start_new_session=True, stdout=pipe, stderr=pipe, text=True, env=env, cwd=cwd)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_jobs(proc)
            raise ClusterError(f"job {shell_join(cmd)} ran past {timeout}s and was killed") from None
        except BaseException:
            self._kill_jobs(proc)
            raise
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def _kill_jobs(self, proc):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for i in range(1, self.nodes + 1):
            _kill_netns_pids(self.ns(i))
        _kill_netns_pids(self.switch)
        proc.wait()

    def describe(self):
        """The cluster as a dict (``hpctrain cluster status``)."""
        return {
            "name": self.name, "nodes": self.nodes, "ranks_per_node": self.ranks_per_node,
            "rate": self.rate, "node_rates": {str(k): v for k, v in self.node_rates.items()},
            "subnet": f"{self.subnet}.0/24", "switch": self.switch,
            "namespaces": [self.ns(i) for i in range(1, self.nodes + 1)],
            "addresses": [self.addr(i) for i in range(1, self.nodes + 1)],
            "mpiexec": self.mpiexec,
        }

    @classmethod
    def attach(cls, name):
        """The cluster ``name`` brought up earlier (``hpctrain cluster up``), from its state file."""
        path = os.path.join(STATE_DIR, name, "cluster.json")
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, ValueError):
            raise ClusterError(f"no cluster {name!r} is up (hpctrain cluster up)") from None
        c = cls(d["nodes"], d["ranks_per_node"], d["rate"], {int(k): v for k, v in d["node_rates"].items()},
                name=d["name"], mpiexec=d["mpiexec"])
        c.is_up = all(ns in _netns_list() for ns in d["namespaces"])
        if not c.is_up:
            raise ClusterError(f"cluster {name!r} is half gone; run hpctrain cluster down --name {name}")
        return c


def _not_hydra(mpiexec):
    """None when ``mpiexec`` is MPICH's hydra (its ssh launcher is what the emulator drives)."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return f"no mpiexec at {mpiexec!r} (install hpctrain[mpich] or MPICH)"
    if "HYDRA" not in out.upper():
        return f"the cluster emulator launches with MPICH's hydra mpiexec; {mpiexec} is not hydra"
    return None


def _find_mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else (shutil.which("mpiexec") or "mpiexec")


def shell_join(cmd):
    """``cmd`` as one shell line (for messages)."""
    return " ".join(shlex.quote(str(c)) for c in cmd)
