"""The Algorithm protocol: per-rank state, one step, and state for checkpoints.

An algorithm declares its state arrays in ``state_names``; ``state_dict`` and
``load_state_dict`` are derived from that list, so a new algorithm cannot keep state a
checkpoint forgets: anything it needs across steps must be a named state array.
"""

__all__ = ["Algorithm"]


class Algorithm:
    """Base class of every training algorithm.

    Args:
        cfg: the :class:`~hpctrain.config.TrainConfig`.
        comm: the :class:`~hpctrain.comm.Communicator`.
        allreduce: the collective, ``allreduce(comm, buf, op) -> buf``.
        params: the flat parameter vector (updated in place by :meth:`step`).
    """

    name = "base"
    state_names = ()

    def __init__(self, cfg, comm, allreduce, params):
        self.cfg = cfg
        self.comm = comm
        self.allreduce = allreduce

    def step(self, params, grad, lr, t):
        """One iteration: ``grad`` is this rank's stochastic gradient at ``params``;
        update ``params`` in place. ``t`` is the global step (0-based)."""
        raise NotImplementedError

    def state_dict(self):
        """Name -> array of every state this rank carries across steps."""
        return {k: getattr(self, k) for k in self.state_names}

    def load_state_dict(self, state):
        """Restore state arrays written by :meth:`state_dict` (copied in place)."""
        for k in self.state_names:
            getattr(self, k)[...] = state[k]
