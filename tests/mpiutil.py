"""Launch ``mpiexec -n N`` jobs from tests with a hard timeout; never leave processes behind.

The job runs in its own process session; on timeout the whole process group (mpiexec, its
proxies and every rank) is killed and the test fails.
"""

import os
import shutil
import signal
import subprocess
import sys

__all__ = ["mpiexec_path", "mpiexec_cmd", "run_mpi", "kill_group", "descendants", "WORKERS", "HPCTRAIN"]

WORKERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workers")
_BIN = os.path.dirname(sys.executable)
HPCTRAIN = os.path.join(_BIN, "hpctrain")


def mpiexec_path():
    """The ``mpiexec`` next to this Python (venv with the MPICH wheel), else on PATH."""
    here = os.path.join(_BIN, "mpiexec")
    if os.path.exists(here):
        return here
    found = shutil.which("mpiexec")
    if not found:
        raise RuntimeError("mpiexec not found: install hpctrain[mpich] or load an MPI module")
    return found


def mpiexec_cmd(n):
    """``[mpiexec, -n, N, ...]`` with oversubscription allowed for Open MPI."""
    exe = mpiexec_path()
    cmd = [exe, "-n", str(n)]
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    if "Open MPI" in out or "OpenRTE" in out:
        cmd.append("--oversubscribe")
    return cmd


def descendants(pid):
    """Every live process below ``pid`` (MPICH's proxies start their own sessions, so
    killing the process group alone can miss the ranks)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_group(proc):
    """Kill ``proc``, its process group and every descendant, and reap it."""
    pids = descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def run_mpi(n, args, timeout=120, env=None, cwd=None, check=True):
    """Run ``mpiexec -n n [python] args...`` and return a CompletedProcess.

    Python is put in front when ``args[0]`` is a ``.py`` script or an option (``-m``);
    otherwise ``args[0]`` is the program (e.g. the ``hpctrain`` console script).

    Args:
        n: ranks.
        args: arguments after the Python interpreter, e.g. ``["-m", "hpctrain", "info"]``
            or a worker script path and its arguments.
        timeout: seconds before the job's process group is killed and the test fails.
        env: extra environment variables; a value of None removes the variable.
        check: raise AssertionError with the output if the exit status is non-zero.
    """
    args = [str(a) for a in args]
    prog = [sys.executable] if args[0].endswith(".py") or args[0].startswith("-") else []
    cmd = mpiexec_cmd(n) + prog + args
    full_env = dict(os.environ)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    full_env["HPCTRAIN_THREADS"] = "1"
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"mpiexec -n {n} {' '.join(map(str, args))} hung for {timeout}s and was killed")
    finally:
        if proc.poll() is None:
            kill_group(proc)
    res = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and res.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {res.returncode}\n--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}"
        )
    return res
