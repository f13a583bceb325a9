"""The training loop: config -> data, model, algorithm -> loop -> metrics.

Read top to bottom: :func:`run_training` sets up (every setup error is agreed on by all
ranks, so one rank's bad input never leaves the others waiting), then runs epochs of
``grad -> algorithm.step`` and evaluates on the test set after each epoch.
"""

import math
import os
import time

import numpy as np

from . import __version__
from .algorithms import get_algorithm
from .collectives import get_allreduce
from .comm import world
from .config import config_to_toml
from .data import load_dataset
from .errors import ConfigError, HpctrainError, SilentExit
from .metrics import Progress, RunWriter
from .models import get_model
from .threads import limit_threads

__all__ = ["run_training", "agree", "epoch_order"]


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
            raise err
        raise SilentExit("")
    return result


def _prepare_run_dir(cfg, comm):
    """Rank 0 creates the run directory; its path (or its error) reaches every rank."""
    path, msg = b"", b""
    if comm.rank == 0:
        out = cfg.out or os.path.join("runs", time.strftime("run-%Y%m%d-%H%M%S"))
        try:
            if os.path.exists(os.path.join(out, "metrics.jsonl")) and not cfg.overwrite:
                raise ConfigError(f"run directory {out} already holds a run; pass --overwrite or choose another --out")
            try:
                os.makedirs(out, exist_ok=True)
                probe = os.path.join(out, ".hpctrain-write-test")
                with open(probe, "w"):
                    pass
                os.remove(probe)
            except OSError as exc:
                raise ConfigError(f"output directory {out} is not writable: {exc.strerror}") from None
            path = out.encode()
        except ConfigError as exc:
            msg = str(exc).encode()
    msg = comm.bcast_bytes(msg)
    if msg:
        if comm.rank == 0:
            raise ConfigError(msg.decode())
        raise SilentExit("")
    return comm.bcast_bytes(path).decode()


def epoch_order(n, seed, epoch, rank):
    """This rank's sample order for ``epoch`` (a permutation of its ``n`` shard rows)."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, rank, 0x0DE7])).permutation(n)


def _evaluate(comm, model, params, data):
    """(mean test loss, test accuracy) over every rank's test slice."""
    loss_sum, correct = model.evaluate(params, data.x_test, data.y_test)
    tot = np.array([loss_sum, correct, data.x_test.shape[0]], dtype=np.float64)
    comm.native_allreduce(tot)
    return tot[0] / tot[2], tot[1] / tot[2]


def _setup(cfg, comm):
    """Load this rank's data and build the model (no communication: run under agree)."""
    data = load_dataset(cfg.dataset, comm.rank, comm.size, cfg.seed, cfg.data_dir)
    model = get_model(cfg.model, data.n_features, data.n_classes)
    dtype = np.dtype(cfg.dtype)
    data.x_train = data.x_train.astype(dtype, copy=False)
    data.x_test = data.x_test.astype(dtype, copy=False)
    steps_per_epoch = (data.n_train_total // comm.size) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(
            f"batch_size {cfg.batch_size} is larger than a shard ({data.n_train_total // comm.size} "
            f"samples per rank on {comm.size} ranks)"
        )
    return data, model, steps_per_epoch


def run_training(cfg, comm=None):
    """Train as ``cfg`` says; rank 0 writes the run directory.

    Args:
        cfg: a validated :class:`~hpctrain.config.TrainConfig`.
        comm: a :class:`~hpctrain.comm.Communicator` (default: MPI.COMM_WORLD).

    Returns:
        The summary dict (also written to ``summary.json``), on every rank.
    """
    comm = comm or world()
    _threads = limit_threads(cfg.threads) if cfg.threads else None  # noqa: F841 (kept alive)
    run_dir = _prepare_run_dir(cfg, comm)
    data, model, steps_per_epoch = agree(comm, lambda: _setup(cfg, comm))
    params = model.init_params(np, np.dtype(cfg.dtype), cfg.seed)
    grad = np.zeros_like(params)
    algo = get_algorithm(cfg.algo)(cfg, comm, get_allreduce(cfg.collective), params)

    writer = RunWriter(run_dir, comm.rank == 0, cfg.quiet)
    writer.config(config_to_toml(cfg))
    writer.say(
        f"hpctrain {__version__}: {cfg.algo} over {cfg.collective} on {comm.size} ranks, "
        f"{cfg.model} on {data.name} ({data.n_train_total} train / {data.n_test_total} test), "
        f"{steps_per_epoch} steps/epoch, run dir {run_dir}"
    )
    history, t_step, t_start = [], 0, time.perf_counter()
    train_time = 0.0
    for epoch in range(1, cfg.epochs + 1):
        order = epoch_order(data.x_train.shape[0], cfg.seed, epoch, comm.rank)
        bar = Progress(steps_per_epoch, f"epoch {epoch}/{cfg.epochs}", comm.rank == 0 and not cfg.quiet)
        comm_before, bytes_before = comm.comm_time, comm.bytes_sent
        loss_sum = 0.0
        t0 = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            loss_sum += model.loss_grad(params, data.x_train[idx], data.y_train[idx], grad, cfg.weight_decay)
            algo.step(params, grad, cfg.lr, t_step)
            t_step += 1
            bar.update(i + 1, f"loss {loss_sum / (i + 1):.4f}")
        epoch_time = time.perf_counter() - t0
        sent_epoch = comm.bytes_sent - bytes_before
        bar.close()
        train_time += epoch_time
        comm_time = comm.comm_time - comm_before
        stats = np.array([loss_sum / steps_per_epoch, comm_time, epoch_time], dtype=np.float64)
        comm.native_allreduce(stats)
        stats /= comm.size
        train_loss = float(stats[0])
        if not math.isfinite(train_loss):
            raise HpctrainError(f"training diverged: train loss is {train_loss} in epoch {epoch} (step {t_step}); lower --lr")
        test_loss, test_acc = _evaluate(comm, model, params, data)
        sent = comm.allgather_array(np.array([sent_epoch], dtype=np.int64))[:, 0]
        record = {
            "epoch": epoch,
            "step": t_step,
            "train_loss": train_loss,
            "test_loss": float(test_loss),
            "test_accuracy": float(test_acc),
            "lr": cfg.lr,
            "wall_time": float(epoch_time),
            "comm_time": float(stats[1]),
            "compute_time": float(stats[2] - stats[1]),
            "samples_per_s": float(steps_per_epoch * cfg.batch_size * comm.size / stats[2]),
            "bytes_sent_per_rank": [int(b) for b in sent],
        }
        history.append(record)
        writer.epoch(record)
    total_steps = t_step
    summary = {
        "hpctrain_version": __version__,
        "world_size": comm.size,
        "epochs": cfg.epochs,
        "steps": total_steps,
        "final_train_loss": history[-1]["train_loss"] if history else None,
        "final_test_loss": history[-1]["test_loss"] if history else None,
        "final_test_accuracy": history[-1]["test_accuracy"] if history else None,
        "train_time_s": train_time,
        "total_time_s": time.perf_counter() - t_start,
        "samples_per_s": total_steps * cfg.batch_size * comm.size / train_time if train_time else 0.0,
        "bytes_sent_per_rank": comm.allgather_array(np.array([comm.bytes_sent], dtype=np.int64))[:, 0].tolist(),
        "run_dir": run_dir,
        "config": cfg.to_dict(),
    }
    writer.summary(summary)
    writer.close()
    if history:
        writer.say(f"final test accuracy: {history[-1]['test_accuracy']:.4f} (run dir {run_dir})")
    summary["params"] = params
    return summary
