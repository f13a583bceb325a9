"""Bit packing of b-bit codes (b in {1, 2, 4, 8}) into bytes, and back.

Code i lives in byte ``i*b // 8`` at bit offset ``(i*b) % 8`` (little-endian inside the
byte); the last byte is zero-padded, so n codes take ceil(n*b/8) bytes. kernels/pack.cu
is the CUDA twin.
"""

import math
import sys

import numpy as np

from ..errors import ConfigError
from ..xp import get_array_module
from .. import jit
from . import gpu

__all__ = ["VALID_BITS", "check_bits", "packed_size", "pack_bits", "unpack_bits", "pack_into", "unpack_into", "pack_codes", "unpack_codes", "decode_bytes"]

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
    out = np.empty(packed_size(codes.size, bits), np.uint8)
    return pack_into(codes, bits, out)


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
    return unpack_into(packed, bits, np.empty(n, np.uint8))


def pack_into(codes, bits, out):
    """Pack NumPy uint8 ``codes`` into ``out`` (``packed_size(codes.size, bits)`` bytes), in
    place and without temporaries of the codes' size: one strided pass per code slot of
    a byte (np.packbits for 1 bit). Codes must be < 2**bits, except for 1 bit, where any
    non-zero code packs as 1.

    Returns:
        ``out``.
    """
    n = codes.size
    if bits == 8:
        np.copyto(out, codes)
        return out
    if bits == 1:
        out[...] = np.packbits(codes, bitorder="little")  # n / 8 bytes: the payload's own size
        return out
    if jit.enabled() and codes.flags.c_contiguous:
        return jit.pack(codes, bits, out)
    per = 8 // bits
    full = n // per
    body = out[:full]
    if sys.byteorder == "little" and codes.flags.c_contiguous:
        # the per codes of a byte as one little-endian word (code j at bit 8 j): fold the
        # words' bytes together with shifts, in contiguous SIMD passes, keep the low byte
        word = {2: np.uint16, 4: np.uint32}[per]
        w = codes[: full * per].view(word)
        acc = np.right_shift(w, word(8 - bits))  # n / per words: the payload's size or less
        acc |= w  # code 1 now at bits [bits, 2 bits) (4 bits: and code 3 at [16 + 2, 16 + 4))
        if per == 4:
            acc |= acc >> word(16 - 2 * bits)  # codes 2, 3 down to bits [4, 8)
        np.copyto(body, acc, casting="unsafe")  # the low byte
    else:
        grid = codes[: full * per].reshape(full, per)
        np.left_shift(grid[:, per - 1], np.uint8((per - 1) * bits), out=body)
        for j in range(per - 2, -1, -1):
            if j:
                body |= grid[:, j] << np.uint8(j * bits)  # n / per bytes per slot
            else:
                body |= grid[:, 0]
    if n > full * per:
        tail = np.zeros(per, np.uint8)
        tail[: n - full * per] = codes[full * per:]
        out[full] = np.bitwise_or.reduce(tail << (np.arange(per, dtype=np.uint8) * np.uint8(bits)))
    return out


def unpack_into(packed, bits, out):
    """Unpack ``out.size`` codes of ``bits`` bits from NumPy ``packed`` into uint8 ``out``
    (inverse of :func:`pack_into`), one strided pass per code slot of a byte.

    Returns:
        ``out``.
    """
    n = out.size
    if bits == 8:
        np.copyto(out, packed[:n])
        return out
    per = 8 // bits
    mask = np.uint8((1 << bits) - 1)
    full = n // per
    grid = out[: full * per].reshape(full, per)
    src = packed[:full]
    for j in range(per):
        dst = grid[:, j]
        np.right_shift(src, np.uint8(j * bits), out=dst)
        dst &= mask
    if n > full * per:
        last = packed[full] >> (np.arange(per, dtype=np.uint8) * np.uint8(bits)) & mask
        out[full * per:] = last[: n - full * per]
    return out


def pack_codes(codes, bits):
    """Payload bytes of unpacked ``codes`` (NumPy or CuPy): a new array of the packed size."""
    if get_array_module(codes) is not np:
        return gpu.pack_bits(codes, bits)
    return pack_into(codes, bits, np.empty(packed_size(codes.size, bits), np.uint8))


def unpack_codes(op, packed, bits, n, like):
    """``n`` unpacked codes of a payload: on NumPy into ``op``'s scratch ``codes`` (read
    before its next call), on CuPy a new device array. ``like`` is the output array
    (its array module picks the path)."""
    if packed.size < packed_size(n, bits):
        raise ValueError(f"{packed.size} bytes cannot hold {n} codes of {bits} bits")
    if get_array_module(like) is not np:
        return gpu.unpack_bits(packed, bits, n)
    return unpack_into(np.asarray(packed), bits, op.scratch("codes", n, np.uint8))


def decode_bytes(op, packed, bits, table, out):
    """``out[i] = table[code i]`` for the codes packed in NumPy ``packed``, without
    unpacking: each byte indexes a (256, 8 / bits) table of its codes' values (cached on
    ``op``), in cache-sized runs of bytes.

    Args:
        op: the operator (its scratch and table cache).
        packed: the payload's code bytes.
        bits: bits per code.
        table: value of each code (2**bits entries, ``out``'s dtype).
        out: the output (its size is the number of codes).

    Returns:
        ``out``.
    """
    n, per = out.size, 8 // bits
    if packed.size < packed_size(n, bits):
        raise ValueError(f"{packed.size} bytes cannot hold {n} codes of {bits} bits")
    cache = op.__dict__.setdefault("_byte_tables", {})
    tag = (bits, table.dtype.str, table.tobytes())
    bt = cache.get(tag)
    if bt is None:
        codes = np.empty((256, per), np.uint8)
        unpack_into(np.arange(256, dtype=np.uint8), bits, codes.reshape(-1))
        bt = cache[tag] = table[codes]
    full = n // per
    size = max(1, min(full, 1 << 14))
    idx_all = op.scratch("byte-idx", size, np.intp)
    for a in range(0, full, size):
        b = min(full, a + size)
        idx = idx_all[: b - a]
        np.copyto(idx, packed[a:b])
        np.take(bt, idx, axis=0, out=out[per * a:per * b].reshape(b - a, per), mode="clip")
    if n > per * full:
        out[per * full:] = bt[packed[full], : n - per * full]
    return out
