"""The process-wide state of ``hpctrain.torch``: communicator, error handling, agreement.

:func:`init` creates the world communicator once, sizes torch's thread pool, and installs
an exception hook so that an error on one rank ends the whole job (one line on stderr for
hpctrain's own errors, then ``MPI_Abort``) instead of leaving the other ranks waiting.
"""

import os
import sys

from ..errors import HpctrainError

__all__ = ["init", "comm", "rank", "size", "agree_error", "torch_module"]

_STATE = {"comm": None, "hook": None}


def torch_module():
    """The ``torch`` package, or a ConfigError saying how to install it."""
    try:
        import torch
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("hpctrain.torch needs PyTorch: pip install 'hpctrain[torch]'") from None
    return torch


def _excepthook(kind, value, tb):
    """End the job on an uncaught exception, never leaving a rank waiting.

    An hpctrain error that every rank raised together (:func:`agree_error`): rank 0 prints
    one line, every rank finalizes MPI and exits with the error's status (2). Any other
    hpctrain error: this rank prints one line and aborts the job. Anything else: the usual
    traceback, then abort.
    """
    from ..comm.communicator import abort_world, finalize

    c = _STATE["comm"]
    r = c.rank if c is not None else 0
    if isinstance(value, HpctrainError):
        code = value.exit_code
        if getattr(value, "agreed", False):
            if r == 0 and str(value):
                print(f"hpctrain: {value.label}: {value}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            finalize()
            os._exit(code)
        if str(value):
            where = f" (rank {r})" if c is not None and c.size > 1 else ""
            print(f"hpctrain: {value.label}{where}: {value}", file=sys.stderr, flush=True)
    else:
        _STATE["hook"](kind, value, tb)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    abort_world(code)
    os._exit(code)


def init(threads=None, quiet=False):
    """Initialise hpctrain for a script launched by ``mpiexec`` or ``srun`` (idempotent).

    Args:
        threads: torch intra-op threads for this rank (default: the node's cores divided
            by the ranks on the node, or ``HPCTRAIN_THREADS``).
        quiet: do not print the one-rank notice.

    Returns:
        The :class:`~hpctrain.comm.Communicator` over all ranks.

    Outside an MPI launch (``python script.py``) it runs as one rank and says so once.
    """
    if _STATE["comm"] is not None:
        return _STATE["comm"]
    from ..comm import launched_by_mpi, world
    from ..threads import default_threads

    c = world("host")
    _STATE["comm"] = c
    torch = torch_module()
    torch.set_num_threads(int(threads) if threads else default_threads())
    if _STATE["hook"] is None:
        _STATE["hook"] = sys.excepthook
        sys.excepthook = _excepthook
    if not launched_by_mpi() and not quiet:
        print("hpctrain: not started by mpiexec or srun: running as one rank", file=sys.stderr)
    return c


def comm():
    """The world communicator (:func:`init` first)."""
    return _STATE["comm"] if _STATE["comm"] is not None else init()


def rank():
    """This process's rank."""
    return comm().rank


def size():
    """Number of ranks."""
    return comm().size


def agree_error(c, fn, exc_type=HpctrainError):
    """Run ``fn()`` on every rank and make a failure everyone's: if it raises an hpctrain
    error on any rank, every rank raises ``exc_type`` with the first failing rank's message.

    Returns:
        ``fn()``'s result.
    """
    msg = ""
    try:
        out = fn()
    except HpctrainError as exc:
        out, msg = None, str(exc) or type(exc).__name__
        exc_type = type(exc)
    if c.size == 1:
        if msg:
            _raise(exc_type, msg)
        return out
    import numpy as np

    flags = c.allgather_array(np.array([1 if msg else 0], dtype=np.int64))[:, 0]
    if flags.any():
        first = int(np.flatnonzero(flags)[0])
        text = c.bcast_bytes(msg.encode(), root=first).decode("utf-8", "replace")
        _raise(exc_type, text if first == 0 else f"rank {first}: {text}")
    return out


def _raise(exc_type, msg):
    exc = exc_type(msg)
    exc.agreed = True  # every rank raises it: exit together (see _excepthook)
    raise exc
