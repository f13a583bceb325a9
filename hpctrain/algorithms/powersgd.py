"""PowerSGD: rank-r gradient compression by one step of power iteration, with error
feedback and warm start (Vogels, Karimireddy, Jaggi, "PowerSGD: Practical Low-Rank
Gradient Compression for Distributed Optimization", NeurIPS 2019, Algorithms 1 and 2).

For every matrix-shaped parameter (a linear layer's n_in x units weight, a convolution's
k*k*c_in x c_out weight, a torch tensor viewed as shape[0] x rest) with error-fed gradient
M = G + E (n x m) and the previous step's Q (m x r)::

    P = M Q;           P <- mean over workers of P       (allreduce 1)
    P^ = orthogonalise(P)                                 (Gram-Schmidt, columns)
    Q = M^T P^;        Q <- mean over workers of Q       (allreduce 2)
    M' = P^ Q^T                                           (the rank-r average)
    E  = M - M'                                           (error memory, per worker)

Vectors (biases, batch-norm scale and shift) and matrices that a rank-r factorisation
would not shrink by at least ``MIN_COMPRESSION`` are averaged uncompressed in one
allreduce. The averaged gradient then drives heavy-ball momentum as in
:class:`~hpctrain.algorithms.dmsgd.DMSGD`: v <- beta v + g', w <- w - lr v. Before
``powersgd_start`` steps the gradient is averaged uncompressed and no error is kept (the
warm-up of PyTorch's ``powerSGD_hook``, its ``start_powerSGD_iter``).

The rank of a matrix is ``min(n, m, --rank)`` (as in PyTorch's hook). Every allreduce is
the ``--collective`` one; a step sends sum_i (n_i + m_i) r_i values for the compressed
matrices plus the dense remainder. Q starts from a seeded standard normal draw, identical
on every rank, and stays identical (it is the output of an allreduce): it is checkpointed
once per rank with policy ``replicated``; the error memory with ``sum``.
"""

import numpy as np

from ..errors import ConfigError
from ..xp import get_array_module
from .base import Algorithm, Exchange

__all__ = ["PowerSGD", "matrix_plan", "orthogonalise"]

#: a matrix is compressed only when (n + m) r * MIN_COMPRESSION < n m (PyTorch's
#: ``min_compression_rate`` default)
MIN_COMPRESSION = 2


def orthogonalise(p, eps=0.0):
    """Gram-Schmidt on the columns of ``p`` (n x r), in place; returns ``p``.

    A zero column stays zero (its norm is floored at the dtype's tiny), as a gradient of
    zeros has no direction.
    """
    xp = get_array_module(p)
    tiny = np.finfo(p.dtype).tiny
    for i in range(p.shape[1]):
        col = p[:, i]
        col /= max(float(xp.linalg.norm(col)), tiny) + eps
        if i + 1 < p.shape[1]:
            rest = p[:, i + 1:]
            rest -= xp.outer(col, col @ rest)
    return p


def matrix_plan(layout, rank):
    """Split a parameter layout into compressed matrices and a dense remainder.

    Args:
        layout: ``[(name, shape, offset), ...]`` of every parameter in the flat buffer
            (:attr:`AlgoContext.layers`).
        rank: the requested rank r (> 0).

    Returns:
        ``(matrices, dense)``: ``matrices`` is a list of ``(name, offset, n, m, r)`` with
        r = min(n, m, rank); ``dense`` a list of ``(offset, size)`` ranges averaged
        uncompressed (vectors, scalars, matrices a factorisation would not shrink).
    """
    if rank <= 0:
        raise ConfigError(f"powersgd rank must be positive, got {rank}")
    matrices, dense = [], []
    for name, shape, off in layout:
        size = int(np.prod(shape)) if len(shape) else 1
        if len(shape) >= 2:
            n, m = int(shape[0]), size // int(shape[0])
            r = min(n, m, rank)
            if (n + m) * r * MIN_COMPRESSION < n * m:
                matrices.append((name, int(off), n, m, r))
                continue
        dense.append((int(off), size))
    return matrices, dense


