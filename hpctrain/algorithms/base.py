"""The Algorithm protocol: per-rank state, one step, and state for checkpoints.

An algorithm declares every array it carries across steps in ``state_names``;
``state_dict``/``load_state_dict`` are derived from that list, and the checkpoint writes
exactly those arrays (plus the parameters), so a new algorithm cannot keep state that a
checkpoint forgets. ``state_policies`` says what happens to each state array when a run
resumes on a different number of ranks. A stateful compressor's arrays (its own
``state_names``/``state_policies``) join the algorithm's as ``compressor.NAME``.

Algorithms that compress say which operators they take by capability (``needs``,
``refuses``; see :data:`hpctrain.compress.base.CAPABILITIES`), never by name.
"""

from dataclasses import dataclass, field

import numpy as np

from ..compress import make_compressor
from ..errors import ConfigError
from ..xp import get_array_module

__all__ = ["Algorithm", "AlgoContext", "Exchange", "RESIZE_POLICIES"]

#: How a per-rank state array is mapped to a new world size on resume:
#: ``replicated`` - identical on every rank; take rank 0's.
#: ``sum`` - a quantity whose total over ranks matters (error-feedback memory): the
#:   total is split evenly over the new ranks, so the sum is conserved.
#: ``mean`` - a per-rank estimate (local momentum): every new rank gets the mean.
#: ``refuse`` - cannot be remapped; resuming on another world size is an error.
RESIZE_POLICIES = ("replicated", "sum", "mean", "refuse")


@dataclass(frozen=True)
class Exchange:
    """One communication of a training step, as an algorithm declares it
    (:meth:`Algorithm.comm_pattern`); the collectives price it
    (:func:`hpctrain.collectives.cost.exchange_time`).

    Attributes:
        kind: ``allreduce`` (through ``--collective``), ``allgather`` (every rank's payload
            to every rank, ring allgatherv), ``ps`` (one parameter-server round, rank 0
            serves), ``gossip`` (with graph neighbours), ``ring-hops`` (a payload passed
            around the ring, then the result once more).
        nbytes: bytes one rank hands to it (the vector; its payload; its message up).
        per_step: calls per step on average (1/H when it runs every H steps).
        down: ``ps``: bytes of the reply each worker receives (default ``nbytes``).
        degree: ``gossip``: neighbours of a rank.
        decodes: a rank decodes every rank's payload (allgather; the server of ``ps``), so
            its decompression cost grows with the number of ranks.
        messages: point-to-point messages per transfer (a payload sent after its length: 2;
            sparse pairs: count, indices, values: 3); ``down_messages`` of a ``ps`` reply.
        serial: compress-and-decode rounds that wait on each other beyond a rank's own (a
            payload re-compressed at every ring hop: n - 1; a server that compresses its
            reply: 1), each on the step's critical path.
    """

    kind: str
    nbytes: float
    per_step: float = 1.0
    down: float = None
    degree: int = 0
    decodes: bool = False
    messages: int = 1
    down_messages: int = None
    serial: int = 0

    def options(self):
        """The keyword arguments of the cost functions (``down``, ``degree``, ``messages``,
        ``down_messages``)."""
        out = {}
        if self.messages != 1:
            out["messages"] = int(self.messages)
        if self.down_messages is not None:
            out["down_messages"] = int(self.down_messages)
        if self.down is not None:
            out["down"] = float(self.down)
        if self.kind == "gossip":
            out["degree"] = int(self.degree)
        return out


@dataclass
class AlgoContext:
    """What an algorithm may use: config, communicator, the chosen collective, sizes.

    Attributes:
        cfg: the :class:`~hpctrain.config.TrainConfig`.
        comm: the :class:`~hpctrain.comm.Communicator`.
        allreduce: ``allreduce(comm, buf, op) -> buf`` chosen by ``--collective``.
        dim: number of parameters d.
        steps_per_epoch: iterations per epoch (for warm-ups given in epochs).
        xp: array module (numpy or cupy).
        extras: free-form objects set up by the trainer (e.g. a mixing matrix).
        layers: the model's layers as (name, shape, offset) into the flat parameter
            vector, where the trainer knows them (given to the compressor's ``setup``).
    """

    cfg: object
    comm: object
    allreduce: object
    dim: int
    steps_per_epoch: int = 1
    xp: object = np
    extras: dict = field(default_factory=dict)
    layers: list = field(default_factory=list)

    @property
    def rank(self):
        return self.comm.rank

    @property
    def size(self):
        return self.comm.size


