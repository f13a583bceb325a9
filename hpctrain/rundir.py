"""Run directories: what counts as an existing run, which --resume/--overwrite may reuse
one, checkpoint lineages, and cleaning up after failed runs and dead writers.

A *lineage* is one line of checkpoints in a run directory (file names
``ckpt-<step>-<lineage>.h5``). A fresh run starts one; resuming the checkpoint that
``--resume latest`` names continues it; resuming any other checkpoint (an older one, or
one of another run directory) starts a new lineage, which ``--resume latest`` then
follows. Pruning (``--keep``) deletes only files of the run's own lineage, never the
checkpoint it resumed from: no path deletes or overwrites another line's checkpoint.
"""

import atexit
import json
import os

from .checkpoint import _latest, checkpoint_dir, checkpoint_lineage, clean_stale_temps, list_checkpoints, new_lineage
from .errors import ConfigError
from .files import check_run_files, check_text_path

__all__ = ["holds_run", "check_out", "lineage_after_resume", "remove_if_empty_at_exit", "clean_run_dir"]


def holds_run(out):
    """True when ``out`` holds results of a run: a complete metrics record, a summary or a
    checkpoint (an empty or half-written metrics.jsonl left by a failure does not count)."""
    if list_checkpoints(out) or os.path.exists(os.path.join(out, "summary.json")):
        return True
    try:
        with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
            for line in f:
                try:
                    if isinstance(json.loads(line), dict):
                        return True
                except ValueError:
                    continue
    except (OSError, UnicodeDecodeError):
        pass
    return False


def _inside(path, directory):
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def check_out(cfg, out):
    """Refuse to reuse ``out`` when it holds a run, unless --overwrite, or --resume names a
    checkpoint of that same run (``latest`` or a file in its checkpoints/)."""
    check_text_path(out, "--out")
    if os.path.isdir(out):
        check_run_files(out)
    if cfg.overwrite or not holds_run(out):
        return
    if cfg.resume == "latest" or (cfg.resume and _inside(cfg.resume, checkpoint_dir(out))):
        return
    if cfg.resume:
        raise ConfigError(
            f"run directory {out} already holds another run; resuming {cfg.resume} there would replace its "
            "metrics and config: choose a new --out, or pass --overwrite (its checkpoints are kept)"
        )
    raise ConfigError(f"run directory {out} already holds a run; pass --overwrite or choose another --out")


def lineage_after_resume(run_dir, path):
    """The lineage a run continues after resuming ``path`` into ``run_dir``: the file's own
    when it is the run directory's latest checkpoint, else a new one."""
    latest = _latest(run_dir)
    own = checkpoint_lineage(path)
    if own and latest and os.path.realpath(latest) == os.path.realpath(path):
        return own
    return new_lineage()


def remove_if_empty_at_exit(out):
    """At exit, remove ``out`` (created by this run) if the run left nothing in it."""

    def rm():
        for d in (checkpoint_dir(out), out):
            try:
                os.rmdir(d)  # only ever succeeds on an empty directory
            except OSError:
                pass

    atexit.register(rm)


def clean_run_dir(out):
    """Remove temporary checkpoint files of dead writers; returns their names."""
    return clean_stale_temps(checkpoint_dir(out))
