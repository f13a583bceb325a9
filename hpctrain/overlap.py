"""Overlap of gradient communication with backward: a communication thread per rank.

Backward announces each finished layer (:meth:`OverlapEngine.layer_ready`); when every
layer of a bucket is in, the bucket is complete, and with overlap on the communication
thread starts reducing it while backward goes on computing the earlier layers.
:meth:`OverlapEngine.finish` waits for the last bucket. The thread owns a duplicate of the
communicator (``MPI_Comm_dup``), so its messages never meet the main thread's; MPI must
run with ``MPI_THREAD_MULTIPLE`` (mpi4py requests it at initialisation). Where the library
grants less, the engine says so in one line and reduces every bucket in :meth:`finish`
instead (no overlap; same results).

Why a thread rather than non-blocking point-to-point progressed between layers: the
hand-made collectives are written as blocking steps (ring: 2(n-1) Sendrecv), and MPICH
progresses a non-blocking request only inside MPI calls, so progress "between layers"
stalls whenever one layer's backward is long; a thread inside a blocking MPI call (which
releases the GIL) progresses continuously. The trade-off is one core's worth of polling
while a collective waits; ``jobs/bench_overlap.py`` measures both modes in one run.

While a bucket is in flight the thread waits politely (``MPI_Testall`` and a short sleep,
:attr:`Communicator.poll_interval <hpctrain.comm.Communicator>`): a blocking MPI wait
busy-polls a core, and on a node whose cores all compute (torch's intra-op threads, several
ranks) that polling thread takes a core from backward, which then runs slower by about
as much as the communication it hides.

The thread needs Python's GIL between MPI calls (each ring step, each poll), and a thread
waiting for the GIL gets it only when the holder drops it, after up to
``sys.getswitchinterval()`` (5 ms by default) while the main thread runs Python (forward's
module calls, backward's hooks): measured with the profile below, buckets sat ready for 1-8
ms before the thread could start them. While an overlapping engine lives, the interval is
lowered to :data:`SWITCH_INTERVAL` (and restored when the last one closes).

Where the time goes: ``OverlapEngine(..., profile=True)`` records, per step and bucket, when
its last layer was announced (ready), when the thread started and ended its reduction, and
how long the main thread waited; :func:`profile_trace` turns the records of every rank into
a Chrome trace (one track for the main thread's waits, one for the thread's buckets).

Buckets are always reduced in index order (bucket 0 = last layers) on every rank, whatever
order their layers finish in, so the ranks' collectives always match. Each bucket's
reduction is the same call on the same data with or without overlap: results are
bit-identical on and off.
"""

import sys
import threading
import time

__all__ = ["OverlapEngine", "BucketedAllreduce", "resolve_overlap", "overlap_auto", "spare_cores", "profile_trace",
           "POLL_INTERVAL"]

#: seconds the communication thread sleeps between polls of a message in flight
POLL_INTERVAL = 50e-6
#: ``sys.setswitchinterval`` while an overlapping engine lives (seconds)
SWITCH_INTERVAL = 1e-4
_SWITCH = {"engines": 0, "saved": None}


def _lower_switch_interval():
    with _SWITCH_LOCK:
        if _SWITCH["engines"] == 0:
            _SWITCH["saved"] = sys.getswitchinterval()
            sys.setswitchinterval(min(_SWITCH["saved"], SWITCH_INTERVAL))
        _SWITCH["engines"] += 1


def _restore_switch_interval():
    with _SWITCH_LOCK:
        _SWITCH["engines"] -= 1
        if _SWITCH["engines"] == 0:
            sys.setswitchinterval(_SWITCH["saved"])


_SWITCH_LOCK = threading.Lock()


