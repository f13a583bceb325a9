"""Payload (the arrays a compressor puts on the wire + their exact size) and the Compressor base.

A compressor is pure array math: ``compress(x, step=, rank=, memory=) -> Payload`` and
``decompress(payload, out)``, testable in one process. Communication code sends
``payload.to_bytes()`` (one contiguous uint8 buffer of exactly ``payload.nbytes`` bytes)
or the payload's arrays one by one; :meth:`Payload.from_bytes` rebuilds a payload from the
buffer without knowing the compressor (the 32-byte header describes the layout).

Wire format (little-endian), see docs/compress.md::

    header  32 bytes  struct '<BBBBIQQQ': opcode, dtype code, index itemsize, bits,
                      count, size (dense length d), step, aux (bucket size)
    arrays  in the operator's fixed order, each C-contiguous, no padding
"""

import math
import struct

import numpy as np

from ..errors import ConfigError
from ..xp import get_array_module
from . import gpu

__all__ = [
    "HEADER_BYTES",
    "OPCODES",
    "register",
    "Payload",
    "Compressor",
    "SparseCompressor",
    "DensityOperator",
    "CAPABILITIES",
    "scatter_pairs",
    "index_dtype",
    "check_input",
    "check_density",
    "check_coded",
]

HEADER_BYTES = 32
_HEADER = struct.Struct("<BBBBIQQQ")
assert _HEADER.size == HEADER_BYTES

#: operator name on the wire -> opcode; filled by :func:`register` from each class's ``wire``
OPCODES = {}
_OPNAMES = {}
_OPCLASS = {}  # opcode -> the compressor class that knows its array layout
_DTYPES = {0: np.dtype(np.float32), 1: np.dtype(np.float64), 2: np.dtype(np.float16)}
_DTYPE_CODES = {v: k for k, v in _DTYPES.items()}


def index_dtype(size):
    """int32 indices when every index of a length-``size`` vector fits, else int64."""
    return np.dtype(np.int32) if size <= np.iinfo(np.int32).max else np.dtype(np.int64)


def check_input(x):
    """Raise TypeError unless ``x`` is a 1-D float32/float64 array; return its dtype."""
    dt = np.dtype(x.dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"compressors take float32 or float64 arrays, got {dt}")
    if x.ndim != 1:
        raise TypeError(f"compressors take 1-D (flattened) arrays, got shape {x.shape}")
    return dt


def check_density(density):
    """Validate density = s/d in (0, 1] (ConfigError otherwise) and return it as float."""
    try:
        density = float(density)
    except (TypeError, ValueError):
        raise ConfigError(f"density must be a number in (0, 1], got {density!r}") from None
    if not (0.0 < density <= 1.0):
        raise ConfigError(f"density must be in (0, 1], got {density}")
    return density


def register(cls):
    """Make a compressor class's wire operators known to :meth:`Payload.from_bytes`.

    ``cls.wire`` maps each operator name it puts on the wire to its opcode (unique over
    all classes); ``cls.layout`` describes each operator's arrays. Returns ``cls``.
    """
    for op, code in cls.wire.items():
        owner = _OPCLASS.get(code)
        if (owner is not None and owner is not cls) or OPCODES.get(op, code) != code:
            raise ValueError(f"opcode {code} / operator {op!r} of {cls.__name__} is already taken")
        OPCODES[op], _OPNAMES[code], _OPCLASS[code] = code, op, cls
    return cls


def _layout(opcode, dtype, idx_itemsize, bits, count, aux):
    """(name, dtype, length) of each array of a payload, in wire order."""
    idt = {4: np.dtype(np.int32), 8: np.dtype(np.int64)}.get(idx_itemsize)
    return _OPCLASS[opcode].layout(_OPNAMES[opcode], dtype, idt, bits, count, aux)


def coded_layout(dtype, bits, count, aux, scales_per_bucket=1):
    """The layout of a quantizer's payload: packed ``bits``-bit codes, then the scales of
    ceil(count / aux) buckets."""
    nb = math.ceil(count / aux) if aux else 0
    return [("codes", np.dtype(np.uint8), math.ceil(count * bits / 8)), ("scales", dtype, nb * scales_per_bucket)]


