"""Training curves of one or more run directories: loss and accuracy vs epoch and vs bytes.

Reads each run's ``metrics.jsonl`` (and ``summary.json`` for its label); matplotlib is
imported only here, from the ``plot`` extra.
"""

import json
import os

from .errors import ConfigError, DataError

__all__ = ["load_run", "plot_runs"]


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
            cfg = json.load(f).get("config", {})
        label = f"{label} ({cfg.get('algo', '?')}, {cfg.get('collective', '?')})"
    return label, records


def plot_runs(run_dirs, out):
    """Write a 2x2 figure: train loss and test accuracy vs epoch and vs bytes sent per rank.

    Args:
        run_dirs: run directories.
        out: PNG (or any matplotlib format) path.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("hpctrain plot needs matplotlib: pip install 'hpctrain[plot]'") from None
    runs = [load_run(d) for d in run_dirs]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for label, recs in runs:
        epochs = [r["epoch"] for r in recs]
        sent, total = [], 0
        for r in recs:
            per_rank = r.get("bytes_sent_per_rank", [0])
            total += sum(per_rank) / max(len(per_rank), 1)
            sent.append(total)
        loss = [r["train_loss"] for r in recs]
        acc = [r["test_accuracy"] for r in recs]
        axes[0, 0].plot(epochs, loss, marker="o", label=label)
        axes[0, 1].plot(epochs, acc, marker="o", label=label)
        axes[1, 0].plot(sent, loss, marker="o", label=label)
        axes[1, 1].plot(sent, acc, marker="o", label=label)
    for ax, (x, y) in zip(axes.flat, [("epoch", "train loss"), ("epoch", "test accuracy"),
                                       ("bytes sent per rank", "train loss"),
                                       ("bytes sent per rank", "test accuracy")]):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(True, alpha=0.3)
        if x.startswith("bytes"):
            ax.set_xscale("log")
    axes[0, 0].set_yscale("log")
    axes[1, 0].set_yscale("log")
    axes[0, 1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
