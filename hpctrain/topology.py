"""Mixing matrices for decentralized SGD: builders, validation, spectral gap.

A mixing matrix W (n x n) says how rank i averages its neighbours' models in one gossip
step, x_i <- sum_j W_ij x_j. Decentralized SGD (papers 002/003) assumes W is symmetric,
doubly stochastic and non-negative, with a connected graph, so that
rho = max(|lambda_2|, |lambda_n|) < 1 (paper 002, Assumption 2 writes it as
max(|lambda_2|, |lambda_n|) <= sqrt(rho')). One step contracts the distance to the
average by rho: ||X_{t+1} - mean|| <= rho ||X_t - mean||; the spectral gap is 1 - rho.

Builders: ``ring`` (1/3 self and each neighbour, as in survey 003 §5.1), ``torus``
(2-D, 1/5 each), ``exponential`` (neighbours i +/- 2^k, uniform weights), ``complete``
(J/n) and ``star`` (Metropolis-Hastings weights), or a custom matrix from .npy/.csv.
"""

import math
import os
import warnings

import numpy as np

from .errors import ConfigError, TopologyError

__all__ = [
    "Topology", "BUILDERS", "build", "load_matrix", "validate", "spectral_info",
    "ring", "torus", "exponential", "complete", "star", "format_report", "TOL",
]

TOL = 1e-12


class Topology:
    """A validated mixing matrix with its spectral figures.

    Attributes:
        name: builder name or file path.
        matrix: the n x n float64 matrix W.
        n: number of ranks.
        lambda2, lambdan: second largest and smallest eigenvalue.
        rho: max(|lambda2|, |lambdan|), per-step consensus contraction factor.
        spectral_gap: 1 - rho.
        degrees: neighbours per rank (self excluded).
    """

    def __init__(self, name, matrix):
        self.name = name
        self.matrix = validate(matrix)
        self.n = self.matrix.shape[0]
        info = spectral_info(self.matrix)
        self.lambda2, self.lambdan = info["lambda2"], info["lambdan"]
        self.rho, self.spectral_gap = info["rho"], info["spectral_gap"]
        off = self.matrix.copy()
        np.fill_diagonal(off, 0.0)
        self.degrees = (off > 0).sum(axis=1)

    def neighbours(self, rank):
        """Ranks j != rank with W[rank, j] > 0."""
        return [int(j) for j in np.flatnonzero(self.matrix[rank]) if j != rank]

    def steps_to(self, eps=1e-6):
        """Gossip steps that shrink the consensus error by ``eps`` (inf if rho = 1)."""
        if self.rho <= 0:
            return 1
        if self.rho >= 1:
            return math.inf
        return math.ceil(math.log(eps) / math.log(self.rho))


def _circulant(n, offsets):
    """Symmetric circulant W = (I + A) / (d + 1) over the distinct non-zero offsets."""
    offs = sorted({o % n for o in offsets} | {(-o) % n for o in offsets} - {0})
    W = np.zeros((n, n))
    w = 1.0 / (len(offs) + 1)
    for i in range(n):
        W[i, i] = w
        for o in offs:
            W[i, (i + o) % n] = w
    return W


def ring(n):
    """Ring: 1/3 to self and each neighbour (survey 003). n=1: [[1]]; n=2: J/2 (the two
    neighbours coincide, so the ring is the complete graph); n=3: J/3."""
    if n <= 2:
        return np.full((n, n), 1.0 / n)
    return _circulant(n, [1])


def torus(n, rows=None):
    """2-D torus of ``rows`` x n/rows (default: the most square factorisation), 1/5 to self
    and each of the four neighbours; coinciding neighbours (a side of 1 or 2) add up."""
    if rows is None:
        rows = max(d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0)
    if n % rows:
        raise TopologyError(f"torus: {rows} rows do not divide {n} ranks")
    cols = n // rows
    W = np.zeros((n, n))
    for i in range(n):
        r, c = divmod(i, cols)
        W[i, i] += 0.2
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            W[i, (rr % rows) * cols + cc % cols] += 0.2
    return W


