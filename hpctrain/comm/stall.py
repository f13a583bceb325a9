"""Stall inspector: name the ranks that keep the others waiting in a collective.

After Horovod's stall inspector. Every rank keeps a tiny record of where it is: inside
which blocking MPI call (``mpi native_allreduce``, ``mpi sendrecv``, ...) or outside MPI
(``compute``: the model's forward/backward; ``other``), at which step, since when. A
helper thread sends it to rank 0 every ``period`` seconds on a private duplicate of the
communicator (so it never matches the training's own messages). Rank 0's helper thread
watches the records: when a rank has waited inside one MPI call longer than
``warning`` seconds, it prints one line naming the ranks that have not arrived and where
they are; when the wait exceeds ``timeout`` seconds (0 = never) it prints the same as an
error and aborts the job with :data:`~hpctrain.errors.EXIT_STALLED`.

The main thread's cost is two assignments per MPI call (the wrapped communicator
methods); no message is sent from the training thread. Needs MPI_THREAD_MULTIPLE
(mpi4py's default); otherwise the inspector stays off.
"""

import functools
import os
import sys
import threading
import time

import numpy as np
from mpi4py import MPI

from .communicator import abort_now

__all__ = ["StallInspector", "start", "WAIT_CALLS"]

#: the communicator's blocking calls: a rank inside one of them is waiting for others
WAIT_CALLS = ("send", "recv", "sendrecv", "waitall", "wait", "native_allreduce", "native_allgatherv",
              "allgather_array", "gather_array", "scatter_array", "bcast_array", "bcast_bytes", "barrier",
              "any_true")
_PLACES = ("other", "compute") + tuple(f"mpi {c}" for c in WAIT_CALLS)
_TAG = 0x57A1


