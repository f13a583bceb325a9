"""Chaos soak: one training job on a four-node emulated Slurm cluster survives N seeded random
faults, each time requeued and resumed, and ends bit-identical to an uninterrupted run.

    sudo .venv/bin/python jobs/chaos_soak.py --faults 10 --seed 1 [--out DIR]

Needs root, Slurm (slurm-wlm, munge) and the cluster emulator (network namespaces, tc): it
starts its own private cluster (tests/slurm/cluster.py: MultiNodeSlurm, four nodes, one rank
each) and tears it down however it ends. The job is jobs/train.sbatch with a deterministic
configuration (dmsgd, ring, softmax, synthetic data, float64, a checkpoint every few steps,
every checkpoint kept); its checkpoint directory is a small tmpfs of its own, so that it can
be filled. Fault kinds (``--kinds``, seeded order; with N >= the number of kinds each kind
comes at least once):

    rank      SIGKILL one rank on a random node; the job fails, the soak requeues it
    node      kill a node (its slurmd, slurmstepd and rank); Slurm marks it down and
              requeues the job (NODE_FAIL); the soak restarts the node's slurmd
    preempt   scancel --signal=USR1 --batch: checkpoint, exit 75, the job requeues itself
    slow      one node's link slowed to --slow-rate for a few seconds (tc), then restored
    diskfull  the checkpoint directory filled: the next checkpoint write fails cleanly
              (one line, exit 2), the fill is removed and the job requeued

After each fault the soak waits until the job runs again and writes a newer checkpoint.
At the end: the job COMPLETED; its final parameters equal, bit for bit, those of an
uninterrupted run of the same job; ``hpctrain inspect --verify`` passes on every checkpoint;
no checkpoint that existed at a fault is missing; no process of the cluster and no network
namespace is left. Prints a table (kind, time, step reached, recovery seconds) and PASS or
FAIL; exit status 0 (PASS), 1 (FAIL), 2 (cannot run here, or bad arguments).
"""

import argparse
import atexit
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "slurm"))

from cluster import MultiNodeSlurm, SlurmUnavailable, slurm_unavailable_reason  # noqa: E402

KINDS = ("rank", "node", "preempt", "slow", "diskfull")
CONFIG = "jobs/configs/tiny-a.toml"  # dmsgd, ring, softmax, synthetic, float64: deterministic
NODES = 4


class SoakError(Exception):
    """The soak cannot go on (a wait timed out, the job ended early); the message says why."""


def plan(n, seed, kinds):
    """The seeded fault sequence: every kind once (shuffled) while n allows, then random."""
    rng = random.Random(seed)
    first = list(kinds)
    rng.shuffle(first)
    seq = first[:n] + [rng.choice(kinds) for _ in range(n - len(first))]
    return seq, rng


