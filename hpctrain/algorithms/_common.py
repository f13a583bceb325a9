"""Shared pieces of the algorithms: sparse aggregation, density warm-up, mixing, local steps.

Only communicator calls (``send``/``recv``/``isend``/``irecv``) and the hand-made
collectives are used here; no MPI import.
"""

import numpy as np

from ..collectives import sparse_allgather
from ..compress.topk import k_for_density
from .. import topology

__all__ = [
    "density_at",
    "sparse_pairs",
    "sparse_sum",
    "sparse_sum_pattern",
    "mixing_matrix",
    "local_momentum_step",
    "mix_pair",
]


def density_at(cfg, t, steps_per_epoch, start=0.25):
    """Density s/d at step ``t`` under DGC's sparsity warm-up.

    For the first ``sparsity_warmup_epochs`` epochs the density falls geometrically per
    epoch from ``start`` (0.25, DGC's 75 % sparsity) to ``cfg.density``:
    density_e = start * (density / start)^(e / warmup_epochs), e = completed epochs.

    Returns:
        The density as a float.
    """
    warm = cfg.sparsity_warmup_epochs
    if warm <= 0 or cfg.density >= start:
        return cfg.density
    e = t // max(int(steps_per_epoch), 1)
    if e >= warm:
        return cfg.density
    return float(start * (cfg.density / start) ** (e / warm))


def sparse_pairs(comp, payload, step, xp=np):
    """(indices, values) of a sparse payload (shared-index operators such as random-k
    regenerate their indices)."""
    if "indices" in payload.arrays:
        return payload["indices"], payload["values"]
    return comp.indices(step, payload.size, xp), payload["values"]


def sparse_sum_allreduce_sizes(comp, dim, itemsize):
    """The allreduce sizes (bytes) of :func:`sparse_sum`: the k values of a shared-index
    operator (random-k), else none."""
    return (k_for_density(comp.density, dim) * itemsize,) if comp.shared_indices else ()


def sparse_sum_pattern(alg):
    """The :class:`~hpctrain.algorithms.base.Exchange` of :func:`sparse_sum` for algorithm
    ``alg``: an allreduce of the k values (shared indices), else an allgather of the
    (index, value) arrays, each rank scatter-adding every rank's."""
    from .base import Exchange

    if alg.comp.shared_indices:
        return Exchange("allreduce", float(sparse_sum_allreduce_sizes(alg.comp, alg.ctx.dim, alg.total.dtype.itemsize)[0]))
    # per ring step: the count (the counts ring), then the indices and the values
    return Exchange("allgather", float(alg.probe_payload().payload_nbytes), decodes=True, messages=3)


def sparse_sum(comm, comp, payload, out, step, allreduce):
    """Sum every rank's sparse ``payload`` into the dense ``out`` (the same on every rank).

    Payloads of a ``shared_indices`` operator (random-k) share their coordinates, so their
    k values are summed with the dense ``allreduce``; other payloads (top-k) are gathered (hand-made ring allgatherv) and scatter-added
    in rank order.

    Returns:
        ``out``.
    """
    if comp.shared_indices:
        vals = payload["values"].copy()
        allreduce(comm, vals, "sum")
        out[...] = 0
        out[comp.indices(step, out.size)] = vals
        return out
    idx, val = sparse_pairs(comp, payload, step)
    return sparse_allgather(comm, idx, val, out)


def mixing_matrix(name, n):
    """Doubly stochastic mixing matrix W of ``n`` ranks from :func:`hpctrain.topology.build`
    (``ring``: 1/3 self and each neighbour, J/n for n <= 3; ``torus``, ``exponential``,
    ``complete`` = J/n, ``star``).

    Returns:
        An n x n float64 array.
    """
    return topology.build(name, n).matrix


def local_momentum_step(params, velocity, grad, lr, momentum, nesterov):
    """The local step of paper 002 (Algorithms 1 and 2), in place.

    u <- beta u + g;  x <- x - lr u (Polyak, Option I) or x - lr (beta u + g) (Nesterov,
    Option II).
    """
    velocity *= momentum
    velocity += grad
    if nesterov:
        params -= lr * (momentum * velocity + grad)
    else:
        params -= lr * velocity


def mix_pair(params, velocity, buf, mix):
    """Apply ``mix`` (an averaging or gossip step, in place on one buffer) to x and a second
    state of the same size (momentum u, or AdaAlter's B^2) together: both travel in one
    message of 2d numbers through ``buf``."""
    d = params.size
    buf[:d] = params
    buf[d:] = velocity
    mix(buf)
    params[...] = buf[:d]
    velocity[...] = buf[d:]
