"""Learning-rate schedules: lr(step, epoch) from the config.

=============  =================================================================
name           lr at epoch e (1-based) and global step t
=============  =================================================================
``constant``   eta0
``stagewise``  eta0 / (s + 1), s = (e - 1) // lr_stage_epochs  (paper 000)
``step``       eta0 * lr_decay ** ((e - 1) // lr_stage_epochs)
=============  =================================================================

Any schedule is multiplied by a linear warm-up min(1, (t + 1) / (warmup_epochs x
steps_per_epoch)) when ``warmup_epochs`` > 0.
"""

from .errors import ConfigError

__all__ = ["SCHEDULES", "make_schedule"]

SCHEDULES = ("constant", "stagewise", "step")


def make_schedule(cfg, steps_per_epoch):
    """Return ``lr(t, epoch)`` for the config's schedule.

    Args:
        cfg: a TrainConfig (lr, lr_schedule, lr_stage_epochs, lr_decay, warmup_epochs).
        steps_per_epoch: iterations per epoch (for the warm-up length).
    """
    eta0, kind = cfg.lr, cfg.lr_schedule
    stage, decay = cfg.lr_stage_epochs, cfg.lr_decay
    warm = cfg.warmup_epochs * steps_per_epoch
    if kind == "constant":
        base = lambda e: eta0  # noqa: E731
    elif kind == "stagewise":
        base = lambda e: eta0 / ((e - 1) // stage + 1)  # noqa: E731
    elif kind == "step":
        base = lambda e: eta0 * decay ** ((e - 1) // stage)  # noqa: E731
    else:
        raise ConfigError(f"unknown lr_schedule {kind!r}; choose from {', '.join(SCHEDULES)}")
    if warm <= 0:
        return lambda t, e: base(e)
    return lambda t, e: base(e) * min(1.0, (t + 1) / warm)
