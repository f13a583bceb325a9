"""The training loop: config -> data, model, algorithm -> loop -> metrics, checkpoints.

Read top to bottom: :func:`run_training` sets up (every setup error is agreed on by all
ranks, so one rank's bad input never leaves the others waiting), optionally resumes
from a checkpoint, then runs epochs of ``grad -> algorithm.step``. After every step the
ranks agree (one tiny MAX allreduce) on whether a stop signal arrived or the loss went
non-finite; after every epoch they evaluate on the test set.
"""

import dataclasses
import json
import math
import os
import signal
import time
import types

import numpy as np

from . import __version__
from .algorithms import AlgoContext, get_algorithm
from .checkpoint import (
    Snapshot,
    checkpoint_path,
    prune_checkpoints,
    read_checkpoint,
    remap_world_size,
    resolve_resume,
    write_checkpoint,
)
from .collectives import get_allreduce
from .collectives.auto import chosen, describe
from .collectives.half import HalfWire
from .collectives.hierarchical import layout as node_layout
from .comm import world
from .comm.stall import start as start_stall_inspector
from .config import config_to_toml, parse_period
from .data import load_dataset
from .files import check_output, probe_writable, run_inputs
from .errors import CheckpointError, ConfigError, HpctrainError, Interrupted, Preempted, SilentExit, TrainingDiverged
from . import rundir, trace
from .checkpoint import mark_latest, new_lineage
from .memory import preflight_training
from .metrics import Progress, RunWriter, StepClock, traffic_ratios
from .models import build_model, model_state, param_layout, probe_output
from .overlap import spare_cores
from .schedules import make_schedule
from .threads import check_thread_env, limit_threads, local_rank, local_ranks
from .topology import build as build_topology
from .xp import get_array_module, resolve_device, synchronize, to_numpy

__all__ = ["run_training", "agree", "on_root", "epoch_order", "batch_rows", "STOP_SIGNALS"]

from .signals import STOP_SIGNALS, pending as _pending_signal
from .signals import record_stop_signals as catch_stop_signals_early  # noqa: F401 (the CLI's)


def _stopped(signum, step, last_ckpt, wrote):
    """The error that ends a run stopped by ``signum`` (exit 130 for SIGINT, else 75)."""
    name = signal.Signals(signum).name
    if signum == signal.SIGINT:
        if wrote:
            return Interrupted(f"{name} at step {step}: checkpoint {last_ckpt} written; continue with --resume latest")
        return Interrupted(f"{name} at step {step}: stopped (checkpointing is off, nothing saved)")
    return Preempted(f"{name} at step {step}: checkpoint {last_ckpt} written; continue with --resume latest")


def agree(comm, fn):
    """Run ``fn()`` on every rank; if it raised a user-facing error on any rank, raise it
    on the lowest such rank and :class:`SilentExit` on the others (no rank is left waiting).

    Returns:
        ``fn()``'s result.
    """
    result, err = None, None
    try:
        result = fn()
    except HpctrainError as exc:
        err = exc
    flags = comm.allgather_array(np.array([err is not None], dtype=np.int8))[:, 0]
    if flags.any():
        if err is not None and comm.rank == int(np.flatnonzero(flags)[0]):
            err.reporter = True  # this rank prints the job's one line, whatever its number
            err.abort_job = False  # agreed: every rank ends by itself
            raise err
        raise SilentExit(err.exit_code if err is not None else 2)
    return result


def on_root(comm, fn):
    """Run ``fn()`` on rank 0 only; its user-facing error ends every rank.

    Returns:
        ``fn()``'s result on rank 0, None elsewhere.
    """
    result, msg = None, b""
    if comm.rank == 0:
        try:
            result = fn()
        except HpctrainError as exc:
            err, msg = exc, str(exc).encode() or b" "
    msg = comm.bcast_bytes(msg)
    if msg:
        if comm.rank == 0:
            raise err
        raise SilentExit(2)
    return result


def _prepare_run_dir(cfg, comm):
    """Rank 0 creates the run directory; its path (or its error) reaches every rank."""

    def make():
        out = cfg.out or os.path.join("runs", time.strftime("run-%Y%m%d-%H%M%S"))
        rundir.check_out(cfg, out)
        try:
            if not os.path.exists(out):
                os.makedirs(out)
                rundir.remove_if_empty_at_exit(out)
            rundir.clean_run_dir(out)
            probe_writable(out)
        except OSError as exc:
            raise ConfigError(f"output directory {out} is not writable: {exc.strerror}") from None
        return out

    return comm.bcast_bytes((on_root(comm, make) or "").encode()).decode()