def checkpoints(run_dir):
    return sorted(glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.h5")))


def step_of(path):
    import re

    return int(re.match(r"ckpt-(\d+)", os.path.basename(path)).group(1))


def newest_step(run_dir):
    return max((step_of(p) for p in checkpoints(run_dir)), default=-1)


def final_params(run_dir):
    import h5py

    path = max(checkpoints(run_dir), key=step_of)
    with h5py.File(path, "r") as f:
        return f["params"][()], int(f.attrs["step"])


def tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return f"(no output file {path})"


#: ``hpctrain inspect --verify PATH`` for each path given, in one process (one start of
#: Python instead of hundreds); prints ``STATUS PATH`` per path and the error lines
VERIFY = r"""
import contextlib, io, sys
from hpctrain.cli import cli
for path in sys.argv[1:]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            cli.main(args=["inspect", "--verify", path], prog_name="hpctrain", standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:
        code, err = 2, io.StringIO(f"{type(exc).__name__}: {exc}")
    print(code, path, err.getvalue().strip().replace(chr(10), " | "), flush=True)
"""


def verify_all(paths, timeout=600):
    """``hpctrain inspect --verify`` on every path; returns ``[(path, why)]`` of those that fail."""
    res = subprocess.run([sys.executable, "-c", VERIFY, *paths], capture_output=True, text=True, timeout=timeout)
    bad, seen = [], set()
    for line in res.stdout.splitlines():
        code, path, *why = line.split(" ", 2)
        seen.add(path)
        if code != "0":
            bad.append((path, f"exit {code}: {' '.join(why)}"))
    bad += [(p, f"not checked ({res.stderr.strip()[-300:]})") for p in paths if p not in seen]
    return bad


class Soak:
    def __init__(self, args):
        self.a = args
        self.root = args.out or tempfile.mkdtemp(prefix="hpctrain-chaos-")
        os.makedirs(self.root, exist_ok=True)
        self.cluster = None
        self.cluster_root = None
        self.mounts = []
        self.rows = []
        self.problems = []
        self.fill = None

    # ------------------------------------------------------------------ setup
    def job_env(self, run_dir):
        return {"RUN_DIR": run_dir, "VENV": sys.prefix, "HPCTRAIN_THREADS": 1, "PYTHONUNBUFFERED": 1,
                "CONFIG": CONFIG, "CHECKPOINT_EVERY": f"{self.a.every}steps", "KEEP": 0,
                "TRAIN_ARGS": f"--epochs {self.a.epochs}", "SRUN_WAIT": 5,
                "PYTHONPATH": os.environ.get("PYTHONPATH", "")}

    def submit(self, name):
        run_dir = os.path.join(self.root, name)
        os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        out = os.path.join(self.root, f"{name}.out")
        job = self.cluster.sbatch(os.path.join(REPO, "jobs", "train.sbatch"),
                                  ["-o", out, "-J", name, "-N", str(NODES), "--ntasks-per-node=1"],
                                  env=self.job_env(run_dir), cwd=REPO)
        return job, run_dir, out

    def start(self):
        run_dir = os.path.join(self.root, "chaos")
        ck = os.path.join(run_dir, "checkpoints")
        os.makedirs(ck, exist_ok=True)
        # before the nodes start: each node's mount namespace is a private copy of this one
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.a.ckpt_fs},mode=0755", "hpctrain-chaos", ck],
                       check=True, timeout=30)
        self.mounts.append(ck)
        name = f"hpct-c{os.getpid() % 10**6}"
        # the cluster's own directory: short, and every directory above munged's socket must be
        # executable for all (a private --out may not be)
        self.cluster_root = tempfile.mkdtemp(prefix="hpctrain-chaos-slurm-")
        self.cluster = MultiNodeSlurm(self.cluster_root, nodes=NODES, cpus=2, name=name)
        self.cluster.start()

    # ------------------------------------------------------------------ waiting
    def state(self, job):
        t = (self.cluster.job(job) or [{}])[0]
        return t.get("JobState", "?"), int(t.get("Restarts", "0") or 0)

    def wait_until(self, cond, timeout, what):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if cond():
                return
            time.sleep(0.3)
        raise SoakError(f"{what}: not after {timeout} s")

    def wait_progress(self, job, run_dir, after_step, out):
        """Until the job runs and has written a checkpoint newer than ``after_step``."""
        def cond():
            st, _ = self.state(job)
            if st in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"):
                if st == "COMPLETED" and newest_step(run_dir) > after_step:
                    return True
                raise SoakError(f"job {job} ended ({st}) instead of recovering\n{tail(out)}")
            return st == "RUNNING" and newest_step(run_dir) > after_step
        self.wait_until(cond, self.a.recover_timeout, f"job {job} progressing past step {after_step}")

    def requeue(self, job, restarts):
        res = self.cluster.run(["scontrol", "requeue", job])
        if res.returncode != 0:
            raise SoakError(f"scontrol requeue {job} failed: {res.stderr.strip()}")
        self.wait_until(lambda: self.state(job)[1] > restarts, 60, f"job {job} requeued")

    def wait_ended(self, job, timeout=90):
        ended = ("FAILED", "COMPLETED", "CANCELLED", "NODE_FAIL", "PENDING", "REQUEUED")
        self.wait_until(lambda: self.state(job)[0] in ended, timeout, f"job {job} ending after the fault")

    # ------------------------------------------------------------------ faults
    def fault(self, kind, job, run_dir, rng, out):
        c = self.cluster
        _, restarts = self.state(job)
        node = rng.choice(c.names)
        if kind == "rank":
            pids = c.node_pids(node, ranks_only=True)
            if not pids:
                raise SoakError(f"no rank found on {node}")
            os.kill(rng.choice(sorted(pids)), signal.SIGKILL)
            self.wait_ended(job)
            if self.state(job)[1] == restarts:
                self.requeue(job, restarts)
            return node
        if kind == "node":
            c.kill_node(node)
            # Slurm notices (SlurmdTimeout), ends the job NODE_FAIL and requeues it (--requeue)
            self.wait_until(lambda: self.state(job)[1] > restarts or self.state(job)[0] == "FAILED", 120,
                            f"job {job} requeued after {node} was killed")
            c.revive_node(node, timeout=120)
            if self.state(job)[1] == restarts:
                self.requeue(job, restarts)
            return node
        if kind == "preempt":
            res = c.run(["scancel", "--signal=USR1", "--batch", job])
            if res.returncode != 0:
                raise SoakError(f"scancel --signal=USR1 failed: {res.stderr.strip()}")
            self.wait_until(lambda: self.state(job)[1] > restarts, 90, f"job {job} requeued itself after USR1")
            return "batch"
        if kind == "slow":
            c.set_rate(node, self.a.slow_rate)
            try:
                time.sleep(rng.uniform(2, 5))
            finally:
                c.set_rate(node, self.a.job_rate)
            return node
        if kind == "diskfull":
            self.fill_checkpoint_fs(run_dir)
            try:
                self.wait_ended(job)
            finally:
                self.free_checkpoint_fs()
            if self.state(job)[1] == restarts:
                self.requeue(job, restarts)
            return "checkpoints"
        raise SoakError(f"unknown fault kind {kind}")

    def fill_checkpoint_fs(self, run_dir):
        """Fill the checkpoint tmpfs up to its last byte (a file removed again by
        :meth:`free_checkpoint_fs`)."""
        self.fill = os.path.join(run_dir, "checkpoints", ".chaos-fill")
        fd = os.open(self.fill, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 1):
                block = b"\0" * size
                try:
                    while True:
                        os.write(fd, block)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free_checkpoint_fs(self):
        if self.fill:
            try:
                os.remove(self.fill)
            except OSError:
                pass
            self.fill = None

    # ------------------------------------------------------------------ the soak
    def run(self):
        a = self.a
        seq, rng = plan(a.faults, a.seed, a.kinds)
        print(f"chaos soak: {a.faults} faults, seed {a.seed}: {' '.join(seq)}; in {self.root}", flush=True)
        self.start()
        c = self.cluster
        ref, ref_dir, ref_out = self.submit("reference")
        self.wait_until(lambda: self.state(ref)[0] in ("COMPLETED", "FAILED", "CANCELLED"), a.job_timeout,
                        "the uninterrupted reference run")
        if self.state(ref)[0] != "COMPLETED":
            raise SoakError(f"the reference run ended {self.state(ref)[0]}\n{tail(ref_out)}")
        want, want_step = final_params(ref_dir)
        print(f"reference: {want_step} steps, uninterrupted", flush=True)

        # pace the job (links only: the arithmetic, hence the result, is the same) so that it
        # cannot finish between two faults
        for name in c.names:
            c.set_rate(name, a.job_rate)
        job, run_dir, out = self.submit("chaos")
        seen = set()
        t0 = time.monotonic()
        self.wait_progress(job, run_dir, -1, out)
        for i, kind in enumerate(seq, 1):
            time.sleep(rng.uniform(0.5, 2.0))
            if self.state(job)[0] != "RUNNING":
                raise SoakError(f"job {job} is {self.state(job)[0]} before fault {i}; raise --epochs\n{tail(out)}")
            seen.update(os.path.basename(p) for p in checkpoints(run_dir))
            step = newest_step(run_dir)
            t = time.monotonic()
            where = self.fault(kind, job, run_dir, rng, out)
            # a preempted run writes a checkpoint as it stops: progress is a newer one
            self.wait_progress(job, run_dir, max(step, newest_step(run_dir)), out)
            row = (i, kind, where, t - t0, step, newest_step(run_dir), time.monotonic() - t)
            self.rows.append(row)
            print("fault %2d %-8s %-11s at %6.1f s, step %5d -> %5d, recovered in %5.1f s" % row, flush=True)

        self.wait_until(lambda: self.state(job)[0] not in ("RUNNING", "PENDING", "CONFIGURING", "COMPLETING"),
                        a.job_timeout, f"job {job} finishing")
        st = self.state(job)[0]
        if st != "COMPLETED":
            self.problems.append(f"the job ended {st}")
        else:
            got, got_step = final_params(run_dir)
            import numpy as np

            if got_step != want_step or got.shape != want.shape or not np.array_equal(got, want):
                self.problems.append(f"final parameters differ from the uninterrupted run (step {got_step} vs "
                                     f"{want_step}, max |diff| "
                                     f"{np.abs(got - want).max() if got.shape == want.shape else 'shape'})")
        missing = sorted(seen - {os.path.basename(p) for p in checkpoints(run_dir)})
        if missing:
            self.problems.append(f"checkpoints lost: {missing}")
        paths = checkpoints(run_dir) + [max(checkpoints(ref_dir), key=step_of)]
        for path, why in verify_all(paths):
            self.problems.append(f"hpctrain inspect --verify {path}: {why}")
        print(f"hpctrain inspect --verify: {len(paths)} checkpoints checked", flush=True)
        if self.problems:
            print(tail(out, 4000))

    def teardown(self):
        """Stop the cluster, unmount the tmpfs; returns what was left behind (empty: clean)."""
        left = {}
        self.free_checkpoint_fs()
        if self.cluster is not None:
            try:
                self.cluster.stop()
            finally:
                left = {k: v for k, v in self.cluster.left_behind().items() if v}
            self.cluster = None
        if self.cluster_root:
            if self.a.out:  # the Slurm logs stay with the run
                shutil.copytree(os.path.join(self.cluster_root, "log"), os.path.join(self.root, "slurm-logs"),
                                dirs_exist_ok=True)
            shutil.rmtree(self.cluster_root, ignore_errors=True)
            self.cluster_root = None
        while self.mounts:
            m = self.mounts.pop()
            if self.a.out:  # the checkpoints live on the tmpfs: keep a copy
                shutil.copytree(m, m + "-kept", ignore=shutil.ignore_patterns(".chaos-fill"), dirs_exist_ok=True)
            subprocess.run(["umount", "-l", m], capture_output=True, timeout=30)
        return left

    def report(self):
        print("\n  #  kind      where        time s  step at fault  step reached  recovery s")
        for i, kind, where, t, s0, s1, rec in self.rows:
            print(f"{i:3d}  {kind:<8s}  {where:<11s} {t:7.1f}  {s0:13d}  {s1:12d}  {rec:10.1f}")
        if self.rows:
            recs = [r[-1] for r in self.rows]
            print(f"recovery: mean {sum(recs) / len(recs):.1f} s, max {max(recs):.1f} s over {len(recs)} faults")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """Bad arguments: one line on stderr, exit status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse(argv=None):
    ap = _Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--faults", type=int, default=10, help="number of faults [10]")
    ap.add_argument("--seed", type=int, default=1, help="seed of the fault sequence, nodes and pauses [1]")
    ap.add_argument("--out", help="directory for the run (kept); default: a temporary one, removed on PASS")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"fault kinds to draw from [{','.join(KINDS)}]")
    ap.add_argument("--epochs", type=int, help="epochs of the job [max(6, 3 x faults)]")
    ap.add_argument("--every", type=int, default=5, help="checkpoint every this many steps [5]")
    ap.add_argument("--ckpt-fs", default="64m", help="size of the checkpoint directory's tmpfs [64m]")
    ap.add_argument("--job-rate", default="5mbit",
                    help="link rate of every node during the soaked job (tc notation; paces it) [5mbit]")
    ap.add_argument("--slow-rate", default="500kbit", help="rate of a slowed link (tc notation) [500kbit]")
    ap.add_argument("--recover-timeout", type=float, default=240, help="seconds a fault may take to recover [240]")
    ap.add_argument("--job-timeout", type=float, default=900, help="seconds a job may run [900]")
    a = ap.parse_args(argv)
    a.kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    bad = [k for k in a.kinds if k not in KINDS]
    if bad or not a.kinds:
        ap.error(f"unknown fault kind(s) {bad or '(none)'}; choose from {', '.join(KINDS)}")
    if a.faults < 1 or a.every < 1 or (a.epochs is not None and a.epochs < 1):
        ap.error("--faults, --every and --epochs must be positive")
    if a.epochs is None:
        a.epochs = max(6, 3 * a.faults)
    if a.out:
        a.out = os.path.abspath(a.out)
        if os.path.exists(a.out) and os.listdir(a.out):
            ap.error(f"--out {a.out} is not empty")
    return a


def main(argv=None):
    a = parse(argv)
    reason = slurm_unavailable_reason()
    if reason is None:
        from hpctrain.emulator import available

        reason = available()
    if reason:
        print(f"chaos_soak: cannot run here: {reason}", file=sys.stderr)
        return 2
    soak = Soak(a)
    done = []

    def cleanup():
        if not done:
            done.append(soak.teardown())
        return done[0]

    atexit.register(cleanup)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        soak.run()
    except (SoakError, SlurmUnavailable, subprocess.SubprocessError, OSError) as exc:
        soak.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        left = cleanup()
    if left:
        soak.problems.append(f"left behind: {left}")
    soak.report()
    ok = not soak.problems and len(soak.rows) == a.faults
    for p in soak.problems:
        print(f"FAIL: {p}")
    print("PASS" if ok else "FAIL", flush=True)
    if ok and not a.out:
        shutil.rmtree(soak.root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
