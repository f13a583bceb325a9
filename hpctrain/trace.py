"""Per-rank timeline in Chrome trace-event JSON (``--trace FILE``), merged across ranks.

Where a step's time goes: ``compute`` (forward/backward), ``step`` (the algorithm's own
math), ``compress``/``decompress`` (the compression operators), each collective and its
phases (``allreduce <name>``, ``reduce-scatter``, ``allgather``, ``server round``), every
blocking MPI call (``mpi <call>``, category ``wait``), ``evaluate`` and checkpoint I/O.
The file opens in Perfetto (ui.perfetto.dev) and chrome://tracing: one track per rank.

Off (the default) costs one ``with`` on a shared null context per span site: nothing is
wrapped, nothing recorded. On, every rank records ``(name, category, start, duration)``
in memory (clocks aligned by a barrier at start); at the end rank 0 gathers all of them
and writes one file. :func:`summarize` gives the compute/compress/comm/other split per epoch
(exclusive time, so nested spans are not counted twice; the parts mean what they mean in
``metrics.jsonl``, see :class:`hpctrain.metrics.StepClock`); ``hpctrain trace FILE`` prints it.
"""

import bisect
import contextlib
import functools
import json
import math
import time

import numpy as np

__all__ = ["span", "mark", "wrap", "start", "finish", "active", "summarize", "format_summary", "CATEGORIES"]

#: category of each span family, for the summary
CATEGORIES = ("compute", "compress", "comm", "io", "other")
_NULL = contextlib.nullcontext()


class _Tracer:
    def __init__(self):
        self.on = False
        self.events = []  # (name, cat, t0, t1) in perf_counter seconds
        self.origin = 0.0
        self.rank = 0
        self._undo = []
        self._depth = {}

    def record(self, name, cat, t0, t1):
        self.events.append((name, cat, t0, t1))


_T = _Tracer()


def active():
    """True while a trace is being recorded."""
    return _T.on


class _Span:
    __slots__ = ("name", "cat", "t0")

    def __init__(self, name, cat):
        self.name, self.cat = name, cat

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        _T.events.append((self.name, self.cat, self.t0, time.perf_counter()))
        return False


def span(name, cat="other"):
    """A context manager that records ``name`` while tracing (a shared no-op otherwise)."""
    return _Span(name, cat) if _T.on else _NULL


def mark(name):
    """An instant event (e.g. the start of an epoch)."""
    if _T.on:
        t = time.perf_counter()
        _T.events.append((name, "mark", t, t))


def wrap(fn, name, cat="comm"):
    """``fn`` recording each call as a span while tracing; ``fn`` itself when off."""
    if not _T.on:
        return fn

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _T.events.append((name, cat, t0, time.perf_counter()))

    return traced


def _patch(owner, attr, name, cat, outermost=False):
    """Replace ``owner.attr`` (a class's method or an instance's) by a recording wrapper;
    undone by :func:`finish`. With ``outermost``, nested calls (a subclass calling its
    base) record once."""
    is_class = isinstance(owner, type)
    original = owner.__dict__[attr] if is_class else None
    fn = getattr(owner, attr)
    key = (name, cat)

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        depth = _T._depth.get(key, 0)
        if outermost and depth:
            return fn(*args, **kwargs)
        _T._depth[key] = depth + 1
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _T._depth[key] = depth
            _T.events.append((name, cat, t0, time.perf_counter()))

    setattr(owner, attr, traced)
    if is_class:
        _T._undo.append(lambda: setattr(owner, attr, original))
    else:
        _T._undo.append(lambda: owner.__dict__.pop(attr, None))


_MPI_CALLS = ("send", "recv", "sendrecv", "waitall", "wait", "native_allreduce", "native_allgatherv",
              "allgather_array", "gather_array", "scatter_array", "bcast_array", "bcast_bytes", "barrier")


def _compressor_classes():
    from .compress.base import Compressor

    return _subclasses(Compressor)


def _subclasses(root):
    """``root`` and every class derived from it."""
    todo, seen = [root], []
    while todo:
        c = todo.pop()
        if c not in seen:
            seen.append(c)
            todo.extend(c.__subclasses__())
    return seen


def start(comm):
    """Begin recording on every rank of ``comm`` (collective: a barrier aligns the clocks)."""
    _T.events, _T.rank, _T._depth = [], comm.rank, {}
    comm.barrier()
    _T.origin = time.perf_counter()
    _T.on = True
    for call in _MPI_CALLS:
        if hasattr(comm, call):
            _patch(comm, call, f"mpi {call}", "wait")
    for cls in _compressor_classes():
        for meth, name in (("compress", "compress"), ("decompress", "decompress"),
                           ("decompress_add", "decompress")):
            if meth in cls.__dict__:
                _patch(cls, meth, name, "compress", outermost=True)
    from .algorithms.base import Algorithm

    for cls in _subclasses(Algorithm):  # algorithms that encode in their own code
        for meth, name in cls.__dict__.get("compress_methods", {}).items():
            if meth in cls.__dict__:
                _patch(cls, meth, name, "compress", outermost=True)


def _stop():
    _T.on = False
    for undo in reversed(_T._undo):
        undo()
    _T._undo = []


