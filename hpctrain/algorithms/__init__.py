"""Training algorithms of the papers, one module each: per-rank state + one ``step``.

==========  ============================================================================
name        algorithm
==========  ============================================================================
``dmsgd``   distributed momentum SGD: average gradients with the collective, then
            v <- momentum v + g;  w <- w - lr v  (the dense baseline of 001, Table 1)
==========  ============================================================================
"""

from ..errors import ConfigError
from .base import AlgoContext, Algorithm
from .dmsgd import DMSGD

__all__ = ["ALGORITHMS", "get_algorithm", "Algorithm", "AlgoContext"]

ALGORITHMS = {cls.name: cls for cls in (DMSGD,)}


def get_algorithm(name):
    """The algorithm class registered as ``name``."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ConfigError(f"unknown algo {name!r}; choose from {', '.join(ALGORITHMS)}") from None