def overlap_auto(cores, ranks_on_node, where="this machine", force="--overlap"):
    """The core rule of ``overlap="auto"``: the communication thread needs a free core.

    Each rank's thread polls and reduces while backward computes; where the ranks already
    fill the cores, the thread takes its core from backward. Measured with
    ``jobs/bench_overlap.py`` on four emulated nodes of one 2-core machine (4 ranks on 2
    cores): overlap ran a torch CNN 0.73x and 0.39x as fast as without (100 Mbit/s and
    1 Gbit/s links), the native cnn 1.08x and 0.84x.

    Args:
        cores: cores the ranks may run on (their affinity masks together).
        ranks_on_node: ranks on the machine sharing those cores.
        where: the machine, in the reason (``"this machine"``, ``"the machine of rank 4"``).
        force: how the user forces overlap on anyway, in the reason (None: not said).

    Returns:
        ``(ok, reason)``: ok when ``cores >= 2 * ranks_on_node``; reason ("" when ok) says
        how the ranks share the cores, e.g. ``"4 ranks share 2 cores on this machine
        (overlap needs a free core per rank; --overlap forces it)"``.
    """
    if cores >= 2 * ranks_on_node:
        return True, ""
    who = f"{ranks_on_node} ranks share" if ranks_on_node != 1 else "1 rank has"
    hint = f"; {force} forces it" if force else ""
    return False, (f"{who} {cores} core{'s' if cores != 1 else ''} on {where} "
                   f"(overlap needs a free core per rank{hint})")


