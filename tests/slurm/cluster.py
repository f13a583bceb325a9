"""Private Slurm clusters for tests: munged + slurmctld + slurmd as children, on one node
(:class:`SlurmCluster`) or on several emulated nodes (:class:`MultiNodeSlurm`).

Everything lives in one temporary directory: a munge key and socket of its own, a
``slurm.conf`` on non-default ports, state, spool and log directories, and a fake GPU
GRES (``gres.conf`` pointing at two empty files) so that GPU job scripts can be
scheduled on a CPU-only machine. Clients reach it through ``SLURM_CONF``; a site's own
Slurm or munge is never touched. :meth:`SlurmCluster.stop` cancels the jobs, stops only
the daemons it started (by PID) and kills any process left over from its jobs (found by
the cluster's directory in their environment).

Run ``python tests/slurm/cluster.py [--nodes 4]`` to start one by hand (``--nodes``: the
multi-node cluster on emulated nodes, :class:`MultiNodeSlurm`); it prints the ``SLURM_CONF``
to export and runs until Ctrl-C.
"""

import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["SlurmCluster", "MultiNodeSlurm", "SlurmUnavailable", "slurm_unavailable_reason", "ensure_installed"]

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "sinfo", "scancel", "srun", "munge")


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be installed or started here; the message says why."""


def _missing():
    return [p for p in DAEMONS + CLIENTS if not shutil.which(p) and not os.path.exists(f"/usr/sbin/{p}")]


def _install_allowed():
    return (os.environ.get("CI", "").lower() == "true" or os.environ.get("HPCTRAIN_SLURM_TESTS") == "1")


def ensure_installed(timeout=300):
    """Install slurm-wlm and munge with apt-get when they are missing and that is allowed
    (root, apt-get on PATH, and ``CI=true`` or ``HPCTRAIN_SLURM_TESTS=1``).

    Raises:
        SlurmUnavailable: with the reason, when they are missing and cannot be installed.
    """
    missing = _missing()
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable(f"Slurm is not installed ({', '.join(missing)} missing) and installing it "
                               "needs root and apt-get")
    if not _install_allowed():
        raise SlurmUnavailable(f"Slurm is not installed ({', '.join(missing)} missing); set CI=true or "
                               "HPCTRAIN_SLURM_TESTS=1 to let the tests apt-get install slurm-wlm munge")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:  # a stale package list: refresh once and retry
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=timeout)
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"'{' '.join(cmd)}' took more than {timeout}s") from None
    if res.returncode != 0 or _missing():
        raise SlurmUnavailable(f"'{' '.join(cmd)}' failed: {(res.stderr or res.stdout).strip()[-500:]}")


def slurm_unavailable_reason():
    """None when a private cluster can be started here, else why not (for pytest.skip)."""
    if os.environ.get("HPCTRAIN_SLURM_TESTS") == "0":
        return "HPCTRAIN_SLURM_TESTS=0"
    if not sys.platform.startswith("linux"):
        return "Slurm tests need Linux"
    if os.geteuid() != 0:
        return "the private Slurm cluster runs slurmd as root; run the tests as root (CI does)"
    try:
        ensure_installed()
    except SlurmUnavailable as exc:
        return str(exc)
    return None


def _free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _exe(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    """munged + slurmctld + slurmd on this host, configured under ``root``.

    Args:
        root: directory for every file of the cluster (created; short path: the munge
            socket's path must fit a Unix socket address).
        cpus: CPUs the node declares (oversubscribes the real cores on purpose).
        gpus: fake GPUs (GRES gpu) the node declares.
    """

    def __init__(self, root=None, cpus=8, gpus=2):
        self.root = root or tempfile.mkdtemp(prefix="hpctrain-slurm-")
        os.chmod(self.root, 0o755)  # munged wants the socket's directories executable for all
        self.node = socket.gethostname().split(".")[0]
        self.cpus, self.gpus = cpus, gpus
        self.conf = os.path.join(self.root, "slurm.conf")
        self.procs = {}
        self.jobs = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        # importing hpctrain (as pytest did) set the thread-pool variables for one process
        # on this machine; a login shell has none, and the ranks must size their own pools
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
            self.env.pop(var, None)
        self.env["SLURM_CONF"] = self.conf
        self.env["HPCTRAIN_SLURM_CLUSTER"] = self.root  # marks every process of this cluster

    # ---------------------------------------------------------------- configuration
    def _write_config(self):
        r = self.root
        for d in ("state", "log", "run", "dev", *(f"spool/{n}" for n, _ in self.node_addrs())):
            os.makedirs(os.path.join(r, d), exist_ok=True)
        os.chmod(os.path.join(r, "run"), 0o755)
        key = os.path.join(r, "munge.key")
        with open(key, "wb") as f:
            f.write(secrets.token_bytes(1024))
        os.chmod(key, 0o400)
        self.munge_socket = os.path.join(r, "run", "munge.sock")
        for i in range(self.gpus):  # slurmd wants character devices: links to /dev/null
            os.symlink("/dev/null", os.path.join(r, "dev", f"nvidia{i}"))
        ctld_port, slurmd_port = _free_ports(2)
        self.ports = (ctld_port, slurmd_port)
        lines = [
            "ClusterName=hpctrain-test",
            f"SlurmctldHost={self.ctld_host}",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # cred_expire is also how long a requeued job waits before it may start again
            # (default 120 s)
            f"AuthInfo=socket={self.munge_socket},cred_expire=5",
            f"StateSaveLocation={r}/state",
            # %n: the node's name, so that several slurmd on one machine keep apart
            f"SlurmdSpoolDir={r}/spool/%n",
            f"SlurmctldPidFile={r}/run/slurmctld.pid",
            f"SlurmdPidFile={r}/run/slurmd-%n.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd-%n.log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobRequeue=1",
            # job ids differ from those of earlier test clusters: MPICH names its shared
            # memory after Slurm's PMI2 job/step id, and a segment left by a killed step of
            # an earlier cluster's job with the same id breaks MPI_Init of the new one
            f"FirstJobId={secrets.randbelow(60_000_000) + 100_000}",
            "KillWait=5",
            "MinJobAge=600",
            "MailProg=/bin/true",
            f"PlugStackConfig={r}/plugstack.conf",
            "GresTypes=gpu",
            *self._extra_conf(),
        ]
        nodes = ",".join(name for name, _ in self.node_addrs())
        for name, addr in self.node_addrs():
            lines.append(f"NodeName={name} NodeAddr={addr} CPUs={self.cpus} Boards=1 SocketsPerBoard=1 "
                         f"CoresPerSocket={self.cpus} ThreadsPerCore=1 RealMemory=4000 Gres=gpu:{self.gpus} "
                         "State=UNKNOWN")
        lines.append(f"PartitionName=debug Nodes={nodes} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        open(os.path.join(r, "plugstack.conf"), "w").close()
        with open(os.path.join(r, "gres.conf"), "w") as f:  # read from slurm.conf's directory
            f.write("AutoDetect=off\n")
            for name, _ in self.node_addrs():
                f.write(f"NodeName={name} Name=gpu File={r}/dev/nvidia[0-{self.gpus - 1}]\n")

    @property
    def ctld_host(self):
        """``SlurmctldHost``: where slurmctld runs (``NAME`` or ``NAME(ADDR)``)."""
        return self.node

    def node_addrs(self):
        """``[(NodeName, NodeAddr)]`` of the cluster's nodes."""
        return [(self.node, "127.0.0.1")]

    def _extra_conf(self):
        return []

    # ---------------------------------------------------------------- daemons
    def _spawn(self, name, args, argv=None):
        """Start a daemon (``argv`` replaces ``[exe, *args]``: a daemon entered into a node)."""
        log = open(os.path.join(self.root, "log", f"{name}.out"), "w")
        env = dict(self.env)
        self.procs[name] = subprocess.Popen(argv or [_exe(name), *args], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        log.close()

    def start(self, timeout=60):
        """Start the daemons and wait until the node is idle.

        Raises:
            SlurmUnavailable: a daemon exited or the node did not become idle in time
                (the message holds the end of the daemon logs).
        """
        self._write_config()
        r = self.root
        self._spawn("munged", ["-F", "-S", self.munge_socket, f"--key-file={r}/munge.key",
                               f"--log-file={r}/log/munged.log", f"--pid-file={r}/run/munged.pid",
                               f"--seed-file={r}/munged.seed"])
        self._wait(lambda: self._ok(["munge", "-S", self.munge_socket, "-n"]), 15, "munged")
        self._spawn("slurmctld", None, argv=self._on_node(None, [_exe("slurmctld"), "-D", "-i", "-f", self.conf]))
        self._wait(lambda: self._ok(["scontrol", "ping"]) and "UP" in self.run(["scontrol", "ping"]).stdout,
                   timeout, "slurmctld")
        for name, _ in self.node_addrs():
            self._start_slurmd(name)
        self._wait(lambda: self.node_states() and all(s.startswith("idle") for s in self.node_states().values()),
                   timeout, "slurmd (nodes idle)")
        return self

    def _start_slurmd(self, name):
        self._spawn(f"slurmd-{name}", None, argv=self._on_node(name, [_exe("slurmd"), "-D", "-f", self.conf, "-N", name]))

    def _on_head(self, argv):
        """``argv`` of a client command as run where slurmctld lives (here: this host)."""
        return argv

    def _on_node(self, name, argv):
        """``argv`` of a daemon as run on node ``name`` (None: slurmctld's host; here: this host)."""
        return argv

    def _ok(self, cmd):
        try:
            return self.run(cmd, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _wait(self, cond, timeout, what):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited with status {p.returncode}:\n{self.logs()}")
            if cond():
                return
            time.sleep(0.25)
        raise SlurmUnavailable(f"{what} not ready after {timeout}s:\n{self.logs()}")

    def logs(self, tail=3000):
        """The end of every daemon log, for failure messages."""
        out = []
        names = ["munged.out", "slurmctld.log", "slurmctld.out"]
        for node, _ in self.node_addrs():
            names += [f"slurmd-{node}.log", f"slurmd-{node}.out"]
        for name in names:
            path = os.path.join(self.root, "log", name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- {name}\n{f.read()[-tail:]}")
        return "\n".join(out)

    def node_states(self):
        """``{node: state}`` as sinfo prints it (``idle``, ``alloc``, ``down*``, ...)."""
        res = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=10)
        if res.returncode != 0:
            return {}
        return dict(line.split() for line in res.stdout.splitlines() if len(line.split()) == 2)

    def node_state(self):
        """The state of the first node."""
        return next(iter(self.node_states().values()), "")

    # ---------------------------------------------------------------- clients
    def run(self, cmd, timeout=30, env=None, cwd=None):
        """Run a Slurm client command against this cluster; returns the CompletedProcess."""
        return subprocess.run(self._on_head(list(cmd)), env={**self.env, **(env or {})}, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)

    def sbatch(self, script, options=(), env=None, args=(), cwd=None):
        """Submit ``script`` with sbatch ``options`` and ``--export=ALL``: the job's
        environment is this cluster's client environment plus ``env``.

        Returns:
            The job id (str; for an array, the array's job id).
        """
        env = {k: str(v) for k, v in (env or {}).items()}
        if not any(o in ("-o", "--output") or o.startswith("--output=") for o in options):
            options = ["-o", os.path.join(self.root, "%x-%j.out"), *options]  # never slurm-*.out in the cwd
        res = self.run(["sbatch", "--parsable", "--export=ALL", *options, script, *args], env=env, cwd=cwd)
        if res.returncode != 0:
            raise AssertionError(f"sbatch {script} failed ({res.returncode}): {res.stderr}")
        job = res.stdout.strip().split(";")[0]
        self.jobs.append(job)
        return job

    def job(self, job):
        """``scontrol show job -o JOB`` as a dict (one dict per array task: a list when
        ``job`` is an array with several tasks)."""
        res = self.run(["scontrol", "show", "job", "-o", str(job)], timeout=15)
        if res.returncode != 0:
            return []
        out = []
        for line in res.stdout.splitlines():
            if not line.strip():
                continue
            out.append(dict(tok.split("=", 1) for tok in line.split() if "=" in tok))
        return out

    def wait(self, job, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                                "BOOT_FAIL", "DEADLINE", "PREEMPTED"),
             timeout=120, cond=None):
        """Poll until every task of ``job`` is in one of ``states`` (and ``cond(tasks)``).

        Returns:
            The list of task dicts.
        """
        t_end = time.monotonic() + timeout
        tasks = []
        while time.monotonic() < t_end:
            tasks = self.job(job)
            if tasks and all(t.get("JobState") in states for t in tasks) and (cond is None or cond(tasks)):
                return tasks
            time.sleep(0.3)
        raise AssertionError(f"job {job} not in {states} after {timeout}s: "
                             f"{[(t.get('JobId'), t.get('JobState'), t.get('Reason')) for t in tasks]}")

    # ---------------------------------------------------------------- teardown
    def _leftovers(self):
        """PIDs of processes whose environment names this cluster (job processes, steps)."""
        mark = f"HPCTRAIN_SLURM_CLUSTER={self.root}".encode()
        mine = {os.getpid()}
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in mine:
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if mark in f.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                continue
        return pids

    def stop(self):
        """Cancel this cluster's jobs, stop its daemons by PID, kill leftover job processes."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            try:
                if self.jobs:
                    self.run(["scancel", *self.jobs], timeout=15)
                t_end = time.monotonic() + 15
                while time.monotonic() < t_end:
                    q = self.run(["squeue", "-h", "-o", "%i"], timeout=10)
                    if q.returncode != 0 or not q.stdout.strip():
                        break
                    time.sleep(0.3)
            except subprocess.TimeoutExpired:
                pass
        for name in [n for n in self.procs if n.startswith("slurmd")] + ["slurmctld", "munged"]:
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self._kill_leftovers()

    def _kill_leftovers(self):
        """SIGKILL every process that carries this cluster's mark (job processes, steps)."""
        _sigkill(self._leftovers())



#: The nodes' Epilog, as sites have one: remove the shared-memory files of the job's
#: processes that nobody has open or mapped any more. MPICH names its segments after the
#: PMI job and step id, so the segments a SIGKILLed rank leaves behind would make MPI_Init
#: of the same job, requeued onto the same node, fail ("Out of memory").
EPILOG = r"""#!/bin/sh
for f in /dev/shm/*; do
  [ -f "$f" ] || continue
  grep -qsF "$f" /proc/[0-9]*/maps && continue
  ls -l /proc/[0-9]*/fd 2>/dev/null | grep -qF -- "$f" && continue
  echo "epilog: job $SLURM_JOB_ID on $(hostname): removing $f" >&2
  rm -f -- "$f"
done
exit 0
"""


class MultiNodeSlurm(SlurmCluster):
    """slurmctld and one slurmd per node of an emulated cluster (:mod:`hpctrain.emulator`).

    Node ``node<i>`` is the emulator's network namespace ``<name>-n<i>`` (its own NIC
    ``eth0`` and address, a rate-limited link to a bridge) entered together with a UTS
    namespace (hostname ``node<i>``) and a mount namespace holding a private ``/dev/shm``
    (each node's own shared memory) and an ``/etc/hosts`` that names every node. slurmctld
    and every client command (sbatch, squeue, ...) run in the switch namespace as host
    ``head``; munged runs here: its socket is a file, reachable from every node. Jobs see a
    shared file system (this machine's), like a cluster's home or scratch.

    Args:
        nodes: number of nodes (``node1`` .. ``nodeN``).
        cpus: CPUs each node declares (oversubscribes the real cores on purpose).
        rate, node_rates: link rates (tc notation), see :class:`hpctrain.emulator.Cluster`.
        name: the emulated cluster's name (``hpct-XXXX``).
    """

    def __init__(self, root=None, nodes=2, cpus=4, gpus=2, rate="10gbit", node_rates=None, name=None):
        super().__init__(root, cpus=cpus, gpus=gpus)
        from hpctrain.emulator import Cluster

        self.net = Cluster(nodes=nodes, ranks_per_node=1, rate=rate, node_rates=node_rates,
                           name=name or f"hpct-s{os.getpid() % 10**7}")
        self.names = [f"node{i}" for i in range(1, nodes + 1)]
        self.node = "head"
        self.hosts = os.path.join(self.root, "hosts")
        # what the site's MPI environment would set: MPICH's ofi netmod over TCP on the NIC
        self.env.update(self.net.env())

    @property
    def ctld_host(self):
        return f"head({self.net.head})"

    def node_addrs(self):
        return [(n, self.net.addr(i)) for i, n in enumerate(self.names, 1)]

    def _extra_conf(self):
        epilog = os.path.join(self.root, "epilog.sh")
        with open(epilog, "w") as f:
            f.write(EPILOG)
        os.chmod(epilog, 0o755)
        # a node whose slurmd stops answering is DOWN after 30 s (default 300 s); not less: on a
        # loaded machine (the whole suite beside two busy loops on 2 cores) a live slurmd's reply
        # took over 10 s and the job step ended "Node failure"
        return ["SlurmdTimeout=30", "MessageTimeout=10", f"Epilog={epilog}"]

    def namespace(self, name):
        """The network namespace of node ``name`` (None: the switch, where slurmctld runs)."""
        return self.net.switch if name is None else self.net.ns(self.names.index(name) + 1)

    def _on_head(self, argv):
        return ["nsenter", f"--net=/run/netns/{self.net.switch}", *argv]

    def _on_node(self, name, argv):
        host = name or "head"
        setup = (f"mount --bind {shlex.quote(self.hosts)} /etc/hosts && "
                 "mount -t tmpfs -o size=1g,mode=1777 hpctrain-shm /dev/shm && "
                 f"hostname {host} && exec \"$@\"")
        return ["nsenter", f"--net=/run/netns/{self.namespace(name)}", "unshare", "--uts", "--mount",
                "--propagation", "private", "sh", "-c", setup, "sh", *argv]

    def start(self, timeout=60):
        from hpctrain.emulator import ClusterError

        try:
            self.net.up()
        except ClusterError as exc:
            raise SlurmUnavailable(str(exc)) from None
        try:
            with open(self.hosts, "w") as f:
                f.write(f"127.0.0.1 localhost\n{self.net.head} head\n")
                f.writelines(f"{addr} {name}\n" for name, addr in self.node_addrs())
            return super().start(timeout)
        except BaseException:
            self.stop()
            raise

    def node_pids(self, name, ranks_only=False):
        """PIDs of the processes on node ``name`` (``ranks_only``: not slurmd, slurmstepd)."""
        res = subprocess.run(["ip", "netns", "pids", self.namespace(name)], capture_output=True, text=True,
                             timeout=30)
        pids = [int(p) for p in res.stdout.split() if p.isdigit()]
        if not ranks_only:
            return pids
        out = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm == "hpctrain" or comm.startswith("python"):
                out.append(pid)
        return out

    def kill_node(self, name, ranks_only=False):
        """SIGKILL what runs on node ``name``: every process (a crashed node: slurmd,
        slurmstepd, the ranks) or, with ``ranks_only``, the job's ranks only. Returns the
        PIDs killed."""
        pids = self.node_pids(name, ranks_only)
        _sigkill(pids)
        return pids

    def revive_node(self, name, timeout=60):
        """Start node ``name``'s slurmd again (after :meth:`kill_node`) and return it to
        service (``scontrol update state=resume``); waits until it is idle."""
        p = self.procs.get(f"slurmd-{name}")
        if p is not None and p.poll() is None:
            p.kill()
        if p is not None:
            p.wait(timeout=10)
        self._start_slurmd(name)
        self.resume_node(name, timeout)

    def resume_node(self, name, timeout=60):
        """Return node ``name`` (set down, its slurmd answering) to service; waits until idle."""
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            state = self.node_states().get(name, "")
            if state.startswith("idle"):
                return
            if state.startswith(("down", "drain")) and not state.endswith("*"):  # answering, still down
                self.run(["scontrol", "update", f"nodename={name}", "state=resume"])
            time.sleep(0.3)
        raise AssertionError(f"{name} not idle after {timeout}s: "
                             f"{self.node_states()}\n{self.logs(1500)}")

    def set_rate(self, name, rate):
        """Change node ``name``'s link rate (both directions) while the cluster runs."""
        self.net.set_rate(self.names.index(name) + 1, rate)

    def stop(self):
        try:
            if self.net.is_up:
                super().stop()
        finally:
            self.net.down()
            self._kill_leftovers()

    def left_behind(self, timeout=10):
        """What :meth:`stop` failed to remove: ``{"processes": [...], "namespaces": [...]}``
        (empty lists when clean; processes get ``timeout`` s to finish dying)."""
        from hpctrain.emulator import list_clusters

        t_end = time.monotonic() + timeout
        while True:
            procs = [p for p in self._leftovers() if os.path.exists(f"/proc/{p}") and not _zombie(p)]
            if not procs or time.monotonic() > t_end:
                break
            time.sleep(0.2)
        names = [n for n in list_clusters() if n == self.net.name]
        return {"processes": procs, "namespaces": names}


def _sigkill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True

if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Start a private Slurm cluster until Ctrl-C.")
    ap.add_argument("--nodes", type=int, default=0,
                    help="emulated nodes (network namespaces, one slurmd each); 0: one node, this host")
    ap.add_argument("--rate", default="10gbit", help="link rate of the emulated nodes (tc notation)")
    a = ap.parse_args()
    reason = slurm_unavailable_reason()
    if reason:
        sys.exit(f"cannot start Slurm: {reason}")
    c = MultiNodeSlurm(nodes=a.nodes, rate=a.rate) if a.nodes else SlurmCluster()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        c.start()
        print(f"export SLURM_CONF={c.conf}   # Ctrl-C stops the cluster", flush=True)
        if a.nodes:
            for k in ("MPIR_CVAR_CH4_NETMOD", "FI_PROVIDER", "FI_TCP_IFACE"):
                print(f"export {k}={c.env[k]}")
            print(f"# clients run where slurmctld is: nsenter --net=/run/netns/{c.net.switch} sbatch ...", flush=True)
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        c.stop()
        print(c.logs(800))
        shutil.rmtree(c.root, ignore_errors=True)