class StallInspector:
    """Per-rank state plus a reporting thread (see the module docstring).

    Args:
        comm: the :class:`~hpctrain.comm.Communicator` whose blocking calls are watched.
        warning: seconds of waiting before rank 0 names the ranks that have not arrived.
        timeout: seconds of waiting before the job is aborted (0: never).
        stream: where rank 0 prints (default stderr).
        period: seconds between reports (default min(1, warning / 4)).
    """

    def __init__(self, comm, warning=60.0, timeout=0.0, stream=None, period=None):
        self.comm, self.warning, self.timeout = comm, float(warning), float(timeout)
        self.stream = stream or sys.stderr
        self.period = period or max(0.05, min(1.0, self.warning / 4))
        self.place, self.step, self.since = 0, 0, time.monotonic()  # written by the main thread
        self._stop = threading.Event()
        self._undo = []
        self._thread = None
        self._ctl = None
        if comm.size < 2 or MPI.Query_thread() < MPI.THREAD_MULTIPLE:
            return
        self._ctl = comm.mpi_comm.Dup()  # collective: every rank starts the inspector together
        self._patch()
        self._thread = threading.Thread(target=self._run, name="hpctrain-stall", daemon=True)
        self._thread.start()

    # -- the main thread's side: where this rank is ------------------------------------
    def _enter(self, place):
        prev = self.place, self.since
        self.place, self.since = place, time.monotonic()
        return prev

    def _patch(self):
        for call in WAIT_CALLS:
            fn = getattr(self.comm, call, None)
            if fn is None:
                continue
            place = _PLACES.index(f"mpi {call}")

            @functools.wraps(fn)
            def watched(*args, __fn=fn, __place=place, **kwargs):
                if self.place >= 2:  # nested (a collective built on send/recv): keep the outer
                    return __fn(*args, **kwargs)
                prev = self._enter(__place)
                try:
                    return __fn(*args, **kwargs)
                finally:
                    self.place, self.since = prev[0], time.monotonic()

            self._undo.append((call, self.comm.__dict__.get(call)))  # an instance patch (trace) to restore
            setattr(self.comm, call, watched)

    def watch_compute(self, fn):
        """``fn`` (the model's loss and gradient) marked as ``compute`` and counted as a step."""

        @functools.wraps(fn)
        def compute(*args, **kwargs):
            self.step += 1
            self._enter(1)
            try:
                return fn(*args, **kwargs)
            finally:
                self._enter(0)

        return compute

    # -- the helper thread -------------------------------------------------------------
    def _record(self):
        return np.array([self.place, self.step, int((time.monotonic() - self.since) * 1000)], dtype=np.int64)

    def _run(self):
        size, rank = self.comm.size, self.comm.rank
        latest = {r: (None, time.monotonic()) for r in range(size)}
        warned = False
        buf = np.empty(3, dtype=np.int64)
        status = MPI.Status()
        while not self._stop.wait(self.period):
            if rank != 0:
                try:
                    self._ctl.Send(self._record(), dest=0, tag=_TAG)
                except MPI.Exception:  # pragma: no cover - the job is ending
                    return
                continue
            while self._ctl.Iprobe(source=MPI.ANY_SOURCE, tag=_TAG, status=status):
                self._ctl.Recv(buf, source=status.Get_source(), tag=_TAG)
                latest[status.Get_source()] = (buf.copy(), time.monotonic())
            latest[0] = (self._record(), time.monotonic())
            line, waited = self._verdict(latest)
            if line is None:
                warned = False
                continue
            if self.timeout and waited >= self.timeout:
                self._abort(line)
                return
            if not warned:
                self._say(f"hpctrain: warning: {line}")
                warned = True

    def _verdict(self, latest):
        """(a line naming the stuck ranks, the longest wait) or (None, 0) when no rank has
        waited longer than ``warning``."""
        now = time.monotonic()
        worst = None
        for r, (rec, t) in latest.items():
            if rec is None or rec[0] < 2:
                continue
            waited = rec[2] / 1000 + (now - t)
            if waited >= self.warning and (worst is None or waited > worst[1]):
                worst = (r, waited, rec)
        if worst is None:
            return None, 0.0
        r, waited, rec = worst
        late = []
        for q, (qrec, t) in sorted(latest.items()):
            if qrec is None:
                late.append(f"rank {q} (no report yet)")
            elif now - t > max(4 * self.period, 2.0):
                late.append(f"rank {q} (no report for {now - t:.0f} s: busy outside Python or gone; last "
                            f"{_PLACES[qrec[0]]} at step {qrec[1]})")
            elif qrec[0] < 2 or qrec[1] < rec[1]:
                late.append(f"rank {q} (in {_PLACES[qrec[0]]} at step {qrec[1]} for "
                            f"{qrec[2] / 1000 + (now - t):.0f} s)")
        if not late:
            return None, 0.0
        names = ", ".join(late)
        return (f"stall: rank {r} has waited {waited:.0f} s in {_PLACES[rec[0]]} at step {rec[1]}; "
                f"not arrived: {names}"), waited

    def _say(self, line):
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # pragma: no cover
            pass

    def _abort(self, line):
        from ..errors import EXIT_STALLED

        self._say(f"hpctrain: error: {line}; aborting after --stall-timeout {self.timeout:g} s "
                  f"(exit {EXIT_STALLED})")
        sys.stdout.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the MPI library's abort banner: the line says it
        abort_now(EXIT_STALLED)  # after the grace in which the launcher forwards the line

    def stop(self):
        """Stop the thread and restore the communicator's methods (no communication)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.period + 1)
        for call, prev in reversed(self._undo):
            if prev is None:
                self.comm.__dict__.pop(call, None)
            else:
                self.comm.__dict__[call] = prev
        self._undo = []


def start(comm, warning=60.0, timeout=0.0, stream=None):
    """A running :class:`StallInspector` over ``comm`` (collective); ``warning`` <= 0: off."""
    if warning <= 0 and timeout <= 0:
        return None
    return StallInspector(comm, warning if warning > 0 else timeout, timeout, stream)
