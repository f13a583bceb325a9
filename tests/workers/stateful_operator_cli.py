"""Run the hpctrain CLI with a test-only stateful, layer-wise operator ``memo`` registered.

usage: stateful_operator_cli.py train [options...]   (as ``hpctrain``; use --compressor memo)

``memo`` is top-k of x scaled per layer by 1 / (1 + r_l), where r_l is a per-rank running
mean of layer l's gradient norm kept across steps (state ``norms``, one entry per layer
and per ``bits`` slot, so its shape follows the model's layers and --bits). The state
changes every trajectory, so a resume that lost or mixed it up would not be bit-identical.
"""

import sys

import numpy as np

import hpctrain.compress as compress
from hpctrain.compress.base import register
from hpctrain.compress.topk import TopK
from hpctrain.xp import get_array_module


class Memo(TopK):
    name = "memo"
    wire = {"memo": 250}
    config_params = ("density", "bits")
    stateful = True
    layerwise = True
    state_names = ("norms",)
    state_policies = {"norms": "mean"}

    def __init__(self, density=0.01, bits=8):
        super().__init__(density)
        self.bits = int(bits)
        self.norms = None

    def setup(self, params, layers=()):
        self.layers = [(n, s, o) for n, s, o in layers] or [("all", (params.size,), 0)]
        self.norms = get_array_module(params).zeros(len(self.layers) * self.bits, dtype=np.float64)

    def compress(self, x, step=0, rank=0, memory=None):
        y = x.copy()
        for i, (_, shape, off) in enumerate(self.layers):
            n = int(np.prod(shape))
            seg = y[off:off + n]
            slot = i * self.bits + step % self.bits
            self.norms[slot] = 0.5 * self.norms[slot] + 0.5 * float((seg * seg).sum()) ** 0.5
            seg /= 1.0 + self.norms[slot]
        return super().compress(y, step=step, rank=rank, memory=memory)


register(Memo)
compress.COMPRESSORS[Memo.name] = Memo

from hpctrain.cli import main  # noqa: E402  (after the registration: the algorithms read the registry)

if __name__ == "__main__":
    main(sys.argv[1:])
