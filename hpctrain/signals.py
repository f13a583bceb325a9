"""Stop signals seen before the training loop can act on them.

Under the ``hpctrain`` command, SIGINT (Ctrl-C; mpiexec forwards it to every rank),
SIGTERM and SIGUSR1 are *recorded* from the package's first import on, instead of
raising KeyboardInterrupt in whatever a rank happens to be importing: every rank then
reaches the loop's first agreed check and stops at the same step. Imported as a library,
nothing is changed.
"""

import os
import signal
import sys

__all__ = ["STOP_SIGNALS", "pending", "record_stop_signals", "under_cli"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
_PENDING = [0]


def pending():
    """The last stop signal recorded (0 if none)."""
    return _PENDING[0]


def _record(signum, frame):
    _PENDING[0] = signum


def under_cli():
    """True when this process is the ``hpctrain`` command (console script or ``-m hpctrain``)."""
    prog = sys.argv[0] if sys.argv else ""
    return os.path.basename(prog) == "hpctrain" or prog.endswith(os.path.join("hpctrain", "__main__.py"))


def record_stop_signals():
    """Record SIGINT/SIGTERM/SIGUSR1 (see the module docstring); the main thread only."""
    for s in STOP_SIGNALS:
        try:
            signal.signal(s, _record)
        except (ValueError, OSError):  # not the main thread
            pass
