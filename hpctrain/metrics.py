"""What a run tells the user: per-epoch JSONL, summary JSON, config TOML, progress on rank 0.

Only rank 0 writes; the library prints for the user nowhere else.
"""

import contextlib
import json
import os
import sys
import time

from .files import io_errors, write_atomic

__all__ = ["RunWriter", "StepClock", "Progress", "progress_mode", "format_rate", "traffic_ratios", "read_records"]


class StepClock:
    """Where the training steps' time goes; the one definition behind the epoch line,
    ``metrics.jsonl``, ``summary.json`` and the trace summary:

    * ``compute``: the model's forward and backward pass (with the batch's row gather);
    * ``compress``: the compression operators' ``compress``/``decompress`` calls
      (outermost call only: a decompress inside a compress is not counted twice);
    * ``comm``: inside communication calls (MPI messages, waits, MPI's own collectives):
      the communicator's ``comm_time`` counter, plus the loop's agreement checks
      (:meth:`time_comm`), where a rank waits for the slower ones;
    * ``other``: the rest of the algorithm's step (its update arithmetic, the local
      reductions and copies between a collective's messages).

    The four add up to the time of the steps (``steps``: the training loop's time less
    what :meth:`aside` sets apart, such as checkpoint writes); the epoch's wall time adds
    evaluation set-up and those writes.

    Args:
        comm: the run's communicator (for its ``comm_time`` counter).
        sync: called at each timed boundary (on the GPU: wait for queued kernels, so that
            their time lands in the part that queued them); None on the CPU.
    """

    PARTS = ("compute", "compress", "comm", "other")
    _METHODS = ("compress", "decompress", "decompress_add")

    def __init__(self, comm, sync=None):
        self.comm = comm
        self._sync = sync or (lambda: None)
        self._depth = 0
        self.reset()

    def reset(self):
        """Start a new epoch's account."""
        self.compute = self.compress = self.other = self.steps = self.control = 0.0
        self._comm0 = self.comm.comm_time

    def split(self):
        """Seconds per part since :meth:`reset` (dict over :data:`PARTS`, and ``steps``)."""
        return {"compute": self.compute, "compress": self.compress,
                "comm": self.comm.comm_time - self._comm0 + self.control, "other": self.other, "steps": self.steps}

    @contextlib.contextmanager
    def loop(self):
        """Time the training loop (``steps``)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.steps += time.perf_counter() - t0

    @contextlib.contextmanager
    def aside(self):
        """Set a stretch inside the loop apart from the steps (a checkpoint write), with
        the communication inside it."""
        t0, c0 = time.perf_counter(), self.comm.comm_time
        try:
            yield
        finally:
            self.steps -= time.perf_counter() - t0
            self._comm0 += self.comm.comm_time - c0

    def _timer(self, fn, part, sync=True, outermost=False):
        """``fn`` with its seconds added to the attribute ``part``; with ``outermost``, a
        call inside another timed call of the same kind is not counted again."""
        def timed(*args, **kwargs):
            if outermost and self._depth:
                return fn(*args, **kwargs)
            self._depth += outermost
            if sync:
                self._sync()
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if sync:
                    self._sync()
                self._depth -= outermost
                setattr(self, part, getattr(self, part) + time.perf_counter() - t0)
        return timed

    def time_compute(self, fn):
        """``fn`` (the model's loss and gradient) timed as ``compute``."""
        return self._timer(fn, "compute")

    def time_comm(self, fn):
        """``fn`` (a control message the communicator does not count, such as the loop's
        agreement check) timed as ``comm``."""
        return self._timer(fn, "control", sync=False)

    def time_step(self, fn):
        """``fn`` (the algorithm's step) timed: what is not compression or communication
        inside it is ``other``."""
        def timed(*args, **kwargs):
            t0, c0, k0 = time.perf_counter(), self.comm.comm_time, self.compress
            try:
                return fn(*args, **kwargs)
            finally:
                self._sync()
                self.other += (time.perf_counter() - t0) - (self.comm.comm_time - c0) - (self.compress - k0)
        return timed

    def time_compressors(self, owner):
        """Time the compressors held by ``owner`` (an algorithm: its attributes, and the
        lists, tuples and dicts among them), those their ``independent`` returns, and the
        owner's own ``compress_methods``."""
        for name in getattr(owner, "compress_methods", {}):
            setattr(owner, name, self._timer(getattr(owner, name), "compress", outermost=True))
        for value in list(vars(owner).values()):
            if isinstance(value, dict):
                value = list(value.values())
            for obj in value if isinstance(value, (list, tuple)) else [value]:
                if all(callable(getattr(obj, m, None)) for m in ("compress", "decompress")):
                    self._instrument(obj)

    def _instrument(self, comp):
        if getattr(comp, "_step_clock", None) is self:
            return
        for name in self._METHODS:
            if callable(getattr(comp, name, None)):
                setattr(comp, name, self._timer(getattr(comp, name), "compress", outermost=True))
        independent = getattr(comp, "independent", None)
        if callable(independent):
            def timed_independent(*args, **kwargs):
                other = independent(*args, **kwargs)
                self._instrument(other)
                return other
            comp.independent = timed_independent
        comp._step_clock = self


def traffic_ratios(floats, bytes_sent, ranks, dim, itemsize, steps):
    """The two compression figures of an epoch, computed here and nowhere else.

    ``compression_ratio`` is paper 001's CR,
    (1/T) sum_t (sum_k ||m_t,k||_0 + p ||w_t+1 - w_t||_0) / (p d): the float values every
    worker sends up plus what every worker receives of the model update (an (index,
    value) pair counts 2), over the 2 p d T floats of dense gradient averaging through a
    server, so DMSGD's CR is 1 (Table 1). ``wire_ratio`` is the exact traffic: the bytes
    all ranks really sent (headers, lengths and indices included) over p d T dense
    vectors of ``itemsize`` bytes (a ring allreduce gives 2 (p-1)/p).

    Args:
        floats: sum over ranks and steps of the algorithms' ``floats_up + floats_down``.
        bytes_sent: sum over ranks of the bytes sent in those steps.
        ranks, dim, itemsize, steps: p, d, bytes per parameter, T.

    Returns:
        dict with ``compression_ratio`` and ``wire_ratio`` (empty when T = 0).
    """
    if steps <= 0 or dim <= 0:
        return {}
    dense = float(ranks) * dim * steps
    return {"compression_ratio": float(floats) / (2.0 * dense), "wire_ratio": float(bytes_sent) / (dense * itemsize)}


def format_rate(x):
    """``123456`` -> ``'123.5k'``."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.1f}{suffix}"
    return f"{x:.1f}"


def _launcher_terminal(max_depth=8):
    """The terminal an MPI launcher was started from, or None.

    Under ``mpiexec`` rank 0's stderr is a pipe to the launcher (MPICH's proxies even start
    their own sessions), so ``isatty`` is False even when the user sits at a terminal. The
    first ancestor whose stderr is not a pipe or socket tells: a terminal (interactive) or
    a file (a batch log). Linux /proc only; elsewhere None.
    """
    pid = os.getpid()
    for _ in range(max_depth):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
            if pid <= 1:
                return None
            target = os.readlink(f"/proc/{pid}/fd/2")
        except (OSError, ValueError, IndexError):
            return None
        if target.startswith(("pipe:", "socket:", "anon_inode:")):
            continue
        return target if target.startswith(("/dev/pts/", "/dev/tty")) else None
    return None


def progress_mode(stream=None):
    """``bar`` (a terminal: ours, or the launcher's), ``lines`` (a batch log) or the value
    of ``$HPCTRAIN_PROGRESS`` (bar, lines, off)."""
    forced = os.environ.get("HPCTRAIN_PROGRESS", "").strip().lower()
    if forced in ("bar", "lines", "off"):
        return forced
    stream = stream or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return "bar"
    return "bar" if _launcher_terminal() else "lines"


def _terminal_columns():
    term = _launcher_terminal()
    if term:
        try:
            fd = os.open(term, os.O_RDONLY | os.O_NOCTTY)
            try:
                return os.get_terminal_size(fd).columns
            finally:
                os.close(fd)
        except OSError:
            pass
    return None


def _hms(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress of one epoch on rank 0: a live tqdm bar on a terminal (also the launcher's
    terminal under ``mpiexec``), or, in batch logs, a plain line every
    ``$HPCTRAIN_PROGRESS_EVERY`` seconds (default 30) with rate and ETA.

    Args:
        total: steps in the epoch.
        label: e.g. ``epoch 2/5``.
        enabled: False for other ranks and --quiet.
        samples_per_step: samples per step over all ranks (for the rate).
        first: the step the epoch starts at (a resumed epoch).
    """

    def __init__(self, total, label, enabled=True, stream=None, samples_per_step=0, first=0):
        self.stream = stream or sys.stderr
        self.total, self.label, self.samples_per_step = total, label, samples_per_step
        self.mode = progress_mode(self.stream) if enabled else "off"
        self.enabled = self.mode != "off"
        self._bar = None
        self._t0 = self._t_bar = time.monotonic()
        self._first = first
        try:
            self.every = float(os.environ.get("HPCTRAIN_PROGRESS_EVERY", "30"))
        except ValueError:
            self.every = 30.0
        self._next = self._t0 + self.every
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=first, desc=label, file=self.stream, leave=False,
                             ncols=_terminal_columns(), mininterval=0.1, unit="step", dynamic_ncols=False)

    def update(self, done, extra=""):
        """``done`` of ``total`` steps finished; ``extra`` (e.g. the loss) is shown beside."""
        if self._bar is not None:
            now = time.monotonic()
            if now - self._t_bar < 0.1 and done < self.total:
                return  # cheaper than asking tqdm each step
            self._t_bar = now
            self._bar.n = done
            if extra:
                self._bar.set_postfix_str(extra, refresh=False)
            self._bar.refresh()
        elif self.mode == "lines":
            now = time.monotonic()
            if now < self._next:
                return
            self._next = now + self.every
            steps = done - self._first
            rate = steps / max(now - self._t0, 1e-9)
            eta = (self.total - done) / rate if rate > 0 else 0.0
            samples = f", {format_rate(rate * self.samples_per_step)} samples/s" if self.samples_per_step else ""
            tail = f", {extra}" if extra else ""
            self.stream.write(f"{self.label}: step {done}/{self.total} ({100 * done / max(self.total, 1):.0f}%)"
                              f"{samples}{tail}, ETA {_hms(eta)}\n")
            self.stream.flush()

    def close(self):
        """Erase the bar (the epoch's summary line follows on stdout)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class RunWriter:
    """Writes ``config.toml``, ``metrics.jsonl`` and ``summary.json`` into the run directory.

    Args:
        run_dir: the run directory (created by the caller).
        active: True on rank 0 only; other ranks get a writer that does nothing.
        quiet: no per-epoch lines on stdout.
        keep_epochs_before: when resuming, keep the existing records of earlier epochs.
    """

    def __init__(self, run_dir, active, quiet=False, keep_epochs_before=None):
        self.run_dir, self.active, self.quiet = run_dir, active, quiet
        self._metrics = None
        if active:
            path = os.path.join(run_dir, "metrics.jsonl")
            kept = []
            if keep_epochs_before is not None and os.path.exists(path):
                # resuming: keep the epochs finished before the checkpoint, drop later ones
                # (and a half-written last line, what a full disk or a kill leaves)
                kept = [json.dumps(r) + "\n" for r in read_records(path) if r.get("epoch", 0) < keep_epochs_before]
            with _io(path):
                self._metrics = open(path, "w", encoding="utf-8")
                self._metrics.writelines(kept)
                self._metrics.flush()

    def config(self, toml_text):
        """Record the resolved configuration next to the outputs."""
        if self.active:
            _write_atomic(os.path.join(self.run_dir, "config.toml"), toml_text)

    def say(self, line):
        """A line for the user on stdout (rank 0, unless quiet)."""
        if self.active and not self.quiet:
            print(line, flush=True)

    def result(self, line):
        """The run's result line on stdout (rank 0; shown under --quiet too)."""
        if self.active:
            print(line, flush=True)

    def epoch(self, record):
        """Append one epoch's record to ``metrics.jsonl`` and print its summary line."""
        if not self.active:
            return
        with _io(os.path.join(self.run_dir, "metrics.jsonl")):
            self._metrics.write(json.dumps(record) + "\n")
            self._metrics.flush()
        self.say(
            f"epoch {record['epoch']:>3}  train_loss {record['train_loss']:.4f}  "
            f"test_loss {record['test_loss']:.4f}  test_acc {record['test_accuracy']:.4f}  "
            f"{format_rate(record['samples_per_s'])} samples/s  compute {record['compute_time']:.2f}s  "
            f"compress {record['compress_time']:.2f}s  comm {record['comm_time']:.2f}s  "
            f"other {record['other_time']:.2f}s"
        )

    def summary(self, summary):
        """Write ``summary.json`` (final figures and the resolved config)."""
        if self.active:
            _write_atomic(os.path.join(self.run_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")

    def close(self):
        """Close the metrics file."""
        if self._metrics is not None:
            try:
                self._metrics.close()
            except OSError:
                pass  # already reported by the write that failed
            self._metrics = None


def read_records(path):
    """The epoch records of a ``metrics.jsonl``; lines that are not a JSON object (a
    half-written last line) are skipped."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return records


#: one-line errors for output files, and atomic writes (never into a device or FIFO)
_io = io_errors
_write_atomic = write_atomic