def _events_json(rank, events, origin):
    out = []
    for name, cat, t0, t1 in events:
        ts = round((t0 - origin) * 1e6, 3)
        if cat == "mark":
            out.append({"name": name, "cat": cat, "ph": "i", "s": "p", "ts": ts, "pid": rank, "tid": 0})
        else:
            out.append({"name": name, "cat": cat, "ph": "X", "ts": ts, "dur": round((t1 - t0) * 1e6, 3),
                        "pid": rank, "tid": 0})
    return out


def finish(comm, path):
    """Stop recording, gather every rank's events to rank 0 and write ``path`` there
    (collective). Returns the per-epoch summary rows on rank 0, None elsewhere."""
    events, origin = list(_T.events), _T.origin
    _stop()
    if comm is None:
        return None
    mine = json.dumps(_events_json(comm.rank, events, origin)).encode()
    lengths = comm.allgather_array(np.array([len(mine)], dtype=np.int64))[:, 0]
    buf = np.zeros(int(lengths.max()), dtype=np.uint8)
    buf[: len(mine)] = np.frombuffer(mine, dtype=np.uint8)
    gathered = comm.gather_array(buf)
    if comm.rank != 0:
        return None
    trace = []
    for r in range(comm.size):
        trace.append({"name": "process_name", "ph": "M", "pid": r, "tid": 0, "args": {"name": f"rank {r}"}})
        trace.append({"name": "process_sort_index", "ph": "M", "pid": r, "tid": 0, "args": {"sort_index": r}})
        trace.extend(json.loads(gathered[r, : lengths[r]].tobytes().decode()))
    doc = {"traceEvents": trace, "displayTimeUnit": "ms",
           "otherData": {"tool": "hpctrain", "ranks": comm.size}}
    from .files import write_atomic

    write_atomic(path, json.dumps(doc))
    return summarize(doc)


def _category(name, cat):
    if name == "compute":
        return "compute"
    if cat == "compress":
        return "compress"
    if cat == "wait":  # inside MPI calls; a collective's own span (cat comm) keeps only its local
        return "comm"  # reductions and copies, which count as other (metrics.StepClock: one definition)
    if cat == "io":
        return "io"
    return "other"


def _event_fields(ev):
    """(pid, phase, name, category, ts, dur) of one event; ValueError when malformed."""
    if not isinstance(ev, dict):
        raise ValueError("an event is not an object")
    ph, name, cat, pid = ev.get("ph"), ev.get("name", ""), ev.get("cat", ""), ev.get("pid")
    ts, dur = ev.get("ts"), ev.get("dur", 0)
    for v in (ts, dur):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"event {name!r} has a non-numeric or non-finite time")
    if not isinstance(name, str) or not isinstance(cat, str) or not isinstance(pid, (int, str)):
        raise ValueError("an event has a malformed name, category or pid")
    return pid, ph, name, cat, float(ts), float(dur)


def _epoch_of(name):
    parts = name.split()
    return int(parts[1]) if len(parts) == 2 and parts[0] == "epoch" and parts[1].isdigit() else None


def summarize(doc):
    """Per epoch: mean over ranks of the exclusive seconds in each of :data:`CATEGORIES`.

    O(n log n) in the number of events: spans are sorted once, and each span's epoch is
    found by bisection among the epoch marks.

    Args:
        doc: a trace written by :func:`finish` (a dict with ``traceEvents``).

    Returns:
        A list of ``{"epoch": e, "compute": s, "compress": s, "comm": s, "io": s, "other": s}``.

    Raises:
        ValueError: an event is malformed (not an object, times not finite numbers).
    """
    by_rank = {}
    for ev in doc.get("traceEvents", []):
        if isinstance(ev, dict) and ev.get("ph") in ("X", "i"):
            pid, ph, name, cat, ts, dur = _event_fields(ev)
            by_rank.setdefault(pid, []).append((ph, name, cat, ts, dur))
    totals = {}
    for events in by_rank.values():
        marks = sorted((ts, _epoch_of(name)) for ph, name, _c, ts, _d in events
                       if ph == "i" and _epoch_of(name) is not None)
        mark_ts = [m[0] for m in marks]
        spans = sorted(((ts, -dur, name, cat) for ph, name, cat, ts, dur in events if ph == "X"))
        stack, excl = [], []
        for ts, neg_dur, name, cat in spans:
            dur = -neg_dur
            while stack and stack[-1][0] <= ts:
                stack.pop()
            if stack:
                excl[stack[-1][1]][2] -= dur  # the parent's own time excludes this child
            excl.append([ts, _category(name, cat), dur])
            stack.append((ts + dur, len(excl) - 1))
        for ts, cat, dur in excl:
            k = bisect.bisect_right(mark_ts, ts)  # the last epoch mark at or before ts
            epoch = marks[k - 1][1] if k else 0
            row = totals.setdefault(epoch, {c: 0.0 for c in CATEGORIES})
            row[cat] += max(dur, 0.0) / 1e6
    n = max(len(by_rank), 1)
    return [{"epoch": e, **{c: v / n for c, v in row.items()}} for e, row in sorted(totals.items()) if e > 0]


def format_summary(rows):
    """The summary as a small table: seconds and share of each category per epoch."""
    lines = [f"{'epoch':>5}  " + "  ".join(f"{c:>15}" for c in CATEGORIES)]
    for row in rows:
        total = sum(row[c] for c in CATEGORIES) or 1.0
        lines.append(f"{row['epoch']:>5}  " + "  ".join(f"{row[c]:8.3f}s {100 * row[c] / total:4.0f}%"
                                                         for c in CATEGORIES))
    return "\n".join(lines)