def _machine_key(comm):
    """Two int64 naming this rank's machine: the kernel's boot id, shared by every rank
    under one kernel (emulated nodes and containers on one host included, which share its
    cores), else MPI's node (:func:`hpctrain.collectives.hierarchical.layout`; collective)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            value = int(f.read().strip().replace("-", ""), 16)
        return [(value >> 64) - (1 << 63), (value & ((1 << 64) - 1)) - (1 << 63)]
    except (OSError, ValueError):
        from .collectives.hierarchical import layout

        return [-1, layout(comm).node]


def spare_cores(comm, force="--overlap", mask=None):
    """Whether every rank has a free core for the communication thread, agreed by all
    ranks. Collective.

    A rank's sharers are the ranks on its machine whose affinity masks (the cores each may
    run on; Slurm and cgroup cpusets set them) overlap its own; :func:`overlap_auto` asks
    for twice as many cores in their masks together as sharers. Ranks started without
    binding share the machine's cores (the rule is then cores >= 2 x ranks on the node);
    ranks bound to cores of their own (``srun --cpu-bind=cores -c 2``) need two each.

    Args:
        comm: the :class:`~hpctrain.comm.Communicator`.
        force: as in :func:`overlap_auto`.
        mask: this rank's CPU ids (default: ``os.sched_getaffinity(0)``).

    Returns:
        ``(ok, reason)``, the same on every rank: the reason of the lowest rank without a
        free core ("" when every rank has one).
    """
    import os

    import numpy as np

    if mask is None:
        try:
            mask = os.sched_getaffinity(0)
        except (AttributeError, OSError):  # pragma: no cover - non-Linux
            mask = range(os.cpu_count() or 1)
    ids = np.array(sorted(mask), dtype=np.int64)
    if comm.size == 1:
        return overlap_auto(len(ids), 1, force=force)
    head = comm.allgather_array(np.array([ids.max() + 1, *_machine_key(comm)], dtype=np.int64))
    bits = np.zeros(int(head[:, 0].max()), dtype=bool)
    bits[ids] = True
    masks = np.unpackbits(comm.allgather_array(np.packbits(bits)), axis=1, count=bits.size).astype(bool)
    one_machine = np.unique(head[:, 1:], axis=0).shape[0] == 1
    for r in range(comm.size):
        sharers = (head[:, 1:] == head[r, 1:]).all(axis=1) & (masks & masks[r]).any(axis=1)
        cores = int(masks[sharers].any(axis=0).sum())
        where = "this machine" if one_machine else f"the machine of rank {r}"
        ok, why = overlap_auto(cores, int(sharers.sum()), where, force)
        if not ok:
            return False, why
    return True, ""


def resolve_overlap(overlap, comm, buckets, warn=True, spare=None):
    """Whether to overlap: ``overlap`` True / False / ``"auto"``, and why.

    ``auto`` overlaps where it can help: more than one rank, more than one bucket,
    ``MPI_THREAD_MULTIPLE``, and a free core per rank for the thread
    (:func:`spare_cores`; collective). True without ``MPI_THREAD_MULTIPLE`` falls back to
    no overlap with one line on stderr (rank 0); True where the ranks fill the cores
    overlaps, and the note says how the cores are shared.

    ``spare``: a :func:`spare_cores` verdict the caller already holds (``hpctrain train``
    agrees on it before it builds the buckets), so that it is not asked again.

    Returns:
        ``(overlap, note)``: ``note`` is ``"overlap on"``, ``"overlap off"`` or either
        followed by the reason, e.g. ``"overlap off: 4 ranks share 2 cores on this machine
        (...)"``; the same on every rank.
    """
    from .comm import thread_multiple

    if not overlap or (overlap == "auto" and len(buckets) <= 1):
        return False, "overlap off" + (": one bucket" if overlap else "")
    ok, level = thread_multiple()
    why = "one rank" if comm.size == 1 else "" if ok else f"MPI granted thread level {level!r}, not 'multiple'"
    if why:
        if warn and comm.rank == 0 and overlap != "auto" and comm.size > 1:
            print(f"hpctrain: overlap off: {why}; buckets are reduced after backward", file=sys.stderr)
        return False, f"overlap off: {why}"
    ok, crowded = spare if spare is not None else spare_cores(comm, force="overlap=True" if overlap == "auto" else None)
    if overlap == "auto" and not ok:
        return False, f"overlap off: {crowded}"
    return True, "overlap on" + (f", although {crowded}" if crowded else "")


class OverlapEngine:
    """Reduce buckets of a flat buffer as they complete, on a communication thread.

    Args:
        comm: the :class:`~hpctrain.comm.Communicator`; the engine duplicates it.
        buckets: from :func:`hpctrain.buckets.make_buckets`.
        reduce_bucket: ``reduce_bucket(comm, bucket)``: reduces one bucket in place (e.g.
            ``allreduce(comm, bucket.view(grad), "mean")``), with the communicator given.
        overlap: True / False / ``"auto"`` (see :func:`resolve_overlap`).
        poll_interval: seconds between polls while the thread waits for a message (None:
            MPI's own blocking wait, which busy-polls).
        profile: record per-bucket timestamps (:attr:`profile`).
        spare: a :func:`spare_cores` verdict already agreed on (see :func:`resolve_overlap`).

    Attributes:
        overlap: whether a communication thread is used.
        note: what was decided and why (:func:`resolve_overlap`), e.g. ``"overlap off: 4
            ranks share 2 cores on this machine (...)"``.
        wait_time: seconds :meth:`finish` (and :meth:`wait`) waited for communication
            (last step).
        comm: the engine's own communicator (its byte counters are the buckets' traffic).
        profile: None, or a list of ``(step, bucket, ready, start, end)`` (``perf_counter``
            seconds; bucket -1: the main thread waiting, from ``ready`` = ``start`` to ``end``).
    """

    def __init__(self, comm, buckets, reduce_bucket, overlap="auto", poll_interval=POLL_INTERVAL,
                 profile=False, spare=None):
        self.buckets = list(buckets)
        self.reduce_bucket = reduce_bucket
        self.overlap, self.note = resolve_overlap(overlap, comm, self.buckets, spare=spare)
        self.comm = comm.dup()
        if self.overlap:
            self.comm.poll_interval = poll_interval
        self.profile = [] if profile else None
        self._step = -1
        self._ready_at = [0.0] * len(self.buckets)
        self._owner = {}
        for b in self.buckets:
            for layer in b.layers:
                self._owner[layer] = b.index
        self._need = [len(b.layers) for b in self.buckets]
        self._left = list(self._need)
        self._ready = [False] * len(self.buckets)
        self._done = 0
        self._error = None
        self._cv = threading.Condition()
        self._active = False
        self._closed = False
        self.wait_time = 0.0
        self._thread = None
        if self.overlap:
            _lower_switch_interval()
            self._thread = threading.Thread(target=self._run, name="hpctrain-comm", daemon=True)
            self._thread.start()

    # -- main thread -------------------------------------------------------------------
    def begin(self):
        """Start a step: every bucket empty again (call before backward)."""
        with self._cv:
            if self._active and self._done < len(self.buckets):
                raise RuntimeError("OverlapEngine.begin: the previous step's buckets are still in flight; "
                                   "call finish() first")
            self._left = list(self._need)
            self._ready = [False] * len(self.buckets)
            self._done = 0
            self._active = True
            self._step += 1
            self.wait_time = 0.0
            self._cv.notify_all()

    @property
    def active(self):
        """True between :meth:`begin` and :meth:`finish`."""
        return self._active

    def layer_ready(self, layer):
        """Layer ``layer``'s gradient is final; starts its bucket when it completes."""
        with self._cv:
            if not self._active:
                return
            b = self._owner[layer]
            self._left[b] -= 1
            if self._left[b] == 0:
                self._ready[b] = True
                self._ready_at[b] = time.perf_counter()
                self._cv.notify_all()

    def wait(self, index):
        """Wait until buckets ``0..index`` are reduced (reducing them here without overlap);
        the other buckets may still be in flight. Re-raises a communication error."""
        if not self._active:
            raise RuntimeError("OverlapEngine.wait without begin")
        t0 = time.perf_counter()
        if self.overlap:
            with self._cv:
                for b in range(index + 1):  # from here on, whatever is missing counts as complete
                    self._mark_ready(b, t0)
                self._cv.notify_all()
                while self._done <= index and self._error is None:
                    self._cv.wait()
        else:
            while self._done <= index:
                self._mark_ready(self._done, t0)
                self._reduce(self.buckets[self._done])
                self._done += 1
        t1 = time.perf_counter()
        self.wait_time += t1 - t0
        if self.profile is not None:
            self.profile.append((self._step, -1, t0, t0, t1))
        self._raise_error()

    def _mark_ready(self, b, t):
        if not self._ready[b]:
            self._ready[b] = True
            self._ready_at[b] = t

    def _reduce(self, b):
        t0 = time.perf_counter()
        self.reduce_bucket(self.comm, b)
        if self.profile is not None:
            self.profile.append((self._step, b.index, self._ready_at[b.index], t0, time.perf_counter()))

    def _raise_error(self):
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def finish(self):
        """Wait until every bucket is reduced (buckets still incomplete, e.g. layers that
        got no gradient, are reduced now as they are). Re-raises a communication error."""
        if not self._active:
            raise RuntimeError("OverlapEngine.finish without begin")
        try:
            self.wait(len(self.buckets) - 1)
        finally:
            self._active = False

    def close(self):
        """Stop the communication thread (idempotent)."""
        with self._cv:
            self._closed = True
            in_flight = self._active  # an error left a step's buckets in flight: do not wait long
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=0.5 if in_flight else 10)
            self._thread = None
            _restore_switch_interval()

    # -- communication thread --------------------------------------------------------------
    def _run(self):
        cv = self._cv
        while True:
            with cv:
                while not self._closed and not (self._active and self._done < len(self.buckets)
                                                and self._ready[self._done]):
                    cv.wait()
                if self._closed:
                    return
                b = self.buckets[self._done]
            try:
                self._reduce(b)
            except BaseException as exc:  # handed to the main thread by finish()
                with cv:
                    self._error = exc
                    self._done = len(self.buckets)
                    cv.notify_all()
                continue
            with cv:
                self._done += 1
                cv.notify_all()


