"""hpctrain: communication-efficient distributed training over hand-made MPI collectives.

Importing the package sizes each rank's BLAS/OpenMP thread pool *before* NumPy loads
(see :mod:`hpctrain.threads`), because oversubscribed BLAS threads spinning against the
other MPI ranks on the same node cost a 30x slowdown.
"""

__version__ = "0.1.0"

from . import threads as _threads

_threads.default_thread_env()
