"""A private single-node Slurm cluster for tests: munged + slurmctld + slurmd as children.

Everything lives in one temporary directory: a munge key and socket of its own, a
``slurm.conf`` on non-default ports, state, spool and log directories, and a fake GPU
GRES (``gres.conf`` pointing at two empty files) so that GPU job scripts can be
scheduled on a CPU-only machine. Clients reach it through ``SLURM_CONF``; a site's own
Slurm or munge is never touched. :meth:`SlurmCluster.stop` cancels the jobs, stops only
the daemons it started (by PID) and kills any process left over from its jobs (found by
the cluster's directory in their environment).

Run ``python tests/slurm/cluster.py`` to start one by hand; it prints the ``SLURM_CONF``
to export and runs until Ctrl-C.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["SlurmCluster", "SlurmUnavailable", "slurm_unavailable_reason", "ensure_installed"]

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
        self.env["SLURM_CONF"] = self.conf
        self.env["HPCTRAIN_SLURM_CLUSTER"] = self.root  # marks every process of this cluster

    # ---------------------------------------------------------------- configuration
    def _write_config(self):
        r = self.root
        for d in ("state", "spool", "log", "run", "dev"):
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
            f"SlurmctldHost={self.node}",
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
            f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/run/slurmctld.pid",
            f"SlurmdPidFile={r}/run/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd.log",
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
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} Boards=1 SocketsPerBoard=1 "
            f"CoresPerSocket={self.cpus} ThreadsPerCore=1 RealMemory=4000 Gres=gpu:{self.gpus} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        open(os.path.join(r, "plugstack.conf"), "w").close()
        with open(os.path.join(r, "gres.conf"), "w") as f:  # read from slurm.conf's directory
            f.write("AutoDetect=off\n")
            f.write(f"NodeName={self.node} Name=gpu File={r}/dev/nvidia[0-{self.gpus - 1}]\n")

    # ---------------------------------------------------------------- daemons
    def _spawn(self, name, args):
        log = open(os.path.join(self.root, "log", f"{name}.out"), "w")
        env = dict(self.env)
        self.procs[name] = subprocess.Popen([_exe(name), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
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
        self._spawn("slurmctld", ["-D", "-i", "-f", self.conf])
        self._wait(lambda: self._ok(["scontrol", "ping"]) and "UP" in self.run(["scontrol", "ping"]).stdout,
                   timeout, "slurmctld")
        self._spawn("slurmd", ["-D", "-f", self.conf, "-N", self.node])
        self._wait(lambda: self.node_state().startswith("idle"), timeout, "slurmd (node idle)")
        return self

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
        for name in ("munged.out", "slurmctld.log", "slurmctld.out", "slurmd.log", "slurmd.out"):
            path = os.path.join(self.root, "log", name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- {name}\n{f.read()[-tail:]}")
        return "\n".join(out)

    def node_state(self):
        res = self.run(["sinfo", "-h", "-N", "-o", "%t"], timeout=10)
        return res.stdout.strip() if res.returncode == 0 else ""

    # ---------------------------------------------------------------- clients
    def run(self, cmd, timeout=30, env=None, cwd=None):
        """Run a Slurm client command against this cluster; returns the CompletedProcess."""
        return subprocess.run(cmd, env={**self.env, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)

    def sbatch(self, script, options=(), env=None, args=(), cwd=None):
        """Submit ``script`` with sbatch ``options`` and ``--export=ALL``: the job's
        environment is this cluster's client environment plus ``env``.

        Returns:
            The job id (str; for an array, the array's job id).
        """
        env = {k: str(v) for k, v in (env or {}).items()}
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
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        for pid in self._leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


if __name__ == "__main__":
    reason = slurm_unavailable_reason()
    if reason:
        sys.exit(f"cannot start Slurm: {reason}")
    c = SlurmCluster()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        c.start()
        print(f"export SLURM_CONF={c.conf}   # Ctrl-C stops the cluster", flush=True)
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        c.stop()
        print(c.logs(800))
        shutil.rmtree(c.root, ignore_errors=True)
