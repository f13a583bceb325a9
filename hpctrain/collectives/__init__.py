"""Hand-made collectives, one algorithm per module, all with the same signature
``allreduce(comm, buf, op="sum") -> buf`` (in place; ``op`` in sum, mean, max, min).

Every one runs on NumPy arrays and on CuPy arrays (through the communicator's transport:
``cuda-aware`` or ``staged``, see :mod:`hpctrain.comm.transport`).

======================  =======  ==============================================================
name                    where    when to pick it
======================  =======  ==============================================================
``auto``                CPU/GPU  default: ``recursive`` for small messages, ``ring`` for large,
                                 chosen per size from the alpha-beta fit (``bench fit``;
                                 64 KiB threshold without a fit)
``ring``                CPU/GPU  bandwidth-optimal (2(n-1)/n S per rank), pipelined in segments
                                 above 4 MiB chunks: large messages
``recursive``           CPU/GPU  latency-optimal recursive doubling (ceil(log2 n) steps, whole
                                 vector each step): small messages, few ranks
``multi-ps``            CPU/GPU  co-located multi-server parameter server (shard s reduced by
                                 rank s); ring's cost; pluggable server reducer, dedicated
                                 servers via :class:`MultiPS` (``servers=k``)
``ps``                  CPU/GPU  single parameter server on rank 0: baseline, server-bound
                                 (2(n-1) S through one rank)
``ring-unpartitioned``  CPU/GPU  the survey's naive ring (whole vector around the ring): baseline
``hierarchical``        CPU/GPU  two levels: reduce-scatter inside each node (shared memory), one
                                 ring per local rank across nodes, allgather inside the node: several
                                 ranks per node on a network (NIC bytes 2(N-1)/N S, N nodes)
``mpi``                 CPU(/GPU with CUDA-aware MPI)  MPI's own Allreduce: baseline, oracle
======================  =======  ==============================================================

Other registries: ``MIXERS`` (``gossip``: ``mix(comm, buf, W)``, one decentralized mixing
step with graph neighbours only) and ``SPARSE`` (``sparse-allgather``, hand-made ring, and
``sparse-allgather-mpi``, MPI's Allgatherv: ``fn(comm, idx, val, out)`` sums every rank's
sparse vector into the dense ``out``).
"""

from functools import partial

from ..errors import ConfigError
from .auto import auto_allreduce
from .gossip import gossip
from .hierarchical import hierarchical_allreduce
from .multi_ps import DenseSum, MultiPS, multi_ps_allreduce
from .naive_ring import unpartitioned_ring_allreduce
from .native import mpi_allreduce
from .ps import ps_allreduce
from .recursive import recursive_doubling_allreduce
from .ring import ring_allreduce
from .sparse import sparse_allgather

__all__ = [
    "ALLREDUCE", "MIXERS", "SPARSE", "get_allreduce",
    "MultiPS", "DenseSum", "gossip", "sparse_allgather",
]

ALLREDUCE = {
    "ring": ring_allreduce,
    "recursive": recursive_doubling_allreduce,
    "multi-ps": multi_ps_allreduce,
    "ps": ps_allreduce,
    "ring-unpartitioned": unpartitioned_ring_allreduce,
    "hierarchical": hierarchical_allreduce,
    "mpi": mpi_allreduce,
    "auto": auto_allreduce,
}

MIXERS = {"gossip": gossip}

SPARSE = {
    "sparse-allgather": partial(sparse_allgather, method="ring"),
    "sparse-allgather-mpi": partial(sparse_allgather, method="mpi"),
}


def _get(table, kind, name):
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown {kind} {name!r}; choose from {', '.join(table)}") from None


def get_allreduce(name):
    """The allreduce function registered as ``name`` (raises ConfigError if unknown)."""
    return _get(ALLREDUCE, "collective", name)