def profile_trace(comm, engine):
    """The Chrome trace (a dict for ``json.dump``) of every rank's ``engine.profile``
    (collective; every rank gets it): per rank, track 0 holds the main thread's waits for
    buckets, track 1 the communication thread's reductions (``bucket I``, with its ready
    ready time, how long it queued behind earlier buckets, and ``wakeup_us``: how long the
    thread took to start it once it was both ready and free, which should be tens of
    microseconds), times in microseconds from the earliest record of the job.

    Args:
        comm: the communicator over the engine's ranks.
        engine: an :class:`OverlapEngine` made with ``profile=True``.
    """
    import numpy as np

    rows = np.array(engine.profile or [], dtype=np.float64).reshape(-1, 5)
    counts = comm.allgather_array(np.array([rows.shape[0]], dtype=np.int64))[:, 0]
    mine = np.zeros((int(counts.max()) if counts.size else 0, 5))
    mine[: rows.shape[0]] = rows
    everyone = comm.allgather_array(mine.reshape(-1)).reshape(comm.size, -1, 5)
    used = [everyone[r, : counts[r]] for r in range(comm.size)]
    origin = min((float(u[:, 2:].min()) for u in used if u.size), default=0.0)
    sizes = {b.index: b.size for b in engine.buckets}
    events = []
    for r, recs in enumerate(used):
        prev_end = {}  # step -> end of the thread's previous bucket
        events.append({"name": "process_name", "ph": "M", "pid": r, "tid": 0, "args": {"name": f"rank {r}"}})
        events.append({"name": "thread_name", "ph": "M", "pid": r, "tid": 0, "args": {"name": "main: waits"}})
        events.append({"name": "thread_name", "ph": "M", "pid": r, "tid": 1, "args": {"name": "comm thread"}})
        for step, b, ready, start, end in recs:
            b = int(b)
            ev = {"ph": "X", "pid": r, "ts": round((start - origin) * 1e6, 3),
                  "dur": round((end - start) * 1e6, 3)}
            if b < 0:
                ev.update(name="wait for buckets", cat="wait", tid=0, args={"step": int(step)})
            else:  # wakeup: from when the bucket could start (ready, thread free) to its start
                free = max(ready, prev_end.get(step, ready))
                prev_end[step] = end
                ev.update(name=f"bucket {b}", cat="comm", tid=1,
                          args={"step": int(step), "elements": sizes.get(b, 0),
                                "ready_us": round((ready - origin) * 1e6, 3),
                                "queued_us": round((start - ready) * 1e6, 3),
                                "wakeup_us": round((start - free) * 1e6, 3)})
            events.append(ev)
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"tool": "hpctrain overlap profile"}}