def exponential(n):
    """Static exponential graph: neighbours i +/- 2^k (k = 0, 1, ...; 2^k < n), uniform
    weights 1/(degree+1) (symmetric version of the one-peer exponential graph)."""
    if n == 1:
        return np.ones((1, 1))
    return _circulant(n, [1 << k for k in range(max(1, (n - 1).bit_length()))])


def complete(n):
    """Complete graph: J/n (one step reaches the exact average; rho = 0)."""
    return np.full((n, n), 1.0 / n)


def star(n):
    """Star around rank 0 with Metropolis-Hastings weights: W_0j = 1/n, W_jj = 1 - 1/n."""
    W = np.zeros((n, n))
    if n == 1:
        return np.ones((1, 1))
    W[0, 1:] = W[1:, 0] = 1.0 / n
    W[0, 0] = 1.0 / n
    W[np.arange(1, n), np.arange(1, n)] = 1.0 - 1.0 / n
    return W


BUILDERS = {"ring": ring, "torus": torus, "exponential": exponential, "complete": complete, "star": star}


def load_matrix(path):
    """Read a mixing matrix from ``.npy`` or ``.csv`` (comma-separated numbers)."""
    from .files import check_input

    check_input(path, "mixing matrix file", TopologyError)
    if os.path.getsize(path) == 0:
        raise TopologyError(f"mixing matrix file {path} is empty")
    try:
        with warnings.catch_warnings():  # NumPy's warnings would precede the one line
            warnings.simplefilter("error")
            if path.endswith(".npy"):
                W = np.load(path, allow_pickle=False)
            else:
                W = np.loadtxt(path, delimiter=",", ndmin=2)
    except (ValueError, OSError, EOFError, UserWarning) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TopologyError(f"cannot read mixing matrix {path}: {first}") from None
    if W.dtype.kind not in "fiu" or W.dtype.fields is not None:
        raise TopologyError(f"mixing matrix {path} must hold numbers, got {W.dtype}")
    return W


def validate(W, n=None, tol=TOL):
    """Check that ``W`` is a valid mixing matrix; return it as float64.

    Checks, in order, each with its own message: 2-D square, n x n for the world size,
    finite, non-negative, rows sum to 1, columns sum to 1, symmetric, connected.

    Args:
        n: expected number of ranks (None: any).
        tol: tolerance of the sum and symmetry checks.

    Raises:
        TopologyError: the first check that fails.
    """
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise TopologyError(f"mixing matrix must be square, got shape {W.shape}")
    if W.dtype.kind not in "biuf":
        raise TopologyError(f"mixing matrix must be real numbers, got dtype {W.dtype}")
    W = W.astype(np.float64)
    m = W.shape[0]
    if n is not None and m != n:
        raise TopologyError(f"mixing matrix is {m}x{m} but the world has {n} ranks")
    if m == 0:
        raise TopologyError("mixing matrix is empty")
    if not np.all(np.isfinite(W)):
        raise TopologyError("mixing matrix has NaN or infinite entries")
    if (W < 0).any():
        i, j = np.argwhere(W < 0)[0]
        raise TopologyError(f"mixing matrix has a negative entry W[{i},{j}] = {W[i, j]:g}")
    rows = W.sum(axis=1)
    if (np.abs(rows - 1) > tol).any():
        i = int(np.argmax(np.abs(rows - 1)))
        raise TopologyError(f"row {i} of the mixing matrix sums to {rows[i]:.15g}, not 1 (tol {tol:g})")
    cols = W.sum(axis=0)
    if (np.abs(cols - 1) > tol).any():
        j = int(np.argmax(np.abs(cols - 1)))
        raise TopologyError(f"column {j} of the mixing matrix sums to {cols[j]:.15g}, not 1 (tol {tol:g})")
    if (np.abs(W - W.T) > tol).any():
        i, j = np.argwhere(np.abs(W - W.T) > tol)[0]
        raise TopologyError(f"mixing matrix is not symmetric: W[{i},{j}] = {W[i, j]:g} but W[{j},{i}] = {W[j, i]:g}")
    seen, todo = {0}, [0]
    while todo:
        i = todo.pop()
        for j in np.flatnonzero(W[i]):
            if j not in seen:
                seen.add(int(j))
                todo.append(int(j))
    if len(seen) != m:
        raise TopologyError(f"the graph of the mixing matrix is disconnected: rank 0 reaches {len(seen)} of {m} ranks")
    return W