class PowerSGD(Algorithm):
    """Rank-r PowerSGD with error feedback, warm start and momentum (see the module)."""

    name = "powersgd"
    bucketing = "layerwise"
    state_names = ("velocity", "memory", "qs")
    state_policies = {"velocity": "replicated", "memory": "sum", "qs": "replicated"}
    # the compression between the allreduces (counted as compress_time, traced as compression)
    compress_methods = {"_project_p": "compress", "_project_q": "compress", "_expand": "decompress"}

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        xp, cfg = ctx.xp, ctx.cfg
        layout = ctx.layers
        if not layout:
            raise ConfigError("powersgd needs the model's parameter shapes; this model does not expose them")
        self.momentum = cfg.momentum
        self.start = getattr(cfg, "powersgd_start", 0)
        self.matrices, dense = matrix_plan(layout, getattr(cfg, "rank", 1))
        covered = sum(n * m for _, _, n, m, _ in self.matrices) + sum(s for _, s in dense)
        if covered != params.size:
            raise ConfigError(f"powersgd: the model's parameter shapes cover {covered} values, "
                              f"the parameter vector has {params.size}")
        if not self.matrices:
            raise ConfigError(f"powersgd: no parameter of model {cfg.model!r} is a matrix that rank "
                              f"{getattr(cfg, 'rank', 1)} would shrink (a python: model states its shapes with "
                              "param_shapes); use dmsgd for dense averaging")
        self.dense = dense
        self.velocity = params * 0
        self.memory = params * 0
        # P and Q of every matrix live in two flat buffers: one allreduce each
        self.p_size = sum(n * r for _, _, n, _, r in self.matrices)
        self.q_size = sum(m * r for _, _, _, m, r in self.matrices)
        self.ps = xp.zeros(self.p_size, dtype=params.dtype)
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x9057]))
        self.qs = xp.asarray(rng.standard_normal(self.q_size).astype(params.dtype))
        self.flat_dense = xp.zeros(sum(s for _, s in dense), dtype=params.dtype)
        self.views = []  # (M view of grad, M view of memory, P view, Q view), bound per buffer
        self._bound = None

    def allreduce_sizes(self):
        """P, Q and the dense remainder (bytes), plus the whole gradient while the dense
        warm-up of ``powersgd_start`` steps lasts."""
        item = self.ps.dtype.itemsize
        sizes = [s * item for s in (self.p_size, self.q_size, self.flat_dense.size) if s]
        return tuple(sizes + ([self.ctx.dim * item] if self.start > 0 else []))

    def comm_pattern(self, n=None):
        """Once compressing: the allreduces of P, Q and the dense remainder."""
        item = self.ps.dtype.itemsize
        return [Exchange("allreduce", float(s * item)) for s in (self.p_size, self.q_size, self.flat_dense.size) if s]

    def wire_values(self):
        """Values one worker sends per compressed step: sum (n + m) r + the dense part."""
        return self.p_size + self.q_size + self.flat_dense.size

    def _bind(self, grad):
        """Matrix views of ``grad``, the memory, and the P and Q buffers (once per buffer)."""
        if self._bound is grad:
            return self.views
        views, po, qo = [], 0, 0
        for _, off, n, m, r in self.matrices:
            views.append((grad[off:off + n * m].reshape(n, m), self.memory[off:off + n * m].reshape(n, m),
                          self.ps[po:po + n * r].reshape(n, r), self.qs[qo:qo + m * r].reshape(m, r)))
            po, qo = po + n * r, qo + m * r
        self.views, self._bound = views, grad
        return views

    def _average_dense(self, grad):
        flat, o = self.flat_dense, 0
        for off, s in self.dense:
            flat[o:o + s] = grad[off:off + s]
            o += s
        if flat.size:
            self.allreduce(self.comm, flat, "mean")
        o = 0
        for off, s in self.dense:
            grad[off:off + s] = flat[o:o + s]
            o += s

    def _project_p(self, views):
        for g, e, p, q in views:
            g += e                      # M = G + E
            self.ctx.xp.matmul(g, q, out=p)  # P = M Q

    def _project_q(self, views):
        for g, e, p, q in views:
            orthogonalise(p)
            self.ctx.xp.matmul(g.T, p, out=q)  # Q = M^T P^

    def _expand(self, views):
        for g, e, p, q in views:
            e[...] = g                  # E = M - P^ Q^T
            self.ctx.xp.matmul(p, q.T, out=g)
            e -= g

    def compress_average(self, grad, t):
        """Replace ``grad`` by the workers' PowerSGD average (in place)."""
        if t < self.start or not self.matrices:
            self.allreduce(self.comm, grad, "mean")
            self.count_traffic(grad.size, grad.size)
            return grad
        views = self._bind(grad)
        self._project_p(views)
        self.allreduce(self.comm, self.ps, "mean")
        self._project_q(views)
        self.allreduce(self.comm, self.qs, "mean")
        self._expand(views)
        self._average_dense(grad)
        self.count_traffic(self.wire_values(), self.wire_values())
        return grad

    def step(self, params, grad, lr, t):
        self.compress_average(grad, t)
        v = self.velocity
        v *= self.momentum
        v += grad
        self.ctx.xp.multiply(v, lr, out=grad)
        params -= grad