class Algorithm:
    """Base class of every training algorithm.

    Class attributes:
        name: the ``--algo`` name.
        state_names: arrays carried across steps (checkpointed, bit-identical resume).
        state_policies: name -> one of :data:`RESIZE_POLICIES` (default ``refuse``).
        replicated: True if the parameters are identical on every rank after each step
            (False for decentralized and local-update algorithms between syncs).
        compresses: True if it takes a ``--compressor`` (False: it ignores the option).
        needs: capabilities a compressor must have; an entry that is a tuple is satisfied
            by any one of its capabilities.
        refuses: capabilities a compressor must not have.
        compressors: the ``--compressor`` values it accepts, derived from the registry by
            capability (:meth:`refusal`; empty when it compresses nothing).
        aggregations: the ``--aggregation`` forms it implements.
        bucketing: what cutting the gradient into layer-aligned buckets means for it (the
            trainer's ``--overlap``): ``free`` - the step begins with one mean allreduce of
            the gradient, a per-coordinate sum that buckets reduce during backward;
            ``params`` - a per-coordinate average of the parameters after the local
            update (bucketable, but it cannot start before backward ends); ``layerwise`` -
            its compression works per layer; ``whole`` (default) - its math needs the
            whole vector at once (e.g. a global top-k): it runs unbucketed.
        unbiased_with: compressors (``"none"`` for an algorithm that takes none) under
            which its update is unbiased, E[w_t - w_{t+1}] = lr * mean gradient, at
            momentum 0 (the Monte-Carlo test of tests/mpi/test_unbiased.py checks each).
        compress_methods: for an algorithm that encodes and decodes in its own code rather
            than through a compression operator (PowerSGD's projections, signSGD's
            packing and vote): method name -> ``"compress"`` or ``"decompress"``. The
            step clock counts those calls as ``compress_time`` and ``--trace`` records
            them as compression, as it does a compression operator's calls; they must not
            communicate.

    Args:
        ctx: the :class:`AlgoContext`.
        params: the flat parameter vector (updated in place by :meth:`step`).
    """

    name = "base"
    state_names = ()
    state_policies = {}
    replicated = True
    compresses = False
    needs = ()
    refuses = ("communicates",)
    compressors = ()
    aggregations = ("allreduce",)
    unbiased_with = ()
    bucketing = "whole"
    compress_methods = {}

    def __init__(self, ctx, params):
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.comm = ctx.comm
        self.allreduce = ctx.allreduce
        self.stats = {}

    def step(self, params, grad, lr, t):
        """One iteration: ``grad`` is this rank's stochastic gradient at ``params``;
        update ``params`` in place. ``t`` is the global step (0-based)."""
        raise NotImplementedError

    def allreduce_sizes(self):
        """Bytes of each ``--collective`` allreduce one step hands to the collective (what
        ``auto`` chooses for; the banner and summary.json show the choice). Empty when the
        algorithm aggregates otherwise (gossip, a server, gathered payloads). Default: one
        allreduce of the d-vector for an algorithm that compresses nothing and aggregates
        by allreduce; an algorithm that differs says so by overriding this method.

        Returns:
            A tuple of message sizes in bytes.
        """
        if self.compressors or self.cfg.aggregation != "allreduce":
            return ()
        return (self.ctx.dim * self.wire_itemsize(),)

    def wire_itemsize(self):
        """Bytes per coordinate of the gradient's allreduce: 2 with ``--fp16-allreduce``."""
        return 2 if getattr(self.cfg, "fp16_allreduce", False) else np.dtype(self.cfg.dtype).itemsize

    def steps_per_sync(self):
        """Steps between this algorithm's communications (1: every step; H for local SGD)."""
        return 1

    def comm_pattern(self, n=None):
        """This step's communication as :class:`Exchange` values, for the cost model
        (``hpctrain advise``) and the traffic test: what each collective or server round
        moves, in bytes per rank. Default: one ``allreduce`` per :meth:`allreduce_sizes`
        entry every :meth:`steps_per_sync` steps; an algorithm that communicates otherwise
        overrides it next to its math.

        Args:
            n: the number of ranks to declare for (default: this job's); a pattern whose
                sizes depend on it (a server's reply of n sparse vectors) uses it.

        Returns:
            A list of :class:`Exchange`.
        """
        every = 1.0 / self.steps_per_sync()
        return [Exchange("allreduce", float(s), every) for s in self.allreduce_sizes()]

    def decode_one(self):
        """A call that decodes one other rank's message as this step does, for the cost
        model (a step whose exchange ``decodes`` every rank's payload pays it n - 1 more times
        than on one rank), or None when there is nothing to decode. Default: add one payload
        of the run's compressor into a dense vector."""
        comp = getattr(self, "comp", None)
        if comp is None:
            return None
        payload = self.probe_payload()
        out = self.ctx.xp.zeros(self.ctx.dim, dtype=self.cfg.dtype)
        return lambda: comp.decompress_add(payload, out)

    def set_probe_payload(self, payload):
        """Use ``payload`` (one this algorithm's steps produced on real gradients) for the
        sizes :meth:`comm_pattern` declares: a data-dependent operator (approximate top-k,
        threshold) selects on real gradients what it does not select on a normal draw."""
        self._probe = payload

    def probe_payload(self):
        """One payload of this run's compressor on a seeded standard-normal vector of the
        model's size on the run's device (a fresh operator: the run's state is untouched),
        for sizes that only the operator knows (headers, index widths, packed codes)."""
        cached = getattr(self, "_probe", None)
        if cached is None:
            probe = np.random.default_rng(0).standard_normal(self.ctx.dim).astype(self.cfg.dtype)
            probe = self.ctx.xp.asarray(probe)  # on the run's device: its operator path
            comp = make_compressor(self.cfg)
            density = getattr(getattr(self, "comp", None), "density", None)
            if density is not None and hasattr(comp, "density"):
                comp.density = density
            comp.setup(probe, self.ctx.layers)
            cached = self._probe = comp.compress(probe, step=0, rank=0)
        return cached

    def count(self, key, value):
        """Add ``value`` to the per-epoch statistic ``key``."""
        self.stats[key] = self.stats.get(key, 0) + value

    def count_traffic(self, up, down):
        """This step's traffic of this worker in paper 001's unit (float values; an
        (index, value) pair counts 2): ``up`` what it sends towards the aggregation
        (||m_t,k||_0 pairs for a sparse vector), ``down`` what it receives of the model
        update w_{t+1} - w_t (what a server sends each worker: p ||w_t+1 - w_t||_0 over
        the p workers). The trainer turns the sums into 001's compression ratio
        (:func:`hpctrain.metrics.traffic_ratios`)."""
        if getattr(self.cfg, "fp16_allreduce", False):  # a half is half a float32 value
            up, down = up / 2, down / 2
        self.count("floats_up", up)
        self.count("floats_down", down)

    @staticmethod
    def update_floats(update):
        """Floats a server would send for ``update`` = w_{t+1} - w_t: its nonzeros as
        (index, value) pairs, or the dense vector when that is smaller."""
        return min(2 * int(get_array_module(update).count_nonzero(update)), update.size)

    def pop_stats(self):
        """Return and reset the statistics gathered since the last call."""
        out, self.stats = self.stats, {}
        return out

    def eval_params(self, params):
        """The parameters to evaluate: ``params`` itself for replicated algorithms; the
        average over ranks otherwise (a copy; ``params`` is untouched)."""
        if self.replicated:
            return params
        avg = params.copy()
        self.comm.native_allreduce(avg)
        avg /= self.comm.size
        return avg

    @classmethod
    def refusal(cls, comp_cls):
        """Why this algorithm does not take operator class ``comp_cls`` (one line), or None
        when it does (decided by capability)."""
        if not cls.compresses:
            return f"algo {cls.name} takes no compressor"
        for need in cls.needs:
            alts = (need,) if isinstance(need, str) else tuple(need)
            if not any(comp_cls.has(c) for c in alts):
                return f"algo {cls.name} needs a compressor that is {' or '.join(alts)}; {comp_cls.name} is not"
        for cap in cls.refuses:
            if comp_cls.has(cap):
                return f"algo {cls.name} does not take a {cap} compressor such as {comp_cls.name}"
        return None

    def make_compressor(self, params):
        """The run's compressor (``--compressor``), checked by capability and set up with
        the parameters and the model's layers (:attr:`AlgoContext.layers`).

        Raises:
            ConfigError: the algorithm does not take that operator.
        """
        comp = make_compressor(self.cfg)
        why = self.refusal(type(comp))
        if why is not None:
            raise ConfigError(why)
        comp.setup(params, self.ctx.layers)
        return comp

    def state_dict(self):
        """Name -> array of every state this rank carries across steps (the compressor's
        as ``compressor.NAME``)."""
        out = {k: getattr(self, k) for k in self.state_names}
        comp = getattr(self, "comp", None)
        if comp is not None:
            out.update({f"compressor.{k}": v for k, v in comp.state_dict().items()})
        return out

    def load_state_dict(self, state):
        """Restore state arrays written by :meth:`state_dict` (copied in place)."""
        for k in self.state_names:
            getattr(self, k)[...] = state[k]
        comp = getattr(self, "comp", None)
        if comp is not None:
            comp.load_state_dict({k: state[f"compressor.{k}"] for k in comp.state_names})

    def resize_policy(self, name):
        """The :data:`RESIZE_POLICIES` entry for state ``name`` (a key of :meth:`state_dict`)."""
        if name.startswith("compressor."):
            return self.comp.resize_policy(name[len("compressor."):])
        return self.state_policies.get(name, "refuse")
