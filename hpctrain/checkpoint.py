"""HDF5 checkpoints: atomic write, SHA-256 per dataset, verify, gather/scatter of per-rank
state, and remapping to another world size.

Layout (format version 1; see docs/checkpoint-format.md): root attributes hold the
format version, library versions, world size, step counters, algorithm and model, and
the full resolved config as TOML text; every array is a dataset whose first axis is the
rank (``params``, ``state/<name>``, ``train/<name>``) with a ``sha256`` attribute.
Only numeric datasets and string attributes: nothing is pickled.
"""

import hashlib
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "Snapshot",
    "checkpoint_dir",
    "checkpoint_path",
    "list_checkpoints",
    "resolve_resume",
    "write_checkpoint",
    "read_checkpoint",
    "verify_checkpoint",
    "prune_checkpoints",
    "remap_world_size",
]

FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d+)\.h5$")


@dataclass
class Snapshot:
    """A checkpoint in memory (on rank 0): metadata, config text, per-rank arrays."""

    meta: dict
    config_toml: str
    arrays: dict = field(default_factory=dict)


def checkpoint_dir(run_dir):
    """Where a run keeps its checkpoints."""
    return os.path.join(run_dir, "checkpoints")


def checkpoint_path(run_dir, step):
    """The file name of the checkpoint taken after ``step`` steps."""
    return os.path.join(checkpoint_dir(run_dir), f"ckpt-{step:09d}.h5")


def list_checkpoints(run_dir):
    """Checkpoint files of ``run_dir``, oldest first (by step)."""
    d = checkpoint_dir(run_dir)
    if not os.path.isdir(d):
        return []
    found = sorted((int(m.group(1)), n) for n in os.listdir(d) if (m := _NAME.match(n)))
    return [os.path.join(d, n) for _, n in found]


def resolve_resume(spec, run_dir):
    """``latest`` -> the newest checkpoint of ``run_dir``; otherwise ``spec`` as a path."""
    if spec == "latest":
        found = list_checkpoints(run_dir)
        if not found:
            raise CheckpointError(f"--resume latest: no checkpoint in {checkpoint_dir(run_dir)}")
        return found[-1]
    if not os.path.exists(spec):
        raise CheckpointError(f"checkpoint not found: {spec}")
    return spec


def _digest(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _versions():
    import h5py

    from . import __version__
    from .comm.communicator import mpi_library_info

    return {"hpctrain_version": __version__, "numpy_version": np.__version__,
            "h5py_version": h5py.__version__, "mpi4py_version": mpi_library_info()["mpi4py"]}


def write_checkpoint(path, snap):
    """Write ``snap`` to ``path`` atomically.

    The file is written under a temporary name in the same directory, flushed and
    fsynced, read back and verified, then renamed over ``path``: a crash at any moment
    leaves the previous checkpoint intact.
    """
    import h5py

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format_version"] = FORMAT_VERSION
            for k, v in {**_versions(), **snap.meta}.items():
                f.attrs[k] = v
            f.attrs["config_toml"] = snap.config_toml
            f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            for name, arr in snap.arrays.items():
                ds = f.create_dataset(name, data=np.ascontiguousarray(arr))
                ds.attrs["sha256"] = _digest(arr)
            f.flush()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        problems = verify_checkpoint(tmp)
        if problems:
            raise CheckpointError(f"checkpoint {path} failed verification after writing: {problems[0]}")
        os.replace(tmp, path)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _open(path):
    import h5py

    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not HDF5)") from None


def _datasets(f):
    import h5py

    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def verify_checkpoint(path):
    """Check every dataset's checksum; returns a list of problems (empty if sound)."""
    problems = []
    try:
        with _open(path) as f:
            if "format_version" not in f.attrs:
                return [f"{path}: no format_version attribute (not an hpctrain checkpoint)"]
            for name in _datasets(f):
                ds = f[name]
                want = _attr(ds.attrs.get("sha256", ""))
                try:
                    got = _digest(ds[()])
                except OSError as exc:
                    problems.append(f"{name}: unreadable ({exc})")
                    continue
                if got != want:
                    problems.append(f"{name}: checksum mismatch (stored {want[:12]}..., data {got[:12]}...)")
    except CheckpointError as exc:
        return [str(exc)]
    except OSError as exc:
        return [f"{path}: unreadable ({exc})"]
    return problems


def read_checkpoint(path):
    """Read and verify a checkpoint; raises CheckpointError on any problem."""
    with _open(path) as f:
        try:
            version = int(_attr(f.attrs["format_version"]))
        except KeyError:
            raise CheckpointError(f"{path}: not an hpctrain checkpoint (no format_version)") from None
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format version {version} is newer than this hpctrain "
                f"supports ({FORMAT_VERSION}); upgrade hpctrain"
            )
        meta = {k: _attr(v) for k, v in f.attrs.items() if k != "config_toml"}
        config_toml = _attr(f.attrs.get("config_toml", ""))
        arrays = {}
        for name in _datasets(f):
            ds = f[name]
            try:
                data = ds[()]
            except OSError:
                raise CheckpointError(f"{path}: dataset {name} is unreadable (truncated file)") from None
            if _digest(data) != _attr(ds.attrs.get("sha256", "")):
                raise CheckpointError(f"{path}: checksum mismatch in dataset {name}; the file is corrupt")
            arrays[name] = data
    return Snapshot(meta, config_toml, arrays)


def prune_checkpoints(run_dir, keep):
    """Delete all but the ``keep`` newest checkpoints (keep <= 0 keeps all)."""
    if keep <= 0:
        return
    for path in list_checkpoints(run_dir)[:-keep]:
        os.remove(path)


def remap_world_size(snap, new_size, policies):
    """Map per-rank arrays of ``snap`` to ``new_size`` ranks.

    Args:
        policies: dataset name -> ``replicated`` | ``sum`` | ``mean`` | ``refuse``.

    Returns:
        A new Snapshot; raises CheckpointError where a policy is ``refuse``.
    """
    old = int(snap.meta["world_size"])
    arrays = {}
    for name, arr in snap.arrays.items():
        policy = policies.get(name, "refuse")
        if policy == "replicated":
            new = np.repeat(arr[:1], new_size, axis=0)
        elif policy == "sum":
            total = arr.sum(axis=0, dtype=np.float64)
            new = np.repeat((total / new_size)[None].astype(arr.dtype), new_size, axis=0)
        elif policy == "mean":
            new = np.repeat(arr.mean(axis=0, dtype=np.float64)[None].astype(arr.dtype), new_size, axis=0)
        else:
            raise CheckpointError(
                f"checkpoint was written by {old} ranks and its {name} cannot be remapped to "
                f"{new_size} ranks; resume with mpiexec -n {old}"
            )
        arrays[name] = new
    return Snapshot({**snap.meta, "world_size": new_size}, snap.config_toml, arrays)