def epoch_order(n, seed, epoch, rank):
    """This rank's sample order for ``epoch`` (a permutation of its ``n`` shard rows)."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, rank, 0x0DE7])).permutation(n)


def batch_rows(order, i, batch):
    """Rows of batch ``i`` in the epoch order; wraps around shards smaller than the
    epoch (non-iid partitions give unequal shards, every rank runs the same steps)."""
    lo = i * batch
    if lo + batch <= order.size:
        return order[lo : lo + batch]
    xp = get_array_module(order)
    return order[xp.arange(lo, lo + batch) % order.size]


def _setup(cfg, comm, xp):
    """Load this rank's data and build the model (no communication: run under agree)."""
    data = load_dataset(cfg.dataset, comm.rank, comm.size, cfg.seed, cfg.data_dir, cfg.partition,
                        cfg.dirichlet_alpha, cfg.test_dataset, cfg.normalize, cfg.max_samples)
    model = build_model(cfg.model, data.input_shape, data.n_classes, hidden=cfg.hidden, seed=cfg.seed, rank=comm.rank,
                        dtype=cfg.dtype, threads=cfg.threads, device=cfg.device)
    preflight_training(cfg, comm.rank, comm.size, model, data, local_ranks())  # before allocating
    dtype = np.dtype(cfg.dtype)
    data.x_train = xp.asarray(data.x_train.astype(dtype, copy=False))
    data.x_test = xp.asarray(data.x_test.astype(dtype, copy=False))
    data.y_train, data.y_test = xp.asarray(data.y_train), xp.asarray(data.y_test)
    probe_output(model, model.init_params(xp, dtype, cfg.seed), data.x_train[:2])
    mixing = build_topology(path=cfg.topology_file, n=comm.size).matrix if cfg.topology_file else None
    if cfg.batch_size < getattr(model, "min_batch", 1):
        raise ConfigError(f"model {cfg.model}: batch norm on flat features needs batch_size >= {model.min_batch} "
                          f"(a batch of {cfg.batch_size} normalises every feature to 0); raise --batch-size")
    check_thread_env()
    steps_per_epoch = (data.n_train_total // comm.size) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(
            f"batch_size {cfg.batch_size} is larger than a shard ({data.n_train_total // comm.size} "
            f"samples per rank on {comm.size} ranks)"
        )
    return data, model, steps_per_epoch, mixing


def _evaluate(comm, model, params, data):
    """(mean test loss, test accuracy) over every rank's test slice."""
    loss_sum, correct = model.evaluate(params, data.x_test, data.y_test)
    tot = np.array([loss_sum, correct, data.x_test.shape[0]], dtype=np.float64)
    comm.native_allreduce(tot)
    return tot[0] / tot[2], tot[1] / tot[2]


def _consensus_distance(comm, params):
    """(1/n) sum_i ||x_i - mean_j x_j||^2 over the ranks' parameter vectors (float64)."""
    x = params.astype(np.float64)
    mean = x.copy()
    comm.native_allreduce(mean)
    mean /= comm.size
    d = np.array([float(((x - mean) ** 2).sum())])
    comm.native_allreduce(d)
    return float(d[0] / comm.size)


class StepGuard:
    """Catches SIGTERM/SIGUSR1 and lets all ranks agree on stopping.

    Every step records locally whether its loss was finite (free); every
    ``CHECK_EVERY`` steps, before every checkpoint and at the end of each epoch, one MAX
    allreduce of two numbers tells every rank whether a stop signal arrived anywhere and
    the first step at which any rank saw a non-finite loss. A poisoned state is never
    checkpointed, and a stop signal is acted on within ``CHECK_EVERY`` steps.
    """

    CHECK_EVERY = 8

    def __init__(self, comm):
        self.comm = comm
        self.signum = _pending_signal()  # arrived during start-up
        self.first_bad = 0  # first step (1-based) with a non-finite loss on this rank
        self._old = {}
        for s in STOP_SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        self._flags = np.zeros(2, dtype=np.int64)

    def _handle(self, signum, frame):
        self.signum = signum

    def record(self, t, loss):
        """Note step ``t``'s loss (1-based step number)."""
        if not self.first_bad and not math.isfinite(loss):
            self.first_bad = t

    def record_params(self, t, params):
        """Note whether the parameters after step ``t`` are finite (O(d); at checks only)."""
        if not self.first_bad and not bool(get_array_module(params).isfinite(params).all()):
            self.first_bad = t

    def due(self, t):
        """True when step ``t`` is a regular check point."""
        return t % self.CHECK_EVERY == 0

    def check(self):
        """Returns (signal number or 0, first non-finite step over all ranks or 0)."""
        f = self._flags
        f[0] = self.signum
        f[1] = -self.first_bad if self.first_bad else np.iinfo(np.int64).min
        self.comm.native_allreduce(f, "max")
        first_bad = 0 if f[1] == np.iinfo(np.int64).min else int(-f[1])
        return int(f[0]), first_bad

    def close(self):
        for s, h in self._old.items():
            signal.signal(s, h)