def check_coded(payload, op, bits, bucket, what):
    """Raise ValueError unless a quantizer's ``payload`` has this operator's wire name,
    bits and bucket size (``what`` names the quantizer in the message)."""
    if payload.op != op or payload.bits != bits or payload.aux != bucket:
        raise ValueError(f"payload ({payload.op}, {payload.bits} bits, bucket {payload.aux}) "
                         f"does not match this quantizer ({what}, {bits}, {bucket})")


class Payload:
    """What a compressor sends: named arrays plus the header fields, with exact wire size.

    Attributes:
        op: operator name on the wire (a key of :data:`OPCODES`).
        size: dense length d of the compressed vector.
        dtype: dtype of the dense vector.
        count: selected coordinates (sparse ops) or coded elements (dense ops).
        step: training step the payload belongs to (random-k regenerates indices from it).
        bits: bits per code (quantizers), else 0.
        aux: bucket size (quantizers), else 0.
        arrays: dict name -> array (NumPy or CuPy), in wire order.
    """

    __slots__ = ("op", "size", "dtype", "count", "step", "bits", "aux", "arrays")

    def __init__(self, op, size, dtype, count, arrays, step=0, bits=0, aux=0):
        self.op = op
        self.size = int(size)
        self.dtype = np.dtype(dtype)
        self.count = int(count)
        self.step = int(step)
        self.bits = int(bits)
        self.aux = int(aux)
        self.arrays = dict(arrays)

    def __getitem__(self, name):
        return self.arrays[name]

    def __repr__(self):
        shapes = ", ".join(f"{k}={v.dtype}[{v.size}]" for k, v in self.arrays.items())
        return f"Payload({self.op}, size={self.size}, count={self.count}, nbytes={self.nbytes}, {shapes})"

    @property
    def nbytes(self):
        """Exact bytes on the wire: header + every array (values, indices, codes, scales)."""
        return HEADER_BYTES + sum(int(a.size) * a.dtype.itemsize for a in self.arrays.values())

    @property
    def floats(self):
        """Float-equivalents of the payload in paper 001's unit: an (index, value) pair
        counts 2, a value 1, packed codes and scales their bytes / the dense itemsize."""
        total = 0.0
        for name, a in self.arrays.items():
            total += int(a.size) if name == "indices" else int(a.size) * a.dtype.itemsize / self.dtype.itemsize
        return total

    @property
    def payload_nbytes(self):
        """Bytes of the arrays alone (what a dense allreduce of values moves per rank)."""
        return self.nbytes - HEADER_BYTES

    def header_bytes(self):
        """The 32-byte header as ``bytes``."""
        idx = self.arrays.get("indices")
        return _HEADER.pack(
            OPCODES[self.op], _DTYPE_CODES[self.dtype], 0 if idx is None else idx.dtype.itemsize,
            self.bits, self.count, self.size, self.step, self.aux,
        )

    def to_bytes(self):
        """One contiguous uint8 array (NumPy or CuPy, like the payload) of ``nbytes`` bytes."""
        arrays = list(self.arrays.values())
        xp = get_array_module(arrays[0]) if arrays else np
        out = xp.empty(self.nbytes, dtype=np.uint8)
        out[:HEADER_BYTES] = xp.asarray(np.frombuffer(self.header_bytes(), dtype=np.uint8))
        off = HEADER_BYTES
        for a in arrays:
            n = int(a.size) * a.dtype.itemsize
            out[off:off + n] = xp.ascontiguousarray(a).view(np.uint8).reshape(-1)
            off += n
        return out

    @classmethod
    def from_bytes(cls, buf):
        """Rebuild a payload from :meth:`to_bytes` output (NumPy or CuPy uint8 array).

        Raises:
            ValueError: when the buffer is shorter or longer than its header says.
        """
        xp = get_array_module(buf)
        head = bytes(np.asarray(buf[:HEADER_BYTES].get() if xp is not np else buf[:HEADER_BYTES]).tobytes())
        if len(head) < HEADER_BYTES:
            raise ValueError(f"payload buffer of {len(head)} bytes has no complete header")
        opcode, dcode, idx_itemsize, bits, count, size, step, aux = _HEADER.unpack(head)
        if opcode not in _OPNAMES or dcode not in _DTYPES:
            raise ValueError(f"payload header has unknown opcode {opcode} or dtype code {dcode}")
        dtype = _DTYPES[dcode]
        arrays = {}
        off = HEADER_BYTES
        for name, dt, n in _layout(opcode, dtype, idx_itemsize, bits, count, aux):
            nbytes = n * dt.itemsize
            if off + nbytes > buf.size:
                raise ValueError(f"payload buffer truncated: needs {off + nbytes} bytes, has {buf.size}")
            arrays[name] = buf[off:off + nbytes].copy().view(dt)
            off += nbytes
        if off != buf.size:
            raise ValueError(f"payload buffer has {buf.size} bytes, header describes {off}")
        return cls(_OPNAMES[opcode], size, dtype, count, arrays, step=step, bits=bits, aux=aux)


