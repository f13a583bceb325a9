"""Training curves of one or more run directories: loss and accuracy vs epoch, wall-clock time or bytes.

Reads each run's ``metrics.jsonl`` (and ``summary.json`` for its label); matplotlib is
imported only here, from the ``plot`` extra.
"""

import json
import math
import os
import warnings

from .errors import ConfigError, DataError, HpctrainError
from .files import check_input, check_output, check_text_path, io_errors

__all__ = ["load_run", "plot_runs", "series", "XAXES"]


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _records(path):
    """The epoch records of ``path``: each line a JSON object with finite numbers."""
    check_input(path, "metrics file")
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise DataError(f"{path}:{lineno}: malformed line ({getattr(exc, 'msg', 'nested too deeply')})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{lineno}: not an epoch record (a JSON object)")
        for key in ("epoch", "train_loss", "test_accuracy"):
            if not _number(rec.get(key)) or not math.isfinite(rec[key]):
                raise DataError(f"{path}:{lineno}: {key} must be a finite number, got {rec.get(key)!r}"[:200])
        for key in ("wall_time",):
            if key in rec and not (_number(rec[key]) and math.isfinite(rec[key])):
                raise DataError(f"{path}:{lineno}: {key} must be a finite number"[:200])
        sent = rec.get("bytes_sent_per_rank", [0])
        if not isinstance(sent, list) or not all(_number(b) and math.isfinite(b) for b in sent):
            raise DataError(f"{path}:{lineno}: bytes_sent_per_rank must be a list of numbers")
        records.append(rec)
    if not records:
        raise DataError(f"{path}: no epoch records (the run ended before its first epoch)")
    return records


def load_run(run_dir):
    """(label, list of epoch records) of a run directory."""
    check_text_path(run_dir, "run directory", DataError)
    if not os.path.isdir(run_dir):
        raise DataError(f"{run_dir}: not a directory (give hpctrain run directories)")
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise DataError(f"{run_dir}: no metrics.jsonl (not an hpctrain run directory)")
    records = _records(path)
    label = os.path.basename(os.path.normpath(run_dir))
    summary = os.path.join(run_dir, "summary.json")
    try:
        check_input(summary, "summary")
        with open(summary, encoding="utf-8") as f:
            doc = json.load(f)
        cfg = doc.get("config", {})
        used = doc.get("collective_used", cfg.get("collective", "?"))  # what auto chose; "" = no allreduce
        label = f"{label} ({cfg.get('algo', '?')}{', ' + used if used else ''})"
    except (HpctrainError, OSError, ValueError, RecursionError, AttributeError, TypeError):
        pass  # the label is a nicety: a missing or damaged summary leaves the directory name
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
    fmt = os.path.splitext(out)[1].lstrip(".").lower()
    formats = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if fmt not in formats:
        raise ConfigError(f"--output {out}: unknown image format {fmt or '(no extension)'!r}; "
                          f"use one of {', '.join(sorted(formats))}")
    check_output(out, "--output", [os.path.join(d, "metrics.jsonl") for d in run_dirs])
    runs = [load_run(d) for d in run_dirs]
    with warnings.catch_warnings():  # e.g. a log axis of one rank's zero bytes: the figure says it
        warnings.simplefilter("ignore")
        return _draw(plt, runs, x, out, fmt)


def _draw(plt, runs, x, out, fmt):
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    xs = [x] if x else ["epoch", "bytes"]
    fig, axes = plt.subplots(len(xs), 2, figsize=(11, 4 * len(xs)), squeeze=False)
    for i, (label, recs) in enumerate(runs):
        ser = series(recs)
        loss = [r["train_loss"] for r in recs]
        acc = [r["test_accuracy"] for r in recs]
        style = ("-", "--", ":", "-.")[i // 10 % 4]  # after the 10 colours of the cycle, a new line style
        for row, key in enumerate(xs):
            axes[row, 0].plot(ser[key], loss, marker="o", linestyle=style, label=label)
            axes[row, 1].plot(ser[key], acc, marker="o", linestyle=style, label=label)
    for row, key in enumerate(xs):
        for col, y in enumerate(("train loss", "test accuracy")):
            ax = axes[row, col]
            ax.set_xlabel(XAXES[key])
            ax.set_ylabel(y)
            ax.grid(True, alpha=0.3)
            if key in ("bytes", "time"):
                ax.set_xscale("log")
                lo, hi = ax.get_xlim()
                # ticks at 1, 2, 5 per decade over a short span, labelled plainly (matplotlib's own
                # labelled minor ticks overlap there)
                subs = (1.0, 2.0, 5.0) if lo > 0 and hi / lo < 100 else (1.0,)
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
        axes[row, 0].set_yscale("log")
    fig.tight_layout()
    # the legend beside the plots, not over them (the saved image grows to hold it)
    axes[0, 1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), f".{os.path.basename(out)}.tmp-{os.getpid()}")
    try:
        with io_errors(out):
            fig.savefig(tmp, dpi=100, format=fmt, bbox_inches="tight")
            os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.lexists(tmp):
            os.remove(tmp)
    return out