class _Cursor:
    """Where training stands: global step, epoch (1-based), next step within the epoch."""

    def __init__(self, t=0, epoch=1, step_in_epoch=0, loss_sum=0.0):
        self.t, self.epoch, self.step_in_epoch, self.loss_sum = t, epoch, step_in_epoch, loss_sum
        self.lineage, self.resumed_from = new_lineage(), None  # rank 0's lineage is the run's


def model_layers(model, params=None):
    """The model's parameter layers as (name, shape, offset) into the flat buffer (its
    ``param_views`` in buffer order), for a layer-wise compressor."""
    out, offset = [], 0
    for name, shape in param_layout(model, params):
        out.append((name, shape, offset))
        offset += int(np.prod(shape, dtype=np.int64))
    return out


def _snapshot_local(params, algo, cursor, model=None):
    """Name -> this rank's array of everything a checkpoint holds (device arrays as is)."""
    arrays = {"params": params}
    arrays.update({f"state/{k}": v for k, v in algo.state_dict().items()})
    arrays.update({f"model/{k}": v for k, v in model_state(model).items()})  # BN running stats, dropout step
    arrays["train/loss_sum"] = np.array([cursor.loss_sum], dtype=np.float64)
    return arrays


def _save(comm, cfg, run_dir, params, algo, cursor, steps_per_epoch, dim, model=None):
    """Gather every rank's state to rank 0 and write one checkpoint atomically."""
    local = _snapshot_local(params, algo, cursor, model)
    gathered = {k: comm.gather_array(to_numpy(v)) for k, v in local.items()}
    path = checkpoint_path(run_dir, cursor.t, cursor.lineage)

    def write():
        if cursor.resumed_from and os.path.realpath(path) == os.path.realpath(cursor.resumed_from):
            return mark_latest(run_dir, path)  # nothing new since the resume: keep that file as is
        meta = {
            "world_size": comm.size, "step": cursor.t, "epoch": cursor.epoch,
            "step_in_epoch": cursor.step_in_epoch, "steps_per_epoch": steps_per_epoch,
            "algo": cfg.algo, "model": cfg.model, "n_params": dim, "dataset": cfg.dataset,
            "seed": cfg.seed, "replicated": int(algo.replicated), "lineage": cursor.lineage,
            "resumed_from": os.path.basename(cursor.resumed_from or ""),
            "param_layout": _layout_json(model, params),  # the parameters' names and shapes
        }
        write_checkpoint(path, Snapshot(meta, config_to_toml(cfg), gathered))
        mark_latest(run_dir, path)
        prune_checkpoints(run_dir, cfg.keep, cursor.lineage, protect=(cursor.resumed_from,))

    on_root(comm, write)
    return path


def _layout_json(model, params):
    return json.dumps([[name, list(shape)] for name, shape in param_layout(model, params)]) if model else "[]"


