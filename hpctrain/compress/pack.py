"""Bit packing of b-bit codes (b in {1, 2, 4, 8}) into bytes, and back.

Code i lives in byte ``i*b // 8`` at bit offset ``(i*b) % 8`` (little-endian inside the
byte); the last byte is zero-padded, so n codes take ceil(n*b/8) bytes. kernels/pack.cu
is the CUDA twin.
"""

import math

import numpy as np

from ..errors import ConfigError
from ..xp import get_array_module
from . import gpu

__all__ = ["VALID_BITS", "check_bits", "packed_size", "pack_bits", "unpack_bits"]

VALID_BITS = (1, 2, 4, 8)


def check_bits(bits):
    """Return ``bits`` as int if it is one of 1, 2, 4, 8; raise ConfigError otherwise."""
    try:
        b = int(bits)
    except (TypeError, ValueError):
        b = None
    if b not in VALID_BITS or b != bits:
        raise ConfigError(f"bits must be one of 1, 2, 4, 8, got {bits!r}")
    return b


def packed_size(n, bits):
    """Bytes taken by n codes of ``bits`` bits: ceil(n * bits / 8)."""
    return math.ceil(n * bits / 8)


def pack_bits(codes, bits):
    """Pack uint8 codes (each < 2**bits) into bytes.

    Args:
        codes: 1-D uint8 array (NumPy or CuPy).
        bits: 1, 2, 4 or 8.

    Returns:
        uint8 array of ``packed_size(codes.size, bits)`` bytes.
    """
    bits = check_bits(bits)
    if get_array_module(codes) is not np:
        return gpu.pack_bits(codes, bits)
    n = codes.size
    if bits == 8:
        return codes.astype(np.uint8, copy=True)
    per = 8 // bits
    m = packed_size(n, bits)
    padded = np.zeros(m * per, dtype=np.uint8)
    padded[:n] = codes
    padded &= np.uint8((1 << bits) - 1)
    grid = padded.reshape(m, per)
    out = grid[:, 0].copy()
    for j in range(1, per):
        out |= grid[:, j] << np.uint8(j * bits)
    return out


def unpack_bits(packed, bits, n):
    """Unpack ``n`` codes of ``bits`` bits from ``packed`` (inverse of :func:`pack_bits`).

    Returns:
        uint8 array of length n.
    """
    bits = check_bits(bits)
    if packed.size < packed_size(n, bits):
        raise ValueError(f"{packed.size} bytes cannot hold {n} codes of {bits} bits")
    if get_array_module(packed) is not np:
        return gpu.unpack_bits(packed, bits, n)
    if bits == 8:
        return packed[:n].astype(np.uint8, copy=True)
    per = 8 // bits
    mask = np.uint8((1 << bits) - 1)
    shifts = (np.arange(per, dtype=np.uint8) * np.uint8(bits))
    codes = (packed[:, None] >> shifts[None, :]) & mask
    return codes.reshape(-1)[:n].copy()
