"""Gradient mode and algorithm mode: hpctrain inside a user's torch training loop.

Gradient mode (:class:`DistributedOptimizer`, as Horovod's): during backward, each
bucket's gradients are averaged over the ranks (optionally compressed with error
feedback) on the communication thread; ``step()`` waits for the last bucket and then runs
*the user's* ``torch.optim`` optimizer. Algorithm mode (:class:`DistributedAlgorithm`): an
hpctrain algorithm (dmsgd, gmc, local-sgd, ...) performs the whole update on the flat
parameter buffer, exactly as ``hpctrain train`` does.
"""

from ..buckets import make_buckets
from ..errors import ConfigError
from ..overlap import POLL_INTERVAL, OverlapEngine
from ._flat import FlatModel
from ._runtime import agree_error, comm as _world

__all__ = ["DistributedOptimizer", "DistributedAlgorithm", "ALGORITHM_MODE"]

#: algorithms that algorithm mode runs (the decentralized ones need a mixing matrix and
#: the asynchronous one a server loop: use ``hpctrain train`` for those)
#: ``torch.optim`` optimizers whose update of a parameter reads only that parameter, its
#: gradient and its own state: stepping them bucket by bucket (the other gradients set
#: aside) gives the same bits as one step over all of them
PER_PARAMETER = ("SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "Rprop",
                 "ASGD")

ALGORITHM_MODE = ("dsgd", "dmsgd", "model-avg", "mdsgd", "dgc", "gmc", "csgd", "ecsgd", "doublesqueeze",
                  "prsgd-momentum", "local-sgd", "adagrad", "local-adaalter")


def _device_comm(c, flat):
    """The world communicator, with CuPy-aware transport (CUDA-aware MPI or staged through
    pinned host memory, ``auto``) when the tensors are on a GPU."""
    if flat.device.type != "cuda":
        return c
    from ..comm import Communicator

    return Communicator(c.mpi_comm, transport="auto")


def _check_backward(comm, flat, closure=None):
    """Every rank ran exactly one backward since the last step and passed no closure (else
    ConfigError on every rank)."""
    def check():
        if closure is not None:
            raise ConfigError("step() takes no closure here (LBFGS-style closures re-run backward)")
        if not flat.backward_seen:
            raise ConfigError("step() called before any backward(): compute a loss and call loss.backward() first")
        if flat.repeated:
            raise ConfigError("a second backward before step(): call step() after each backward "
                              "(gradient accumulation over several backward passes is not supported)")

    agree_error(comm, check)


def _on_device(reduce_bucket, index):
    """``reduce_bucket`` run with GPU ``index`` current (the thread that calls it may not
    have chosen it)."""
    import cupy

    def run(comm, bucket):
        with cupy.cuda.Device(index):
            reduce_bucket(comm, bucket)

    return run


class _ErrorFeedbackReducer:
    """Per-bucket compression with error feedback, then the mean over ranks.

    u = g + e; payload = C(u); e <- u - D(payload); g <- (1/n) sum_k D(payload_k).
    Every rank's payload is gathered (hand-made ring allgatherv of wire bytes) and
    decompressed in rank order, so every rank gets the same bits.
    """

    def __init__(self, name, density, grad, buckets, xp):
        from ..compress import COMPRESSORS, get_compressor

        takes = getattr(COMPRESSORS.get(name), "config_params", ())  # (unknown name: get_compressor says so)
        params = {"density": density} if "density" in takes else {}
        self.comps = [get_compressor(name, **params) for _ in buckets]  # one per bucket: own scratch
        self.grad = grad
        self.memory = xp.zeros_like(grad)  # e, per rank (checkpointed)
        self.u = xp.empty_like(grad)
        self.tmp = xp.empty_like(grad)
        self.step = 0

    def __call__(self, comm, bucket):
        from ..collectives.payload_p2p import allgather_payloads

        comp = self.comps[bucket.index]
        g, e, u, tmp = (bucket.view(a) for a in (self.grad, self.memory, self.u, self.tmp))
        u[...] = g
        u += e
        payload = comp.compress(u, step=self.step, rank=comm.rank)
        comp.decompress(payload, tmp)
        e[...] = u
        e -= tmp
        g[...] = 0
        for p in allgather_payloads(comm, payload):
            comp.decompress(p, tmp)
            g += tmp
        g /= comm.size


