"""Memory pre-flight: estimate what a run will allocate per rank before allocating it.

Sizes come from the user (a hidden layer, a layer string, a label, a world size for a
mixing matrix, a benchmark size); one that cannot fit must be one line naming the size,
not a ``MemoryError`` traceback from every rank. The estimate counts the large arrays
a rank holds for the whole run: parameters, gradient, the algorithm's state buffers,
collective scratch, the float64 initialisation buffer, the mixing matrix, and on rank 0
the gathered copies a checkpoint writes; the data set is already loaded (its size was
checked by the reader) and is added to the total. The budget is ``--max-memory`` when
given, else the node's available memory (MemAvailable) shared by the ranks on the node.
"""

import os
import re

from .errors import ConfigError

__all__ = ["available_memory", "budget", "parse_memory", "check_fits", "training_estimate", "format_bytes"]

_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20,
          "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40, "TIB": 2**40}


def available_memory():
    """Bytes of memory this node may still give (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def parse_memory(text):
    """``'8G'`` -> 8 GiB in bytes; ``''`` -> None (use the node's available memory)."""
    if text == "":
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text, re.ASCII)
    if not m or m.group(2).upper() not in _UNITS or float(m.group(1)) <= 0:
        raise ConfigError(f"max_memory must look like '512M', '8G' or '1.5T', got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_bytes(n):
    """Bytes in words: ``'3.2 GB'``, ``'12.0 MB'``, ``'8.0 TB'``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size or unit == "MB":
            return f"{n / size:.1f} {unit}"
    return f"{n} B"  # pragma: no cover


def budget(max_memory="", ranks_on_node=1):
    """(bytes one rank may use or None when unknown, where that figure comes from)."""
    limit = parse_memory(max_memory)
    if limit is not None:
        return limit, f"--max-memory {max_memory}"
    avail = available_memory()
    if avail is None:
        return None, "unknown"
    ranks_on_node = max(int(ranks_on_node), 1)
    share = f" / {ranks_on_node} ranks on this node" if ranks_on_node > 1 else ""
    return avail // ranks_on_node, f"{format_bytes(avail)} available{share}"


def check_fits(parts, max_memory="", ranks_on_node=1, hint=""):
    """Raise ConfigError when the sum of ``parts`` (name -> bytes) exceeds the budget.

    Args:
        parts: what one rank will hold, name -> bytes (the message names the largest).
        max_memory: the ``--max-memory`` text ('' = the node's available memory).
        ranks_on_node: ranks that share the node's memory.
        hint: what to change, appended to the message.
    """
    total = sum(parts.values())
    limit, source = budget(max_memory, ranks_on_node)
    if limit is None or total <= limit:
        return total
    big = sorted(((v, k) for k, v in parts.items() if v), reverse=True)[:3]
    detail = ", ".join(f"{k} {format_bytes(v)}" for v, k in big)
    raise ConfigError(f"this run needs about {format_bytes(total)} per rank ({detail}), more than "
                      f"{format_bytes(limit)} ({source}){'; ' + hint if hint else ''}")


def training_estimate(n_params, itemsize, n_states, world_size, rank, checkpointing, mixing_n=0,
                      activations=0, data_bytes=0):
    """The large arrays of a training run on one rank, name -> bytes.

    Args:
        n_params: the model's parameter count d.
        itemsize: bytes per parameter (4 for float32).
        n_states: the algorithm's state buffers of d elements (``state_names``).
        world_size, rank: the job (rank 0 gathers every rank's arrays for a checkpoint).
        checkpointing: True when checkpoints are written.
        mixing_n: side of the mixing matrix (0: none).
        activations: bytes of the forward/backward intermediates of one batch.
        data_bytes: this rank's loaded data.
    """
    d = int(n_params)
    parts = {
        f"model ({d} parameters, gradient)": 2 * d * itemsize,
        "initialisation (float64)": d * 8,
        f"algorithm state ({n_states} buffers)": n_states * d * itemsize,
        "collective scratch": 2 * d * itemsize,
        "activations": int(activations),
        "data": int(data_bytes),
    }
    if mixing_n:
        parts[f"mixing matrix ({mixing_n}x{mixing_n})"] = mixing_n * mixing_n * 8
    if rank == 0 and checkpointing:
        parts[f"checkpoint gather ({world_size} ranks)"] = world_size * (1 + n_states) * d * itemsize
    return parts


def preflight_training(cfg, rank, size, model, data, ranks_on_node=1):
    """Refuse a training run whose arrays cannot fit on this rank (before any of them is
    allocated): one ConfigError naming the sizes. ``model`` is built but not initialised."""
    import numpy as np

    from .algorithms import ALGORITHMS

    itemsize = np.dtype(cfg.dtype).itemsize
    n_params = int(getattr(model, "size", 0) or 0)
    n_states = len(getattr(ALGORITHMS.get(cfg.algo), "state_names", ()) or ())
    hidden = int(getattr(model, "hidden", 0) or 0)
    activations = 4 * cfg.batch_size * max(hidden, int(getattr(model, "n_classes", 0) or 0)) * itemsize
    data_bytes = sum(int(getattr(a, "nbytes", 0)) for a in (data.x_train, data.x_test))
    if np.dtype(cfg.dtype).itemsize > data.x_train.dtype.itemsize:
        data_bytes *= 2  # converted to the run's dtype
    parts = training_estimate(n_params, itemsize, n_states, size, rank, bool(cfg.checkpoint_every),
                              size if cfg.topology_file or cfg.algo in ("dpsgd", "dmomentum") else 0,
                              activations, data_bytes)
    return check_fits(parts, cfg.max_memory, ranks_on_node,
                      "use a smaller model, fewer classes or more nodes (or set --max-memory)")
