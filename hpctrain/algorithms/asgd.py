"""Asynchronous SGD through a parameter server with bounded staleness tau (survey 003, Section 4).

The survey's model: the server applies x_{t+1} = x_t - lr g(x_{D(t)}) with gradients
computed on stale copies, t - D(t) <= tau (``--staleness``). hpctrain's loop calls
``step`` on every rank once per iteration, so asynchrony is reproduced *deterministically*
with a fixed arrival schedule instead of racing messages:

* rank 0 is the server (and a worker); the server model is kept on rank 0;
* every step each worker pushes its gradient and the version (server step) of the model
  copy it was computed on; the server checks t - version <= tau, *rejects* older
  gradients (counted in ``rejected``), and applies the mean of the accepted ones;
* workers pull the model on a round-robin schedule without any barrier between pulls:
  worker k refreshes its copy after step t when (t + 1 + k) mod (tau + 1) = 0, so
  copies are staggered and every gradient is at most tau steps old (tau = 0: everyone
  pulls every step, which is synchronous SGD).

Why not real races: the trainer's step guard synchronizes all ranks every few steps and
a checkpoint must capture one consistent state; a fixed schedule keeps runs bit-for-bit
reproducible and resumable while exercising exactly the staleness the analysis bounds.
The evaluated model is the server's.
"""

import numpy as np

from ..collectives.ps_round import SERVER, give_turn, wait_turn
from ..collectives.tags import TAGS
from .base import Algorithm, Exchange

__all__ = ["ASGD"]


class ASGD(Algorithm):
    """Bounded-staleness asynchronous SGD with a deterministic round-robin pull schedule."""

    name = "asgd"
    replicated = False
    state_names = ("server_model", "version")
    state_policies = {"server_model": "refuse", "version": "refuse"}

    def allreduce_sizes(self):
        return ()  # a parameter server, no allreduce

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.staleness = ctx.cfg.staleness
        self.pull_period = self.staleness + 1  # tests may stretch it to provoke rejections
        self.server_model = params.copy()
        self.version = np.zeros(1, dtype=np.int64)  # server step of this rank's model copy
        self.total = params * 0
        self.tmp = params * 0
        self.ver = np.zeros(1, dtype=np.int64)
        self.max_applied_staleness = 0
        self.rejected = 0

    def comm_pattern(self, n=None):
        """Each worker's gradient and its 8-byte version up; the model down to the 1/(tau+1)
        of the workers that pull this step (on average)."""
        d = float(self.server_model.nbytes)
        return [Exchange("ps", d + 8, down=d / self.pull_period, decodes=True, messages=2, down_messages=1)]

    def step(self, params, grad, lr, t):
        comm, n, r = self.comm, self.comm.size, self.comm.rank
        if r == SERVER:
            total, accepted = self.total, 0
            total[...] = 0
            for src in range(n):
                if src == SERVER:
                    g, v = grad, int(self.version[0])
                else:  # each worker on its turn, as in every parameter-server round
                    give_turn(comm, src)
                    comm.recv(self.tmp, src, tag=TAGS["async-grad"])
                    comm.recv(self.ver, src, tag=TAGS["async-version"])
                    g, v = self.tmp, int(self.ver[0])
                age = t - v
                if age > self.staleness:
                    self.rejected += 1
                    self.count("rejected", 1)
                    continue
                total += g
                accepted += 1
                self.max_applied_staleness = max(self.max_applied_staleness, age)
            if accepted:
                self.server_model -= (lr / accepted) * total
        else:
            wait_turn(comm, SERVER)
            comm.send(grad, SERVER, tag=TAGS["async-grad"])
            comm.send(self.version, SERVER, tag=TAGS["async-version"])
        self.count_traffic(grad.size, 0)
        pullers = [k for k in range(n) if (t + 1 + k) % self.pull_period == 0]
        if r == SERVER:
            comm.waitall([comm.isend(self.server_model, k, tag=TAGS["async-pull"]) for k in pullers if k != SERVER])
            if SERVER in pullers:
                params[...] = self.server_model
        elif r in pullers:
            comm.recv(params, SERVER, tag=TAGS["async-pull"])
        if r in pullers:
            self.version[0] = t + 1
            self.count_traffic(0, params.size)

    def eval_params(self, params):
        """The server's model (broadcast from rank 0; ``params`` is untouched)."""
        out = self.server_model.copy()
        if self.comm.size > 1:
            self.comm.bcast_array(out, root=SERVER)
        return out