def spectral_info(W):
    """Eigenvalue figures of a symmetric W.

    Returns:
        dict with ``lambda2``, ``lambdan``, ``rho`` = max(|lambda2|, |lambdan|) and
        ``spectral_gap`` = 1 - rho (n = 1: lambda2 = lambdan = 1 is not defined; rho = 0).
    """
    ev = np.sort(np.linalg.eigvalsh(np.asarray(W, dtype=np.float64)))[::-1]
    if ev.size < 2:
        return {"lambda2": 0.0, "lambdan": 0.0, "rho": 0.0, "spectral_gap": 1.0}
    l2, ln = float(ev[1]), float(ev[-1])
    rho = max(abs(l2), abs(ln))
    return {"lambda2": l2, "lambdan": ln, "rho": rho, "spectral_gap": 1.0 - rho}


def build(name=None, n=None, path=None):
    """A validated :class:`Topology` from a builder name or a matrix file.

    Args:
        name: a key of ``BUILDERS`` (with ``n``), or None when ``path`` is given.
        n: number of ranks (required for a builder; checked against a file).
        path: ``.npy`` or ``.csv`` file with a custom W.
    """
    if path is not None:
        W = load_matrix(path)
        validate(W, n)
        return Topology(path, W)
    if name not in BUILDERS:
        raise TopologyError(f"unknown topology {name!r}; choose from {', '.join(BUILDERS)} or give a file")
    if n is None:
        raise TopologyError(f"topology {name} needs the number of ranks: add -n N (e.g. -n 8)")
    if n < 1:
        raise TopologyError(f"topology {name} needs a number of ranks >= 1, got {n}")
    from .memory import check_fits

    try:  # the dense n x n matrix and the copies its spectrum needs
        check_fits({f"mixing matrix ({n}x{n}) and its spectrum": 4 * n * n * 8},
                   hint="a dense mixing matrix of this many ranks does not fit")
    except ConfigError as exc:
        raise TopologyError(str(exc)) from None
    return Topology(name, BUILDERS[name](n))


def format_report(topo, max_dense=16, max_pattern=64):
    """Human-readable report: W (or its sparsity pattern for large n), degree, spectrum."""
    W, n = topo.matrix, topo.n
    lines = [f"topology {topo.name}: n = {n}"]
    if n <= max_dense:
        lines.append("W =")
        lines += ["  " + " ".join(f"{v:6.4f}" for v in row) for row in W]
    elif n <= max_pattern:
        lines.append("sparsity pattern (# = non-zero):")
        lines += ["  " + "".join("#" if v > 0 else "." for v in row) for row in W]
    dmin, dmax = int(topo.degrees.min()), int(topo.degrees.max())
    lines.append(f"degree: {dmin}" if dmin == dmax else f"degree: {dmin}..{dmax}")
    lines.append(f"lambda_2 = {topo.lambda2:.6f}, lambda_n = {topo.lambdan:.6f}")
    lines.append(f"spectral gap 1 - max(|lambda_2|, |lambda_n|) = {topo.spectral_gap:.6f}")
    steps = topo.steps_to(1e-6)
    lines.append(f"consensus contraction per step rho = {topo.rho:.6f} "
                 f"(error x rho^t; {steps} steps to 1e-6)")
    return "\n".join(lines)
