"""hpctrain: communication-efficient distributed training over hand-made MPI collectives.

Importing the package sizes each rank's BLAS/OpenMP thread pool *before* NumPy loads
(see :mod:`hpctrain.threads`), because oversubscribed BLAS threads spinning against the
other MPI ranks on the same node cost a 30x slowdown.
"""

__version__ = "0.1.0"

from . import signals as _signals
from . import threads as _threads

if _signals.under_cli():
    _signals.record_stop_signals()  # Ctrl-C during start-up: every rank stops at the same step
_threads.default_thread_env()