class BucketedAllreduce:
    """An algorithm's mean allreduce of the gradient, served by buckets reduced during
    backward (``hpctrain train --overlap``).

    Used as the algorithm's ``allreduce``: a call on the gradient buffer while a step's
    buckets are in flight waits for them (:meth:`OverlapEngine.finish`) instead of reducing
    the whole vector; any other call goes to ``allreduce`` itself. The buckets' bytes are
    added to ``comm``'s counters when they land, so the run's traffic figures include them.

    Args:
        comm: the run's communicator.
        grad: the flat gradient buffer the model's backward writes.
        layers: ``(offset, length)`` of each layer in ``grad``.
        allreduce: the configured collective, ``allreduce(comm, buf, op)``.
        bucket_size: MiB (None: the default of :func:`hpctrain.buckets.make_buckets`).
        overlap: True: a communication thread; False: the buckets one after another when
            the algorithm asks (same bits).
        **engine_options: ``poll_interval``, ``profile`` of :class:`OverlapEngine`.
    """

    def __init__(self, comm, grad, layers, allreduce, bucket_size, overlap, **engine_options):
        from .buckets import make_buckets

        self.comm, self.grad, self._allreduce = comm, grad, allreduce
        self.buckets = make_buckets(layers, grad.dtype.itemsize, bucket_size)
        self.engine = OverlapEngine(comm, self.buckets, lambda c, b: allreduce(c, b.view(grad), "mean"),
                                    overlap=overlap, **engine_options)
        self.layer_ready = self.engine.layer_ready

    def begin(self):
        """A step's backward starts: every bucket empty."""
        self.engine.begin()

    def __call__(self, comm, buf, op="sum"):
        if not self.engine.active:
            return self._allreduce(comm, buf, op)
        if buf is not self.grad or op != "mean":
            raise RuntimeError("the gradient buckets are in flight, but the algorithm reduces another buffer "
                               f"first (op {op!r}); its bucketing must not be 'free'")
        from . import trace

        with trace.span("wait for buckets", "comm"):
            self.engine.finish()
        mine, c = self.engine.comm, self.comm
        c.bytes_sent += mine.bytes_sent
        c.bytes_recv += mine.bytes_recv
        c.messages_sent += mine.messages_sent
        mine.reset_counters()
        return buf

    def close(self):
        """Stop the communication thread."""
        self.engine.close()