def _check_layout(path, meta, model, params):
    """Refuse a checkpoint whose parameters are named or shaped otherwise than this run's
    model's (a model file edited to another layer order with the same parameter count)."""
    import json

    if model is None or "param_layout" not in meta:
        return  # written before layouts were recorded
    try:
        theirs = [(str(n), tuple(s)) for n, s in json.loads(meta["param_layout"])]
    except (TypeError, ValueError):
        raise CheckpointError(f"{path}: malformed param_layout attribute") from None
    ours = param_layout(model, params)
    if theirs != ours:
        i = next((k for k, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        had = f"{theirs[i][0]} {theirs[i][1]}" if i < len(theirs) else "nothing"
        has = f"{ours[i][0]} {ours[i][1]}" if i < len(ours) else "nothing"
        raise CheckpointError(f"{path} holds parameters laid out otherwise than this run's model: parameter "
                              f"{i + 1} is {had} there but {has} here (same model file and layer order needed)")


def _resume(comm, cfg, run_dir, params, algo, steps_per_epoch, dim, model=None):
    """Load the checkpoint named by ``cfg.resume`` into ``params`` and ``algo``.

    Returns:
        The restored :class:`_Cursor`.
    """
    local = _snapshot_local(params, algo, _Cursor(), model)

    def load():
        path = resolve_resume(cfg.resume, run_dir)

        def accept(meta):
            if meta.get("algo") != cfg.algo:
                raise CheckpointError(f"{path} was written by algorithm {meta.get('algo')!r}, not {cfg.algo!r}")
            if meta.get("model") != cfg.model or int(meta.get("n_params", -1)) != dim:
                raise CheckpointError(
                    f"{path} holds a {meta.get('model')} model with {meta.get('n_params')} parameters; "
                    f"this run's {cfg.model} has {dim}"
                )
            _check_layout(path, meta, model, params)

        expected = {name: (tuple(arr.shape), np.dtype(arr.dtype)) for name, arr in local.items()}
        snap = read_checkpoint(path, expected, accept)
        meta = snap.meta
        old = int(meta["world_size"])
        if old != comm.size:
            policies = {"params": "replicated" if int(meta.get("replicated", 0)) else "refuse",
                        "train/loss_sum": "mean"}
            policies.update({f"state/{k}": algo.resize_policy(k) for k in algo.state_dict()})
            policies.update({k: "mean" for k in local if k.startswith("model/")})  # per-rank BN statistics
            snap = remap_world_size(snap, comm.size, policies)
            # continue from the same fraction of the epoch
            frac = int(meta["step_in_epoch"]) / max(int(meta["steps_per_epoch"]), 1)
            meta["step_in_epoch"] = min(steps_per_epoch, round(frac * steps_per_epoch))
        return snap, path

    got = on_root(comm, load)
    head = np.zeros(3, dtype=np.int64)
    if comm.rank == 0:
        snap, path = got
        head[:] = [snap.meta["step"], snap.meta["epoch"], snap.meta["step_in_epoch"]]
    comm.bcast_array(head)
    for name, arr in local.items():
        host = np.empty(arr.shape, dtype=arr.dtype)
        comm.scatter_array(snap.arrays[name] if comm.rank == 0 else None, host)
        arr[...] = get_array_module(arr).asarray(host)
    cursor = _Cursor(int(head[0]), int(head[1]), int(head[2]), float(local["train/loss_sum"][0]))
    if comm.rank == 0:
        cursor.lineage, cursor.resumed_from = rundir.lineage_after_resume(run_dir, path), path
    return cursor, (path if comm.rank == 0 else None)


#: span names of the collectives that are server rounds
_COLLECTIVE_SPAN = {"ps": "server round", "multi-ps": "server round"}


def _start_trace(cfg, comm, run_dir):
    """Check the trace file before training (rank 0: never an input, a file of the run, a
    device or a FIFO; its directory writable), then start recording on every rank."""
    on_root(comm, lambda: check_output(cfg.trace, "--trace", run_inputs(cfg), run_dir))
    trace.start(comm)


def _finish_trace(cfg, comm, writer):
    """Gather the timeline to rank 0, write it, print the per-epoch split."""
    rows = agree(comm, lambda: trace.finish(comm, cfg.trace))
    if rows:
        writer.say(f"trace written to {cfg.trace} (open in ui.perfetto.dev); time per epoch, mean over ranks:\n"
                   + trace.format_summary(rows))


class _Run:
    """Everything a run is built from: communicator, device, run directory, data, model,
    flat parameter and gradient buffers, algorithm and lr schedule."""

    def __init__(self, cfg, comm=None):
        given = cfg
        self.cfg = cfg = dataclasses.replace(cfg)  # resolved choices (normalize) are recorded in this copy
        cfg.config_path = getattr(given, "config_path", "")  # not a field: an input outputs may not overwrite
        self.xp = resolve_device(cfg.device, local_rank())
        if comm is None:
            transport = cfg.transport if cfg.device == "gpu" else ("host" if cfg.transport == "auto" else cfg.transport)
            comm = world(transport)
        self.comm = comm
        self._threads = limit_threads(cfg.threads) if cfg.threads else None  # kept alive with the run
        self.run_dir = _prepare_run_dir(cfg, comm)
        if cfg.trace:
            _start_trace(cfg, comm, self.run_dir)
        self.data, self.model, self.steps_per_epoch, mixing = agree(comm, lambda: _setup(cfg, comm, self.xp))
        cfg.normalize = self.data.normalization  # what auto chose goes into config.toml and summary.json
        self.params = self.model.init_params(self.xp, np.dtype(cfg.dtype), cfg.seed)
        self.grad = self.xp.zeros_like(self.params)
        allreduce = trace.wrap(get_allreduce(cfg.collective),
                               _COLLECTIVE_SPAN.get(cfg.collective, f"allreduce {cfg.collective}"))
        # --fp16-allreduce: the gradient's allreduce in float16 (its casts timed as compression)
        self.half = HalfWire(allreduce) if cfg.fp16_allreduce else None
        allreduce = self.half or allreduce
        # --overlap / --bucket-size: the gradient's allreduce served by buckets (None: one call)
        # (auto: on where every rank has a free core for the thread; collective, so outside agree)
        spare = spare_cores(comm, force="--overlap" if cfg.overlap == "auto" else None) \
            if cfg.overlap and comm.size > 1 else (True, "")
        self.buckets, self.overlap_note = agree(comm, lambda: _gradient_buckets(cfg, comm, self.model, self.grad,
                                                                                spare))
        self.overlap_auto = cfg.overlap == "auto"
        if self.overlap_auto:  # config.toml records what auto chose
            cfg.overlap = bool(self.buckets is not None and self.buckets.engine.overlap)
        ctx = AlgoContext(cfg, comm, self.buckets or allreduce, self.params.size, self.steps_per_epoch, self.xp,
                          layers=model_layers(self.model))
        if mixing is not None:
            ctx.extras["mixing"] = mixing
        self.algo = get_algorithm(cfg.algo)(ctx, self.params)
        # compute / compress / comm / other of the steps (on the GPU, each part waits for its kernels)
        self.clock = StepClock(comm, (lambda: synchronize(self.params)) if cfg.device == "gpu" else None)
        self.clock.time_compressors(self.algo)
        if self.half is not None:
            # the casts of the unbucketed path (the buckets' casts run inside the bucket reductions)
            self.clock.time_compressors(types.SimpleNamespace(half=self.half))
        self.lr_at = make_schedule(cfg, self.steps_per_epoch)
        # the nodes the two-level collective found (MPI's shared-memory groups: the launcher's
        # or Slurm's placement), for the banner and summary.json
        self.nodes = node_layout(comm).describe() if cfg.collective in ("hierarchical", "auto") else None
        # what the collective runs for the algorithm's allreduce sizes (auto resolved; empty: none used)
        sizes = self.algo.allreduce_sizes()
        if self.buckets is not None:  # the gradient's allreduce runs as one message per bucket
            wire = self.algo.wire_itemsize()
            sizes = tuple(b.size * wire for b in self.buckets.buckets)
        self.allreduce_choice = chosen(comm, cfg.collective, sizes)
        self.collective_used = describe(cfg.collective, self.allreduce_choice)

    def banner(self, cursor, resumed_from):
        """The run's first line."""
        cfg, comm, data = self.cfg, self.comm, self.data
        over = f" over {self.collective_used}" if self.collective_used else ""
        over += " in float16 (--fp16-allreduce)" if cfg.fp16_allreduce else ""
        return (f"hpctrain {__version__}: {cfg.algo}{over} on {comm.size} "
                f"rank{'s' if comm.size != 1 else ''}, {cfg.model} on {data.name} ({data.n_train_total} train / "
                f"{data.n_test_total} test), {self.steps_per_epoch} steps/epoch, run dir {self.run_dir}"
                + (f", {self.nodes['nodes']} node{'s' if self.nodes['nodes'] != 1 else ''} (ranks per node "
                   f"{', '.join(map(str, self.nodes['ranks_per_node']))})" if self.nodes else "")
                + f", {self.overlap_note}"
                + (f", resumed from {resumed_from} at step {cursor.t}" if resumed_from else ""))

    def close(self):
        """Stop the communication thread of --overlap."""
        if self.buckets is not None:
            self.buckets.close()


#: why an algorithm's bucketing rules out --overlap (see Algorithm.bucketing)
_NO_BUCKETS = {
    "params": "averages the parameters after its local update, which cannot start during backward",
    "layerwise": "compresses layer by layer (runs after backward)",
    "whole": "needs the whole gradient at once",
}


def _gradient_buckets(cfg, comm, model, grad, spare=(True, "")):
    """--overlap / --bucket-size: (a :class:`~hpctrain.overlap.BucketedAllreduce` or None,
    the banner's words saying what runs and, when overlap is off, why). ``spare``: the
    :func:`~hpctrain.overlap.spare_cores` verdict (auto overlaps only with a free core per
    rank; an explicit --overlap runs anyway, and the words say the cores are shared)."""
    from .buckets import make_buckets
    from .comm import thread_multiple
    from .overlap import BucketedAllreduce

    bucketing = get_algorithm(cfg.algo).bucketing
    layers = [(a, b - a) for a, b in getattr(model, "layer_slices", [])]
    if cfg.bucket_size and layers:  # a size that could never work is refused wherever it runs
        make_buckets(layers, grad.dtype.itemsize, cfg.bucket_size)
    why = None
    if bucketing != "free":
        why = f"algo {cfg.algo} {_NO_BUCKETS.get(bucketing, 'runs unbucketed')}"
    elif not getattr(model, "announces_layers", False):
        why = f"model {cfg.model} computes its gradient in one call (cnn, resnet8 and layer strings announce layers)"
    elif cfg.device == "gpu":
        why = "not on the GPU path yet"
    elif comm.size == 1:
        why = "one rank"
    elif cfg.overlap and not thread_multiple()[0]:
        why = f"MPI granted thread level {thread_multiple()[1]!r}, not 'multiple'"
    crowded = why is None and cfg.overlap == "auto" and not spare[0]  # auto: as --no-overlap
    if crowded:
        why = spare[1]
    elif why is not None:
        return None, (f"overlap off: {why}" if cfg.overlap or cfg.bucket_size else "overlap off")
    overlap = bool(cfg.overlap) and not crowded
    if not overlap and not cfg.bucket_size:
        return None, f"overlap off: {why}" if crowded else "overlap off"
    reduce = get_allreduce(cfg.collective)
    buckets = BucketedAllreduce(comm, grad, layers, HalfWire(reduce) if cfg.fp16_allreduce else reduce,
                                cfg.bucket_size or None,
                                overlap=overlap, spare=spare)  # the verdict agreed above: no second collective
    n, big = len(buckets.buckets), max(b.size for b in buckets.buckets) * grad.dtype.itemsize / (1 << 20)
    what = f"{n} bucket{'s' if n != 1 else ''} (largest {big:.3g} MiB)"
    if overlap:
        return buckets, f"overlap on, {what}" + (f", although {spare[1]}" if spare[1] else "")
    return buckets, f"overlap off{': ' + why if crowded else ''}, {what} after backward"


class _Checkpoints:
    """The checkpoint policy of ``--checkpoint-every`` (N steps or N epochs, plus the end of
    the run so that it can be extended with --resume) and the last checkpoint written."""

    def __init__(self, run, cursor):
        self.run, self.cursor = run, cursor
        self.period = parse_period(run.cfg.checkpoint_every)
        self.last = None

    def due_after_step(self, t):
        return bool(self.period and self.period[1] == "steps" and t % self.period[0] == 0)

    def due_after_epoch(self, epoch):
        return bool(self.period and self.period[1] == "epochs" and epoch % self.period[0] == 0)

    def due_at_end(self):
        c = self.cursor
        return bool(self.period) and self.last != checkpoint_path(self.run.run_dir, c.t, c.lineage)

    def save(self):
        r = self.run
        with trace.span("checkpoint write", "io"):
            self.last = _save(r.comm, r.cfg, r.run_dir, r.params, r.algo, self.cursor, r.steps_per_epoch,
                              r.params.size, r.model)


def _train_epoch(run, cursor, guard, ckpt):
    """The steps of one epoch from ``cursor.step_in_epoch``: gradient, algorithm step, and
    every ``CHECK_EVERY`` steps the agreed check for divergence and stop signals.

    Returns:
        The learning rate of the epoch's last step.
    """
    cfg, comm, data, model, algo, params, grad = (run.cfg, run.comm, run.data, run.model, run.algo,
                                                  run.params, run.grad)
    epoch, steps, xp = cursor.epoch, run.steps_per_epoch, run.xp
    order = xp.asarray(epoch_order(data.x_train.shape[0], cfg.seed, epoch, comm.rank))
    bar = Progress(steps, f"epoch {epoch}/{cfg.epochs}", comm.rank == 0 and not cfg.quiet,
                   samples_per_step=cfg.batch_size * comm.size, first=cursor.step_in_epoch)
    lr = run.lr_at(cursor.t, epoch)

    buckets = run.buckets  # --overlap: backward announces each layer; its bucket starts when complete

    def forward_backward(idx):
        # take() is the same rows as x[idx], a little faster on NumPy (fewer index checks)
        x, y = xp.take(data.x_train, idx, axis=0), data.y_train[idx]
        if buckets is None:
            return model.loss_grad(params, x, y, grad, cfg.weight_decay)
        buckets.begin()
        return model.loss_grad(params, x, y, grad, cfg.weight_decay, on_layer=buckets.layer_ready)

    # timed by the run's StepClock (metrics.jsonl) and, while tracing, spans of the same parts
    loss_grad = run.clock.time_compute(trace.wrap(forward_backward, "compute", "compute"))
    algo_step = run.clock.time_step(trace.wrap(algo.step, "step", "other"))  # compress, collectives, update
    check = run.clock.time_comm(guard.check)  # the agreement: where ranks wait for the slowest
    with run.clock.loop():  # the steps' time (checkpoint writes set aside)
        for i in range(cursor.step_in_epoch, steps):
            last = i + 1 == steps or cursor.t + 1 == cfg.max_steps  # --max-steps may end the run inside an epoch
            idx = batch_rows(order, i, cfg.batch_size)
            loss = loss_grad(idx)
            lr = run.lr_at(cursor.t, epoch)
            algo_step(params, grad, lr, cursor.t)
            cursor.t, cursor.step_in_epoch = cursor.t + 1, i + 1
            cursor.loss_sum += loss
            guard.record(cursor.t, loss)
            if bar.enabled:
                bar.update(i + 1, f"loss {cursor.loss_sum / (i + 1):.4f}")
            ckpt_due = ckpt.due_after_step(cursor.t)
            if ckpt_due or guard.due(cursor.t) or last:
                guard.record_params(cursor.t, params)
                stop, first_bad = check()
                if first_bad:
                    # every rank raises; the CLI prints it once (rank 0)
                    raise TrainingDiverged(
                        f"loss or parameters became NaN/Inf at step {first_bad} (epoch {epoch}); the last "
                        f"good checkpoint ({ckpt.last or 'none'}) is kept; {_divergence_hint(data)}"
                    )
                save = bool(stop) and (stop != signal.SIGINT or ckpt.period is not None)  # Ctrl-C: when on
                if save or ckpt_due:
                    with run.clock.aside():
                        ckpt.save()
                if stop:
                    bar.close()
                    raise _stopped(stop, cursor.t, ckpt.last, save)
            if last:
                break
    bar.close()
    return lr


def _divergence_hint(data):
    """What to try after a divergence: the data's scale when it is not normalised and
    large, else a lower learning rate."""
    lo, hi = data.value_range
    if data.normalization == "none" and max(abs(lo), abs(hi)) > 10:
        return (f"the training data is not normalised (values in [{lo:g}, {hi:g}]): try --normalize unit or "
                "--normalize standard, or lower --lr")
    return "lower --lr"


class _EpochMeter:
    """Wall time, communication time and bytes of one epoch (this rank's counters)."""

    def __init__(self, comm, clock):
        self.comm, self.clock = comm, clock
        self.sent, self.recv = comm.bytes_sent, comm.bytes_recv
        clock.reset()
        self.t0 = time.perf_counter()

    def record(self, run, cursor, first, lr):
        """The epoch's metrics.jsonl record (agreed over ranks): losses, accuracy, times,
        samples/s, bytes per rank, paper 001's compression ratio and the wire ratio."""
        comm, params, done = run.comm, run.params, cursor.step_in_epoch - first  # fewer at --max-steps
        epoch_time = time.perf_counter() - self.t0
        sent_epoch, recv_epoch = comm.bytes_sent - self.sent, comm.bytes_recv - self.recv
        parts = self.clock.split()
        stats = np.array([cursor.loss_sum / max(cursor.step_in_epoch, 1), epoch_time, parts["steps"]]
                         + [parts[p] for p in StepClock.PARTS], dtype=np.float64)
        comm.native_allreduce(stats)
        stats /= comm.size
        with trace.span("evaluate"):
            test_loss, test_acc = _evaluate(comm, run.model, run.algo.eval_params(params), run.data)
        algo_stats = run.algo.pop_stats()
        counts = comm.allgather_array(np.array(
            [sent_epoch, recv_epoch, algo_stats.get("floats_up", 0) + algo_stats.get("floats_down", 0)],
            dtype=np.float64))
        sent, recv = counts[:, 0].astype(np.int64), counts[:, 1].astype(np.int64)
        record = {
            "epoch": cursor.epoch,
            "step": cursor.t,
            "train_loss": float(stats[0]),
            "test_loss": float(test_loss),
            "test_accuracy": float(test_acc),
            "lr": lr,
            "wall_time": float(epoch_time),
            # StepClock's split (mean over ranks): compute + compress + comm + other = step_time
            "step_time": float(stats[2]),
            **{f"{p}_time": float(v) for p, v in zip(StepClock.PARTS, stats[3:])},
            "samples_per_s": float(done * run.cfg.batch_size * comm.size / stats[1]) if stats[1] > 0 else 0.0,
            "bytes_sent_per_rank": [int(b) for b in sent],
            "bytes_recv_per_rank": [int(b) for b in recv],
        }
        record.update(traffic_ratios(counts[:, 2].sum(), counts[:, 0].sum(), comm.size, params.size,
                                     params.dtype.itemsize, done))
        if not run.algo.replicated:
            record["consensus_distance"] = _consensus_distance(comm, params)
        return record


def _summary(run, cursor, history, t_start, ckpt, resumed_from):
    """The summary.json of a run (agreed over ranks)."""
    train_time = sum(r["wall_time"] for r in history)
    final = history[-1] if history else {}
    return {
        "hpctrain_version": __version__,
        "world_size": run.comm.size,
        "nodes": run.nodes,  # {nodes, ranks_per_node, shards} of the two-level collective, else None
        # the allreduce the collective ran per message size (auto resolved); "" and {} when none is used
        "collective_used": run.collective_used,
        # --overlap: whether the gradient's buckets were reduced during backward, and what ran
        "overlap": bool(run.buckets is not None and run.buckets.engine.overlap),
        "overlap_note": run.overlap_note,
        "buckets": 0 if run.buckets is None else len(run.buckets.buckets),
        "allreduce_choice": {str(n): name for n, name in run.allreduce_choice.items()},
        "epochs": run.cfg.epochs,
        "steps": cursor.t,
        "final_train_loss": final.get("train_loss"),
        "final_test_loss": final.get("test_loss"),
        "final_test_accuracy": final.get("test_accuracy"),
        "train_time_s": train_time,
        **{f"{p}_time_s": sum(r[f"{p}_time"] for r in history) for p in StepClock.PARTS},
        "total_time_s": time.perf_counter() - t_start,
        "samples_per_s": (sum(r["samples_per_s"] * r["wall_time"] for r in history) / train_time
                          if train_time else 0.0),
        "bytes_sent_per_rank": run.comm.allgather_array(np.array([run.comm.bytes_sent], dtype=np.int64))[:, 0].tolist(),
        "run_dir": run.run_dir,
        "last_checkpoint": ckpt.last,
        "resumed_from": resumed_from,
        "config": run.cfg.to_dict(),
    }


def _choice_comment(run):
    """A comment for config.toml saying what ``--collective auto`` chose (or that the
    algorithm uses no allreduce) and what ``--overlap`` auto chose."""
    said = f"# --overlap auto: {run.overlap_note}\n" if run.overlap_auto else ""
    if not run.collective_used:
        return said + f"# {run.cfg.algo} uses no allreduce: --collective does not apply\n"
    if run.cfg.collective == "auto":
        return said + f"# --collective auto chose: {run.collective_used.removeprefix('auto (').removesuffix(')')}\n"
    return said


def run_training(cfg, comm=None):
    """Train as ``cfg`` says; rank 0 writes the run directory.

    Args:
        cfg: a validated :class:`~hpctrain.config.TrainConfig`.
        comm: a :class:`~hpctrain.comm.Communicator` (default: MPI.COMM_WORLD).

    Returns:
        The summary dict (also written to ``summary.json``) with ``params`` added, on
        every rank.
    """
    run = _Run(cfg, comm)
    comm = run.comm
    cfg = run.cfg
    cursor, resumed_from = _Cursor(), None
    if cfg.resume:
        cursor, resumed_from = _resume(comm, cfg, run.run_dir, run.params, run.algo, run.steps_per_epoch,
                                       run.params.size, run.model)
    cursor.lineage = comm.bcast_bytes(cursor.lineage.encode()).decode()  # rank 0's, on every rank
    writer = agree(comm, lambda: RunWriter(run.run_dir, comm.rank == 0, cfg.quiet,
                                           keep_epochs_before=cursor.epoch if cfg.resume else None))
    agree(comm, lambda: writer.config(config_to_toml(cfg) + _choice_comment(run)))
    writer.say(run.banner(cursor, resumed_from))
    history, t_start = [], time.perf_counter()
    guard, ckpt = StepGuard(comm), _Checkpoints(run, cursor)
    inspector = start_stall_inspector(comm, cfg.stall_warning, cfg.stall_timeout)  # names a rank that stalls
    if inspector is not None:
        run.model.loss_grad = inspector.watch_compute(run.model.loss_grad)
    try:
        while cursor.epoch <= cfg.epochs and not (cfg.max_steps and cursor.t >= cfg.max_steps):
            trace.mark(f"epoch {cursor.epoch}")
            meter, first = _EpochMeter(comm, run.clock), cursor.step_in_epoch
            lr = _train_epoch(run, cursor, guard, ckpt)
            record = meter.record(run, cursor, first, lr)
            history.append(record)
            agree(comm, lambda: writer.epoch(record))  # a full disk ends every rank
            if cursor.step_in_epoch < run.steps_per_epoch:
                break  # --max-steps ended the run inside this epoch (a resume continues it there)
            epoch = cursor.epoch
            cursor.epoch, cursor.step_in_epoch, cursor.loss_sum = epoch + 1, 0, 0.0
            if ckpt.due_after_epoch(epoch):
                ckpt.save()
        if ckpt.due_at_end():
            ckpt.save()  # the end of the run, so that it can be extended with --resume
    except (Preempted, TrainingDiverged):  # agreed by every rank: the trace can still be gathered
        if cfg.trace:
            _finish_trace(cfg, comm, writer)
        raise
    finally:
        if inspector is not None:
            inspector.stop()
        run.close()
        guard.close()
        writer.close()
    summary = _summary(run, cursor, history, t_start, ckpt, resumed_from)
    agree(comm, lambda: writer.summary(summary))  # before the trace: a failing trace write never costs it
    if cfg.trace:
        _finish_trace(cfg, comm, writer)
    if history:
        writer.result(f"final test accuracy: {history[-1]['test_accuracy']:.4f} (run dir {run.run_dir})")
    summary["params"] = run.params
    return summary
