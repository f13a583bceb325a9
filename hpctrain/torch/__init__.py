"""hpctrain inside your own PyTorch script (Horovod-style), launched by ``mpiexec`` or ``srun``.

::

    import hpctrain.torch as ht
    ht.init()
    model = Net(); opt = torch.optim.Adam(model.parameters())
    ht.broadcast_parameters(model, root_rank=0)
    opt = ht.DistributedOptimizer(opt, model=model, compression="none")
    ht.broadcast_optimizer_state(opt, root_rank=0)
    for x, y in batches:                      # this rank's shard of the data
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()

=========================  ==========================================================
name                       what it does
=========================  ==========================================================
``init``                   world communicator, torch threads per rank, one error ends
                           the job (one line on stderr, every rank stops)
``broadcast_parameters``   rank 0's parameters and buffers to every rank
``broadcast_optimizer_     rank 0's optimizer state and hyperparameters (JSON + raw
state``                    buffers, no pickle)
``DistributedOptimizer``   gradient mode: buckets averaged (optionally compressed with
                           error feedback) during backward, then *your* optimizer steps
``DistributedAlgorithm``   algorithm mode: an hpctrain algorithm (dmsgd, gmc, local-sgd,
                           ...) performs the update
``save_checkpoint`` /      the HDF5 checkpoint format of ``hpctrain train``, same
``load_checkpoint``        validation
=========================  ==========================================================

See docs/torch.md for a complete script.
"""

from ._runtime import comm, init, rank, size
from .optimizer import ALGORITHM_MODE, DistributedAlgorithm, DistributedOptimizer
from .state import broadcast_optimizer_state, broadcast_parameters, load_checkpoint, save_checkpoint

__all__ = ["init", "comm", "rank", "size", "broadcast_parameters", "broadcast_optimizer_state",
           "DistributedOptimizer", "DistributedAlgorithm", "ALGORITHM_MODE", "save_checkpoint", "load_checkpoint"]
