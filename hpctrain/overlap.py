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

Buckets are always reduced in index order (bucket 0 = last layers) on every rank, whatever
order their layers finish in, so the ranks' collectives always match. Each bucket's
reduction is the same call on the same data with or without overlap: results are
bit-identical on and off.
"""

import sys
import threading
import time

__all__ = ["OverlapEngine", "resolve_overlap"]


def resolve_overlap(overlap, comm, buckets, warn=True):
    """Whether to overlap: ``overlap`` True / False / ``"auto"``.

    ``auto`` overlaps where it can help: more than one rank, more than one bucket, and
    ``MPI_THREAD_MULTIPLE``. True without ``MPI_THREAD_MULTIPLE`` falls back to no overlap
    with one line on stderr (rank 0).
    """
    from .comm import thread_multiple

    ok, level = thread_multiple()
    if overlap == "auto":
        return comm.size > 1 and len(buckets) > 1 and ok
    if overlap and not ok:
        if warn and comm.rank == 0:
            print(f"hpctrain: overlap off: MPI granted thread level {level!r}, not 'multiple'; "
                  "buckets are reduced after backward", file=sys.stderr)
        return False
    return bool(overlap) and comm.size > 1


class OverlapEngine:
    """Reduce buckets of a flat buffer as they complete, on a communication thread.

    Args:
        comm: the :class:`~hpctrain.comm.Communicator`; the engine duplicates it.
        buckets: from :func:`hpctrain.buckets.make_buckets`.
        reduce_bucket: ``reduce_bucket(comm, bucket)``: reduces one bucket in place (e.g.
            ``allreduce(comm, bucket.view(grad), "mean")``), with the communicator given.
        overlap: True / False / ``"auto"`` (see :func:`resolve_overlap`).

    Attributes:
        overlap: whether a communication thread is used.
        wait_time: seconds :meth:`finish` waited for communication (last step).
        comm: the engine's own communicator (its byte counters are the buckets' traffic).
    """

    def __init__(self, comm, buckets, reduce_bucket, overlap="auto"):
        self.buckets = list(buckets)
        self.reduce_bucket = reduce_bucket
        self.overlap = resolve_overlap(overlap, comm, self.buckets)
        self.comm = comm.dup()
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
                self._cv.notify_all()

    def finish(self):
        """Wait until every bucket is reduced (buckets still incomplete, e.g. layers that
        got no gradient, are reduced now as they are). Re-raises a communication error."""
        if not self._active:
            raise RuntimeError("OverlapEngine.finish without begin")
        t0 = time.perf_counter()
        with self._cv:
            self._ready = [True] * len(self.buckets)
            self._cv.notify_all()
        if self.overlap:
            with self._cv:
                while self._done < len(self.buckets) and self._error is None:
                    self._cv.wait()
        else:
            for b in self.buckets:
                self.reduce_bucket(self.comm, b)
            self._done = len(self.buckets)
        self._active = False
        self.wait_time = time.perf_counter() - t0
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def close(self):
        """Stop the communication thread (idempotent)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

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
                self.reduce_bucket(self.comm, b)
            except BaseException as exc:  # handed to the main thread by finish()
                with cv:
                    self._error = exc
                    self._done = len(self.buckets)
                    cv.notify_all()
                continue
            with cv:
                self._done += 1
                cv.notify_all()
