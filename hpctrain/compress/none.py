"""none: the identity (the dense vector itself travels; the baseline)."""

from .base import Compressor, Payload

__all__ = ["NoneCompressor"]


class _Copy:
    """Both array modules: copy in, copy out."""

    @staticmethod
    def encode(op, x, step, rank):
        return Payload(op.name, x.size, x.dtype, x.size, {"values": x.copy()}, step=step)

    @staticmethod
    def decode(op, payload, out):
        out[...] = payload["values"]


class _Host(_Copy):
    """NumPy: also adds straight into the output."""

    @staticmethod
    def decode_add(op, payload, out):
        out += payload["values"]


class NoneCompressor(Compressor):
    """Identity: the dense vector itself travels (the baseline)."""

    name = "none"
    wire = {"none": 0}
    unbiased = True
    lossless = True
    Host = _Host
    Device = _Copy


OPERATOR = NoneCompressor  # what compress/__init__.py registers