class DistributedOptimizer:
    """Wrap a ``torch.optim`` optimizer: gradients are averaged over the ranks during
    backward, then the wrapped optimizer steps.

    Args:
        optimizer: the user's ``torch.optim.Optimizer`` over the model's parameters.
        model: the ``torch.nn.Module`` (or pass ``named_parameters``).
        named_parameters: ``model.named_parameters()`` (Horovod's spelling).
        compression: an hpctrain compressor name (``none``: dense; ``topk``, ``randk``,
            ``fp16``, ``qsgd``, ``sign``, ...), applied per bucket with error feedback.
        density: s/d of the sparse compressors.
        bucket_size: MiB per bucket after the small first one (default None: 25, as
            DDP, or a quarter of a smaller model; an explicit size larger than the model
            is refused).
        overlap: True, False or ``"auto"`` (on when there are several ranks, several
            buckets, ``MPI_THREAD_MULTIPLE`` and a free core per rank for the
            communication thread: :func:`hpctrain.overlap.overlap_auto`, the rule of
            ``hpctrain train --overlap`` auto too; ``opt.overlap`` says what it chose,
            ``opt.overlap_note`` why).
        collective: the dense allreduce (``auto``, ``ring``, ``recursive``, ``ps``, ...).
        step_per_bucket: ``"auto"`` (default): with overlap, ``step()`` runs the wrapped
            optimizer on each bucket's parameters as soon as that bucket is averaged, while
            the later buckets are still in flight, when the optimizer is one of
            :data:`PER_PARAMETER` (same bits as one step over everything); True forces it
            (your optimizer must update each parameter from its own gradient and state
            only), False waits for every bucket and steps once.
        poll_interval: seconds the communication thread sleeps between polls of a
            message in flight (None: MPI's blocking wait, which keeps a core busy).
        profile: record per-bucket timestamps (``opt.engine.profile``;
            :func:`hpctrain.overlap.profile_trace` turns them into a Chrome trace).

    Use: ``loss.backward(); opt.step(); opt.zero_grad()``. Any other attribute is the
    wrapped optimizer's (``param_groups``, ``state_dict``, ...).
    """

    def __init__(self, optimizer, model=None, named_parameters=None, compression="none", density=0.01,
                 bucket_size=None, overlap="auto", collective="auto", step_per_bucket="auto", poll_interval=POLL_INTERVAL, profile=False):
        from ..collectives import get_allreduce
        from ..xp import get_array_module

        c = _world()
        self.comm, self.optimizer = c, optimizer
        self.flat = FlatModel(c, model, named_parameters)
        fl = self.flat
        c = _device_comm(c, fl)
        xp = get_array_module(fl.grad_array)
        self.buckets = agree_error(c, lambda: make_buckets(fl.layers, fl.grad.element_size(), bucket_size))
        allreduce = agree_error(c, lambda: get_allreduce(collective))
        self.compression = compression
        from ..compress import COMPRESSORS

        if compression is None or getattr(COMPRESSORS.get(compression), "lossless", False):
            self.reducer = None
            grad = fl.grad_array

            def reduce_bucket(comm, bucket):
                allreduce(comm, bucket.view(grad), "mean")
        else:
            self.reducer = agree_error(c, lambda: _ErrorFeedbackReducer(compression, density, fl.grad_array,
                                                                        self.buckets, xp))
            reduce_bucket = self.reducer
        if fl.device.type == "cuda":  # CuPy's current device is per thread: the comm thread's too
            reduce_bucket = _on_device(reduce_bucket, fl.device.index or 0)
        self.engine = OverlapEngine(c, self.buckets, reduce_bucket, overlap=overlap,
                                    poll_interval=poll_interval, profile=profile)
        if step_per_bucket == "auto":
            step_per_bucket = type(optimizer).__name__ in PER_PARAMETER and type(optimizer).__module__.startswith(
                "torch.optim")
        self.step_per_bucket = bool(step_per_bucket) and self.engine.overlap and len(self.buckets) > 1
        bucket_of = {layer: b.index for b in self.buckets for layer in b.layers}
        self._bucket_params = [[] for _ in self.buckets]  # parameters per bucket
        for i, (_, p) in enumerate(fl.named):
            self._bucket_params[bucket_of[fl.layer_of[i]]].append(p)
        fl.on_layer = self._layer_ready
        fl.install_hooks()
        self.steps = 0

    @property
    def overlap(self):
        """Whether a communication thread overlaps communication with backward."""
        return self.engine.overlap

    @property
    def overlap_note(self):
        """What ``overlap`` decided and why, e.g. ``"overlap off: 4 ranks share 2 cores on
        this machine (overlap needs a free core per rank; overlap=True forces it)"``."""
        return self.engine.note

    def _layer_ready(self, layer):
        if not self.engine.active:
            self.engine.begin()
        self.engine.layer_ready(layer)

    def _start_sync(self, closure=None):
        """The checks every rank agrees on before waiting for buckets; starts the step's
        buckets when no hook did (e.g. a model whose gradients all came without hooks)."""
        try:
            _check_backward(self.comm, self.flat, closure)
        except ConfigError as exc:
            exc.agreed = exc.agreed and self._drain_together()
            raise
        if not self.engine.active:
            self.engine.begin()
        if self.reducer is not None:
            self.reducer.step = self.steps

    def _drain_together(self):
        """After an error every rank agreed on: True when every rank can leave together,
        having finished its buckets in flight (all ranks have them) or having none; False
        when only some ranks have buckets in flight (theirs could never complete: abort)."""
        import numpy as np

        active = self.comm.allgather_array(np.array([int(self.engine.active)], dtype=np.int64))[:, 0]
        if active.all():
            self.engine.finish()
            self.flat.reset_step()
        return bool(active.all() or not active.any())

    def synchronize(self, closure=None):
        """Wait until every bucket is averaged (``step`` calls it; call it yourself before
        reading or clipping the averaged gradients)."""
        self._start_sync(closure)
        self.engine.finish()
        self.flat.reset_step()

    def step(self, closure=None):
        """Average the gradients (wait for the buckets), then step the wrapped optimizer:
        bucket by bucket as each lands (``step_per_bucket``), or once after the last."""
        if not (self.step_per_bucket and self.engine.active):
            self.synchronize(closure)
            self.flat.rebind_grads()
            out = self.optimizer.step()
            self.steps += 1
            return out
        self._start_sync(closure)
        self.flat.rebind_grads()
        params = [p for group in self._bucket_params for p in group]
        grads = [p.grad for p in params]
        out = None
        try:
            for p in params:
                p.grad = None  # the optimizer skips parameters without a gradient
            k = 0
            for b, group in zip(self.buckets, self._bucket_params):
                self.engine.wait(b.index)
                for p in group:
                    p.grad = grads[k]
                    k += 1
                if group:
                    out = self.optimizer.step()
                for p in group:
                    p.grad = None
        finally:
            for p, g in zip(params, grads):
                p.grad = g
            if self.engine.active:
                self.engine.finish()  # an error above: leave no bucket in flight
        self.flat.reset_step()
        self.steps += 1
        return out

    def zero_grad(self, set_to_none=False):
        """Zero the gradients in place (they stay views of the flat buffer)."""
        self.flat.grad.zero_()
        self.flat.rebind_grads()

    def state_arrays(self):
        """Per-rank arrays this wrapper carries across steps (for checkpoints)."""
        return {} if self.reducer is None else {"error_feedback": self.reducer.memory}

    def close(self):
        """Stop the communication thread and remove the hooks."""
        self.engine.close()
        self.flat.remove_hooks()

    def __getattr__(self, name):
        opt = self.__dict__.get("optimizer")
        if opt is None:
            raise AttributeError(name)
        return getattr(opt, name)


