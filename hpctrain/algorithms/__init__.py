"""Training algorithms of the papers, one module each: per-rank state + one ``step``.

Pick one with ``--algo NAME``; :func:`get_algorithm` returns its class. Symbols: lr = eta,
momentum = beta, density = s/d, sync_period = I (002) / H (004), staleness = tau.

==================  ==========  =================================================================
name                paper       algorithm (module) -- pick it when
==================  ==========  =================================================================
``dsgd``            003         gradient averaging, plain SGD (dsgd.py) -- the simplest baseline
``dmsgd``           001         gradient averaging + heavy-ball momentum (dmsgd.py) -- dense
                                baseline of Table 1
``model-avg``       003         local step, then average the models every step (dsgd.py)
``mdsgd``           000 Alg 1   local momentum + memory, random-k / top-k / approx top-k mask
                                (mdsgd.py) -- sparse communication with local momentum
``dgc``             001 (Lin)   momentum correction, factor masking, clipping, sparsity warm-up
                                (dgc.py) -- the practical sparse baseline
``gmc``             001 Alg 1   global momentum from w_t - w_{t-1} + memory; allreduce or
                                parameter-server form with sparse w_{t+1} - w_t down (gmc.py)
``csgd``            003 Sec 3   unbiased b-bit quantization or random sparsification; PS
                                Q(mean Q(g)) or ring with Q at every hop (csgd.py)
``ecsgd``           003 (3.8)   worker error compensation, 1-bit sign or b-bit (ecsgd.py)
``doublesqueeze``   003 (3.12)  worker + server error compensation (ecsgd.py) -- biased Q both ways
``prsgd-momentum``  002 Alg 1   local Polyak / Nesterov momentum, average x and u every I steps
                                (local.py) -- cut communication rounds by I
``local-sgd``       004 Alg 2   local SGD, average x every H steps (local.py)
``dmomentum``       002 Alg 2   decentralized momentum SGD on mixing matrix W (decentralized.py)
``dpsgd``           003 Sec 5   decentralized SGD, ring W = 1/3 or any W (decentralized.py) --
                                latency-bound networks, no global collective
``adagrad``         004 Alg 1   distributed AdaGrad on the averaged gradient (adaalter.py)
``local-adaalter``  004 Alg 3   lazy denominators B^2 + t' eps^2, sync x and B^2 every H steps,
                                lr warm-up (adaalter.py) -- adaptive lr with 2/H communication
``asgd``            003 Sec 4   parameter server, bounded staleness tau, deterministic
                                round-robin pull schedule (asgd.py)
``powersgd``        PowerSGD    rank-r power iteration per weight matrix, error feedback, warm
                                start (powersgd.py) -- the practical low-rank compressor
``signsgd``         signSGD-MV  1-bit signs up, majority vote down; Signum with --momentum
                                (signsgd.py) -- 32x both ways, server or allgather vote
==================  ==========  =================================================================
"""

from ..compress import compressor_names
from ..errors import ConfigError
from .adaalter import AdaGrad, LocalAdaAlter
from .asgd import ASGD
from .base import AlgoContext, Algorithm
from .csgd import CSGD
from .decentralized import DMomentum, DPSGD
from .dgc import DGC
from .dmsgd import DMSGD
from .dsgd import DSGD, ModelAverage
from .ecsgd import DoubleSqueeze, ECSGD
from .gmc import GMC
from .local import LocalSGD, PRSGDMomentum
from .mdsgd import MDSGD
from .powersgd import PowerSGD
from .signsgd import SignSGD

__all__ = ["ALGORITHMS", "get_algorithm", "Algorithm", "AlgoContext"]

ALGORITHMS = {
    cls.name: cls
    for cls in (DMSGD, DSGD, ModelAverage, MDSGD, DGC, GMC, CSGD, ECSGD, DoubleSqueeze, PRSGDMomentum,
                DMomentum, DPSGD, LocalSGD, AdaGrad, LocalAdaAlter, ASGD, PowerSGD, SignSGD)
}

# the operators each algorithm takes, from their capabilities (see Algorithm.refusal)
for _cls in ALGORITHMS.values():
    _cls.compressors = tuple(compressor_names(accepted_by=_cls)) if _cls.compresses else ()
    if _cls.unbiased_with == "compressors":
        _cls.unbiased_with = _cls.compressors
del _cls


def get_algorithm(name):
    """The algorithm class registered as ``name``."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ConfigError(f"unknown algo {name!r}; choose from {', '.join(ALGORITHMS)}") from None
