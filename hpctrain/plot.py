"""Training curves of one or more run directories: loss and accuracy vs epoch, wall-clock time or bytes.

Reads each run's ``metrics.jsonl`` (and ``summary.json`` for its label); matplotlib is
imported only here, from the ``plot`` extra.
"""

import json
import os

from .errors import ConfigError, DataError

__all__ = ["load_run", "plot_runs", "series", "XAXES"]


def load_run(run_dir):
    """(label, list of epoch records) of a run directory."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise DataError(f"{run_dir}: no metrics.jsonl (not an hpctrain run directory)")
    with open(path, encoding="utf-8") as f:
        try:
            records = [json.loads(line) for line in f if line.strip()]
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: malformed line ({exc.msg})") from None
    label = os.path.basename(os.path.normpath(run_dir))
    summary = os.path.join(run_dir, "summary.json")
    if os.path.exists(summary):
        with open(summary, encoding="utf-8") as f:
            doc = json.load(f)
        cfg = doc.get("config", {})
        used = doc.get("collective_used", cfg.get("collective", "?"))  # what auto chose; "" = no allreduce
        label = f"{label} ({cfg.get('algo', '?')}{', ' + used if used else ''})"
    return label, records


XAXES = {"epoch": "epoch", "time": "wall-clock training time (s)", "bytes": "bytes sent per rank"}


def series(recs):
    """The x axes of one run's records: ``epoch``, cumulative ``time`` (training wall time,
    evaluation excluded) and cumulative ``bytes`` sent per rank (mean over ranks)."""
    out = {"epoch": [r["epoch"] for r in recs], "time": [], "bytes": []}
    t = total = 0.0
    for r in recs:
        t += float(r.get("wall_time", 0.0))
        per_rank = r.get("bytes_sent_per_rank", [0])
        total += sum(per_rank) / max(len(per_rank), 1)
        out["time"].append(t)
        out["bytes"].append(total)
    return out


def plot_runs(run_dirs, out, x=None):
    """Write the figure: train loss and test accuracy against ``x``.

    Args:
        run_dirs: run directories.
        out: PNG (or any matplotlib format) path.
        x: ``epoch``, ``time`` or ``bytes`` (one row: loss and accuracy against it); None: a
            2x2 figure against epoch and against bytes.
    """
    if x is not None and x not in XAXES:
        raise ConfigError(f"unknown x axis {x!r}; choose from {', '.join(XAXES)}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("hpctrain plot needs matplotlib: pip install 'hpctrain[plot]'") from None
    runs = [load_run(d) for d in run_dirs]
    xs = [x] if x else ["epoch", "bytes"]
    fig, axes = plt.subplots(len(xs), 2, figsize=(11, 4 * len(xs)), squeeze=False)
    for label, recs in runs:
        ser = series(recs)
        loss = [r["train_loss"] for r in recs]
        acc = [r["test_accuracy"] for r in recs]
        for row, key in enumerate(xs):
            axes[row, 0].plot(ser[key], loss, marker="o", label=label)
            axes[row, 1].plot(ser[key], acc, marker="o", label=label)
    for row, key in enumerate(xs):
        for col, y in enumerate(("train loss", "test accuracy")):
            ax = axes[row, col]
            ax.set_xlabel(XAXES[key])
            ax.set_ylabel(y)
            ax.grid(True, alpha=0.3)
            if key in ("bytes", "time"):
                ax.set_xscale("log")
        axes[row, 0].set_yscale("log")
    axes[0, 1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