#: Capabilities an operator declares as class attributes (booleans; ``density`` is
#: declared by defining the checked ``density`` property, see :class:`DensityOperator`):
#:
#: ``sparse``          the payload is (index, value) pairs, or values at shared indices
#: ``density``         it keeps a fraction s/d of the coordinates, settable through a check
#: ``shared_indices``  every rank selects the same coordinates at a step (values alone travel)
#: ``unbiased``        E[decompress(compress(x))] = x
#: ``unbiased_scaled`` ``unbias_scale(d) * decompress(compress(x))`` is unbiased
#: ``lossless``        decompress(compress(x)) == x
#: ``stateful``        it carries arrays across steps (``state_names``; checkpointed)
#: ``layerwise``       it needs the model's layer shapes (given to :meth:`Compressor.setup`)
#: ``communicates``    it runs collectives itself (an algorithm of its own drives it)
CAPABILITIES = ("sparse", "density", "shared_indices", "unbiased", "unbiased_scaled", "lossless", "stateful",
                "layerwise", "communicates")


class Compressor:
    """Base of every operator: ``compress`` -> :class:`Payload`, ``decompress`` into a buffer.

    Each operator module holds both array paths of its operator: a nested ``Host``
    (NumPy) and ``Device`` (CuPy, launching kernels/<name>.cu through
    :mod:`hpctrain.compress.gpu`) class with ``encode(op, x, step, rank)`` and
    ``decode(op, payload, out)``; :meth:`path` picks one from the array module.
    ``compress(g, memory=u)`` gives error feedback: it compresses p = g + u and leaves
    u <- p - decompress(sent) in ``memory`` (sparse operators do it in one fused pass).

    Attributes:
        name: registry name (also the module, the CLI value and the kernel file's name).
        wire: operator name on the wire -> opcode (see :func:`register`).
        kernels: the kernel files (``kernels/<family>.cu``) its ``Device`` path launches,
            beside the shared ones of :data:`~hpctrain.compress.cuda_build.KERNEL_FAMILIES`.
        config_params: the TrainConfig fields passed to the constructor by the trainer
            (``density``, ``bits``, ``seed``, ...).
        bench_params: constructor arguments ``bench compress`` uses by default.
        sparse, shared_indices, unbiased, unbiased_scaled, lossless, stateful, layerwise,
        communicates: capabilities (see :data:`CAPABILITIES`).
        state_names: arrays a stateful operator carries across steps (set up by
            :meth:`setup`); the algorithm checkpoints them as ``compressor.NAME``.
        state_policies: state name -> resize policy on a world-size change
            (see :data:`hpctrain.algorithms.base.RESIZE_POLICIES`; default ``refuse``).
    """

    name = "?"
    wire = {}
    kernels = ()
    config_params = ()
    bench_params = {}
    sparse = False
    shared_indices = False
    unbiased = False
    unbiased_scaled = False
    lossless = False
    stateful = False
    layerwise = False
    communicates = False
    state_names = ()
    state_policies = {}
    Host = None
    Device = None

    @classmethod
    def has(cls, capability):
        """Whether the operator declares ``capability`` (one of :data:`CAPABILITIES`)."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}")
        if capability == "density":
            return isinstance(getattr(cls, "density", None), property)
        return bool(getattr(cls, capability))

    @classmethod
    def capabilities(cls):
        """The declared capabilities, as a tuple in :data:`CAPABILITIES` order."""
        return tuple(c for c in CAPABILITIES if cls.has(c))

    @classmethod
    def layout(cls, op, dtype, index_dtype, bits, count, aux):
        """(name, dtype, length) of each array of an ``op`` payload, in wire order
        (default: ``count`` dense values)."""
        return [("values", dtype, count)]

    def setup(self, params, layers=()):
        """Called once by the algorithm before the first step.

        Args:
            params: the flat parameter vector (its size, dtype and array module).
            layers: the model's layers as (name, shape, offset) into ``params``, when the
                trainer knows them (a ``layerwise`` operator needs them).
        """

    def state_dict(self):
        """Name -> array of every state this operator carries across steps."""
        return {k: getattr(self, k) for k in self.state_names}

    def load_state_dict(self, state):
        """Restore arrays written by :meth:`state_dict` (copied in place)."""
        for k in self.state_names:
            getattr(self, k)[...] = state[k]

    @classmethod
    def resize_policy(cls, name):
        """The resize policy of state ``name`` on a world-size change (default ``refuse``)."""
        return cls.state_policies.get(name, "refuse")

    def unbias_scale(self, d):
        """The factor that makes decompress(compress(x)) unbiased for a length-d vector
        (1 for ``unbiased`` operators; None when there is none)."""
        return 1.0 if self.unbiased else None

    def path(self, x):
        """The ``Host`` (NumPy) or ``Device`` (CuPy) implementation for arrays like ``x``."""
        return self.Host if get_array_module(x) is np else self.Device

    def compress(self, x, step=0, rank=0, memory=None):
        """Compress ``x`` (or ``x + memory`` with error feedback).

        Args:
            x: 1-D float32/float64 NumPy or CuPy array (the gradient g).
            step: training step (seeds the counter RNG).
            rank: worker rank (seeds per-rank randomness; shared-seed ops ignore it).
            memory: optional error-feedback memory u, same shape/dtype; updated in place
                to (x + u) - decompress(payload).

        Returns:
            A :class:`Payload`.
        """
        dt = check_input(x)
        if memory is None:
            return self._compress(x, step, rank)
        if memory.shape != x.shape or np.dtype(memory.dtype) != dt:
            raise ValueError(f"memory {memory.dtype}{memory.shape} does not match x {dt}{x.shape}")
        if self.path(x) is self.Host:
            # p = x + u accumulates in the memory itself; q in scratch; u <- p - q
            np.add(x, memory, out=memory)
            payload = self._compress(memory, step, rank)
            q = self.scratch("ef-q", x.size, x.dtype)
            self._decompress(payload, q)
            memory -= q
            return payload
        p = gpu.ef_add(x, memory)
        payload = self._compress(p, step, rank)
        q = get_array_module(p).empty_like(p)
        self._decompress(payload, q)
        gpu.ef_residual(p, q, memory)
        return payload

    def scratch(self, name, n, dtype):
        """A reusable NumPy buffer ``name`` of ``n`` elements of ``dtype``, owned by this
        operator (allocated on first use and when the size or dtype changes), so that the
        hot path allocates nothing full-size per step. Contents are undefined."""
        pool = self.__dict__.setdefault("_scratch", {})
        buf = pool.get(name)
        if buf is None or buf.size != n or buf.dtype != dtype:
            buf = pool[name] = np.empty(n, dtype)
        return buf

    def independent(self, draw):
        """An operator like this one whose random choices are independent of this one's.

        An unbiased compressor applied to a vector that the same draw already compressed
        is biased (random-k would scale the same k coordinates by d/k twice), so a
        second compression in one step (a server's, a ring hop's) takes ``draw`` >= 1.
        Operators whose randomness is keyed by the ``rank`` argument already draw
        independently for another rank, and return themselves.

        Args:
            draw: a positive integer naming the draw; equal on every rank that decodes it.

        Returns:
            A :class:`Compressor`.
        """
        return self

    def decompress(self, payload, out, add=False):
        """Write the dense vector described by ``payload`` into ``out`` (overwritten).

        Args:
            payload: from :meth:`compress` or :meth:`Payload.from_bytes`.
            out: 1-D array of length ``payload.size`` and dtype ``payload.dtype``.
            add: internal (``decompress_add`` of operators whose ``Host`` has
                ``decode_add``): add into ``out`` instead.

        Returns:
            ``out``.
        """
        if out.size != payload.size or np.dtype(out.dtype) != payload.dtype:
            raise ValueError(
                f"decompress into {out.dtype}[{out.size}], payload is {payload.dtype}[{payload.size}]"
            )
        if add:
            self.Host.decode_add(self, payload, out)
        else:
            self._decompress(payload, out)
        return out

    def decompress_add(self, payload, out):
        """``out += decompress(payload)`` (aggregation of several workers' payloads).

        Returns:
            ``out``.
        """
        xp = get_array_module(out)
        if xp is np and hasattr(self.Host, "decode_add"):  # straight into the output
            self.decompress(payload, out, add=True)
            return out
        tmp = self.scratch("add", out.size, out.dtype) if xp is np else xp.empty_like(out)
        self.decompress(payload, tmp)
        out += tmp
        return out

    def _compress(self, x, step, rank):
        return self.path(x).encode(self, x, step, rank)

    def _decompress(self, payload, out):
        self.path(out).decode(self, payload, out)


class DensityOperator:
    """Mixin of the operators that keep a fraction s/d of the coordinates: ``density`` is a
    property whose setter checks the value (an algorithm's warm-up goes through it)."""

    @property
    def density(self):
        """s/d in (0, 1]."""
        return self._density

    @density.setter
    def density(self, value):
        self._density = check_density(value)


class SparseCompressor(Compressor):
    """Base of the sparsifiers: payload = (indices ascending, values) pairs.

    ``Host.select(op, x, u, step, rank)`` and ``Device.select(...)`` return (indices,
    values) and update ``u`` to (x + u) with the selected coordinates zeroed when ``u``
    is given.
    """

    sparse = True

    @classmethod
    def layout(cls, op, dtype, index_dtype, bits, count, aux):
        """``count`` indices, then their ``count`` values."""
        return [("indices", index_dtype, count), ("values", dtype, count)]

    def compress(self, x, step=0, rank=0, memory=None):
        """Select coordinates of ``x`` (or of ``x + memory``, updating memory in one pass).

        Args:
            x: 1-D float32/float64 array.
            step, rank: seed the counter RNG where the operator is random.
            memory: optional error-feedback memory (updated in place).

        Returns:
            A :class:`Payload` with ``indices`` and ``values``.
        """
        dt = check_input(x)
        if memory is not None and (memory.shape != x.shape or np.dtype(memory.dtype) != dt):
            raise ValueError(f"memory {memory.dtype}{memory.shape} does not match x {dt}{x.shape}")
        idx, val = self.path(x).select(self, x, memory, step, rank)
        idx = idx.astype(index_dtype(x.size), copy=False)
        return Payload(self.name, x.size, dt, idx.size, {"indices": idx, "values": val}, step=step)

    def _decompress(self, payload, out):
        scatter_pairs(payload["indices"], payload["values"], out, add=False)

    def decompress_add(self, payload, out):
        """Scatter-add the (index, value) pairs into ``out`` (indices unique per payload).

        Returns:
            ``out``.
        """
        return scatter_pairs(payload["indices"], payload["values"], out, add=True)


def scatter_pairs(idx, val, out, add=False):
    """``out[idx] = val`` (out zeroed first) or ``out[idx] += val``, NumPy or CuPy."""
    if get_array_module(out) is np:
        if add:
            out[idx] += val
        else:
            out.fill(0)
            out[idx] = val
        return out
    return gpu.scatter(idx, val, out, add=add)
