"""Thread-pool sizing for each MPI rank.

Every rank of a job shares the node's cores with the other ranks on that node. NumPy's
BLAS (and any OpenMP runtime) starts one thread per core by default, so ``k`` ranks on a
node start ``k x cores`` spinning threads. Measured on a 2-core machine: a NumPy +
MPI_Allreduce training loop on 2 ranks ran ~30x faster with one BLAS thread per rank.

:func:`default_thread_env` runs when :mod:`hpctrain` is imported, before NumPy loads, and
sets the usual variables to ``max(1, cores // ranks_on_this_node)`` unless the user set
them. :func:`limit_threads` changes the limit at run time (``--threads``) through
threadpoolctl, which also works after NumPy has loaded.
"""

import os

from .errors import ConfigError

__all__ = ["THREAD_VARS", "check_thread_env", "local_ranks", "slurm_tasks_per_node", "local_rank", "default_threads", "default_thread_env", "limit_threads"]

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# Variables launchers set to the number of ranks on this node (MPICH/hydra, Open MPI,
# Intel MPI, MVAPICH, Slurm).
_LOCAL_SIZE_VARS = (
    "MPI_LOCALNRANKS",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCAL_NRANKS",
    "MV2_COMM_WORLD_LOCAL_SIZE",
    "PMI_LOCAL_SIZE",
)


_LOCAL_RANK_VARS = (
    "MPI_LOCALRANKID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MV2_COMM_WORLD_LOCAL_RANK",
    "PMI_LOCAL_RANK",
    "SLURM_LOCALID",
)


def local_rank(environ=None):
    """This process's index among the ranks on its node (0 when unknown), from the
    launcher's environment; used to pick one GPU per rank."""
    env = os.environ if environ is None else environ
    for var in _LOCAL_RANK_VARS:
        value = env.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def local_ranks(environ=None):
    """Number of MPI ranks sharing this node, read from the launcher's environment.

    Args:
        environ: mapping to read (defaults to ``os.environ``).

    Returns:
        The count, or 1 when not launched by a known launcher.
    """
    env = os.environ if environ is None else environ
    for var in _LOCAL_SIZE_VARS:
        value = env.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    # an srun task: this node's entry of the step's (or job's) tasks per node
    if env.get("SLURM_PROCID") is not None:
        counts = slurm_tasks_per_node(env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE", ""))
        node = env.get("SLURM_NODEID", "0")
        mine = counts[min(int(node) if node.isdigit() else 0, len(counts) - 1)] if counts else 0
        if mine > 0:
            return mine
    return 1


def slurm_tasks_per_node(text):
    """Slurm's compressed tasks-per-node list expanded: ``"2(x3),1"`` -> ``[2, 2, 2, 1]``
    (``[]`` when ``text`` is not one)."""
    out = []
    for part in filter(None, text.split(",")):
        count, _, rep = part.partition("(x")
        rep = rep.rstrip(")") if rep else "1"
        if not (count.isdigit() and rep.isdigit()):
            return []
        out += [int(count)] * int(rep)
    return out


def default_threads(environ=None):
    """Threads per rank: this process's cores divided by the ranks on this node (>= 1).

    ``HPCTRAIN_THREADS`` overrides the computed value.
    """
    env = os.environ if environ is None else environ
    try:
        forced = check_thread_env(env)
    except ConfigError:
        forced = None  # the import-time default never raises; a run reports the bad value
    return forced or max(1, _cores() // local_ranks(env))


def check_thread_env(environ=None):
    """``HPCTRAIN_THREADS`` as an int, None when unset; ConfigError when it is set but is
    not an integer in [1, 1024] (the import-time default ignores it; a run reports it)."""
    env = os.environ if environ is None else environ
    forced = env.get("HPCTRAIN_THREADS", "")
    if not forced:
        return None
    if not (forced.isdigit() and 0 < int(forced) <= 1024):
        raise ConfigError(f"HPCTRAIN_THREADS must be an integer in [1, 1024], got {forced!r}; unset it for the default "
                          "(cores / ranks on the node)")
    return int(forced)


def default_thread_env(environ=None):
    """Set the thread-count variables that the user did not set. Call before NumPy loads.

    Returns:
        The thread count applied.
    """
    env = os.environ if environ is None else environ
    n = default_threads(env)
    for var in THREAD_VARS:
        env.setdefault(var, str(n))
    return n


def limit_threads(n):
    """Limit BLAS/OpenMP pools of this process to ``n`` threads at run time.

    Args:
        n: threads (>= 1).

    Returns:
        The threadpoolctl controller (keeps the limit while referenced).
    """
    from threadpoolctl import threadpool_limits

    for var in THREAD_VARS:
        os.environ[var] = str(n)
    return threadpool_limits(limits=n)