class DistributedAlgorithm:
    """An hpctrain algorithm performs the update of a torch model's parameters.

    The parameters become views of one flat buffer; backward writes the flat gradient;
    ``step()`` runs the algorithm (its communication, compression and update), as
    ``hpctrain train --algo NAME`` does.

    Args:
        model: the ``torch.nn.Module``.
        algo: an algorithm name from :data:`ALGORITHM_MODE`.
        lr: learning rate (``step(lr=...)`` overrides it per step).
        **options: any ``hpctrain train`` setting by its config name (``momentum``,
            ``density``, ``compressor``, ``sync_period``, ``collective``, ``aggregation``...).
    """

    def __init__(self, model, algo="dmsgd", lr=0.05, **options):
        from ..algorithms import AlgoContext, get_algorithm
        from ..collectives import get_allreduce
        from ..config import TrainConfig, validate
        from ..xp import get_array_module

        c = _world()
        self.comm = c

        def build_cfg():
            if algo not in ALGORITHM_MODE:
                raise ConfigError(f"algorithm mode runs {', '.join(ALGORITHM_MODE)}; got {algo!r} "
                                  "(use hpctrain train for the others)")
            unknown = sorted(set(options) - set(TrainConfig.__dataclass_fields__))
            if unknown:
                raise ConfigError(f"unknown option {unknown[0]!r} for DistributedAlgorithm")
            return validate(TrainConfig(algo=algo, lr=float(lr), **options))

        self.cfg = agree_error(c, build_cfg)
        self.flat = FlatModel(c, model, flat_params=True)
        fl = self.flat
        c = self.comm = _device_comm(c, fl)
        if str(fl.dtype).removeprefix("torch.") != self.cfg.dtype:
            self.cfg.dtype = str(fl.dtype).removeprefix("torch.")
        allreduce = get_allreduce(self.cfg.collective)
        xp = get_array_module(fl.params_array)
        ctx = AlgoContext(self.cfg, c, allreduce, fl.size, 1, xp)
        self.algo = agree_error(c, lambda: get_algorithm(self.cfg.algo)(ctx, fl.params_array))
        fl.install_hooks()
        self.lr = float(lr)
        self.steps = 0
        self.model = model

    def step(self, lr=None):
        """One update by the algorithm from this rank's gradient."""
        fl = self.flat
        _check_backward(self.comm, fl)
        fl.rebind_grads()
        self.algo.step(fl.params_array, fl.grad_array, self.lr if lr is None else float(lr), self.steps)
        fl.reset_step()
        self.steps += 1

    def zero_grad(self, set_to_none=False):
        """Zero the flat gradient in place."""
        self.flat.grad.zero_()
        self.flat.rebind_grads()

    def eval_params(self):
        """Parameters to evaluate (the average over ranks for non-replicated algorithms) as
        a flat array."""
        return self.algo.eval_params(self.flat.params_array)

    def state_arrays(self):
        """Per-rank arrays the algorithm carries across steps (for checkpoints)."""
        return self.algo.state_dict()

    def close(self):
        self.flat.remove_hooks()
