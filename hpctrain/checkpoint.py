"""HDF5 checkpoints: atomic write, SHA-256 per dataset, verify, gather/scatter of per-rank
state, and remapping to another world size.

Layout (format version 1; see docs/checkpoint-format.md): root attributes hold the
format version, library versions, world size, step counters, algorithm and model, and
the full resolved config as TOML text; every array is a dataset whose first axis is the
rank (``params``, ``state/<name>``, ``train/<name>``) with a ``sha256`` attribute.
Only numeric datasets and string attributes: nothing is pickled.
"""

import errno
import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import CheckpointError, OutputError

__all__ = [
    "FORMAT_VERSION",
    "REQUIRED_ATTRS",
    "Snapshot",
    "checkpoint_dir",
    "checkpoint_path",
    "list_checkpoints",
    "latest_checkpoint",
    "checkpoint_lineage",
    "new_lineage",
    "mark_latest",
    "resolve_resume",
    "clean_stale_temps",
    "write_checkpoint",
    "read_checkpoint",
    "verify_checkpoint",
    "prune_checkpoints",
    "remap_world_size",
]

#: 2: every root attribute and the list of datasets (name, dtype, shape, sha256) are
#: covered by the root attribute ``attrs_sha256``; version-1 files had no such checksum.
FORMAT_VERSION = 2
_NAME = re.compile(r"^ckpt-(\d+)(?:-([0-9a-f]+))?\.h5$")
_TMP = re.compile(r"^\.ckpt-.*\.h5\.tmp-(\d+)$")
_LATEST = "LATEST"
#: the attribute that holds the checksum of all the others
_SIGNATURE = "attrs_sha256"
#: root attributes every checkpoint must carry, with their type
REQUIRED_ATTRS = {
    "format_version": int, "world_size": int, "step": int, "epoch": int, "step_in_epoch": int,
    "steps_per_epoch": int, "n_params": int, "algo": str, "model": str, "config_toml": str,
}
#: hashing and reading go in pieces of at most this many bytes (bounded memory)
_BLOCK = 8 << 20
_GROUPS = ("state", "train", "model")  # model: the model's state_dict (BN running stats, dropout step)


@dataclass
class Snapshot:
    """A checkpoint in memory (on rank 0): metadata, config text, per-rank arrays."""

    meta: dict
    config_toml: str
    arrays: dict = field(default_factory=dict)


def checkpoint_dir(run_dir):
    """Where a run keeps its checkpoints."""
    return os.path.join(run_dir, "checkpoints")


def new_lineage():
    """A fresh lineage id (8 hex digits): one per line of checkpoints in a run directory."""
    return secrets.token_hex(4)


def checkpoint_path(run_dir, step, lineage=""):
    """The file name of the checkpoint taken after ``step`` steps on ``lineage``."""
    tag = f"-{lineage}" if lineage else ""
    return os.path.join(checkpoint_dir(run_dir), f"ckpt-{step:09d}{tag}.h5")


def checkpoint_lineage(path):
    """The lineage id in a checkpoint's file name ('' for names without one)."""
    m = _NAME.match(os.path.basename(path))
    return (m.group(2) or "") if m else ""


def list_checkpoints(run_dir, lineage=None):
    """Checkpoint files of ``run_dir`` (of one ``lineage`` when given), oldest first (by step)."""
    d = checkpoint_dir(run_dir)
    if not os.path.isdir(d):
        return []
    found = sorted((int(m.group(1)), n) for n in os.listdir(d)
                   if (m := _NAME.match(n)) and (lineage is None or (m.group(2) or "") == lineage))
    return [os.path.join(d, n) for _, n in found]


def mark_latest(run_dir, path):
    """Record ``path`` as the checkpoint ``--resume latest`` continues from (atomic)."""
    d = checkpoint_dir(run_dir)
    tmp = os.path.join(d, f".{_LATEST}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(os.path.basename(path) + "\n")
        os.replace(tmp, os.path.join(d, _LATEST))
    except OSError as exc:
        _remove(tmp)
        raise OutputError(f"cannot write {os.path.join(d, _LATEST)}: {exc.strerror or exc}") from None


def _latest(run_dir):
    d = checkpoint_dir(run_dir)
    try:
        with open(os.path.join(d, _LATEST), encoding="utf-8") as f:
            name = f.read().strip()
        if _NAME.match(name) and os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    except (OSError, UnicodeDecodeError):
        pass
    found = list_checkpoints(run_dir)
    if not found:
        return None
    # no (or a stale) pointer: the most recently written file, then the highest step
    return max(found, key=lambda p: (os.stat(p).st_mtime_ns, found.index(p)))


def latest_checkpoint(run_dir):
    """The checkpoint last written in ``run_dir`` (``--resume latest``'s), or None."""
    return _latest(run_dir)


def resolve_resume(spec, run_dir):
    """``latest`` -> the checkpoint last written in ``run_dir`` (whatever its lineage: an
    older checkpoint resumed starts a new lineage, and ``latest`` follows it); otherwise
    ``spec`` as a path."""
    if spec == "latest":
        found = _latest(run_dir)
        if not found:
            raise CheckpointError(f"--resume latest: no checkpoint in {checkpoint_dir(run_dir)}")
        return found
    if not os.path.exists(spec):
        raise CheckpointError(f"checkpoint not found: {spec}")
    return spec


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_temps(directory):
    """Remove temporary checkpoint files left by dead writers (on this host); returns their names."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for n in names:
        m = _TMP.match(n) or re.match(r"^\.LATEST\.tmp-(\d+)$", n)
        if m and (int(m.group(1)) == os.getpid() or not _pid_alive(int(m.group(1)))):
            _remove(os.path.join(directory, n))
            removed.append(n)
    return removed


def _versions():
    import h5py

    from . import __version__
    from .comm.communicator import mpi_library_info

    return {"hpctrain_version": __version__, "numpy_version": np.__version__,
            "h5py_version": h5py.__version__, "mpi4py_version": mpi_library_info()["mpi4py"]}


def _attr(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _canon(v):
    v = _attr(v)
    if isinstance(v, np.ndarray):
        return ["array", v.dtype.str, list(v.shape), hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()]
    if isinstance(v, bool):
        return ["int", int(v)]
    if isinstance(v, int):
        return ["int", v]
    if isinstance(v, float):
        return ["float", repr(v)]
    return [type(v).__name__, str(v)]


def _signature(attrs, manifest):
    """SHA-256 over every root attribute (but the signature) and every dataset's
    (name, dtype, shape, sha256): attributes and the file's layout are all covered."""
    body = {
        "attrs": {k: _canon(v) for k, v in sorted(attrs.items()) if k != _SIGNATURE},
        "datasets": [[n, dt, list(shape), digest] for n, dt, shape, digest in sorted(manifest)],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _blocks(shape, itemsize, limit=_BLOCK):
    """Index tuples covering an array of ``shape`` in C order, each at most ``limit`` bytes
    (or one element's row of the innermost axis)."""
    ndim = len(shape)
    if ndim == 0:
        yield ()
        return
    inner = 1
    k = ndim
    while k > 0 and inner * shape[k - 1] * itemsize <= limit:
        inner *= shape[k - 1]
        k -= 1
    if k == 0:
        yield tuple(slice(None) for _ in shape)
        return
    axis = k - 1  # split this axis into blocks; loop over every index of the axes before it
    step = max(1, limit // max(inner * itemsize, 1))
    for lead in np.ndindex(*shape[:axis]):
        for lo in range(0, shape[axis], step):
            yield tuple(lead) + (slice(lo, min(lo + step, shape[axis])),)


def _hash_dataset(ds, keep):
    """(sha256 of the dataset's C-ordered bytes, the array or None): read in bounded pieces."""
    h = hashlib.sha256()
    out = np.empty(ds.shape, dtype=ds.dtype) if keep else None
    if ds.size:
        for sel in _blocks(ds.shape, ds.dtype.itemsize):
            piece = np.ascontiguousarray(ds[sel])
            h.update(piece.tobytes())
            if keep:
                out[sel] = piece
    return h.hexdigest(), out


def write_checkpoint(path, snap):
    """Write ``snap`` to ``path`` atomically.

    The HDF5 image is built in memory (no HDF5 I/O can meet a full disk), written under a
    temporary name in the same directory, fsynced, read back and verified, then renamed
    over ``path``: a crash or a full disk at any moment leaves every previous checkpoint
    intact and no temporary file behind.

    Raises:
        OutputError: the file cannot be written (disk full, read-only, quota).
        CheckpointError: it did not verify after writing.
    """
    import h5py

    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    attrs = {"format_version": FORMAT_VERSION, **_versions(), **snap.meta, "config_toml": snap.config_toml,
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    manifest = []
    with h5py.File(f"mem-{secrets.token_hex(6)}.h5", "w", driver="core", backing_store=False) as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        for name, arr in snap.arrays.items():
            data = np.ascontiguousarray(arr)
            ds = f.create_dataset(name, data=data)
            digest = hashlib.sha256(data.tobytes()).hexdigest()
            ds.attrs["sha256"] = digest
            manifest.append((name, data.dtype.str, data.shape, digest))
        f.attrs[_SIGNATURE] = _signature({k: f.attrs[k] for k in f.attrs}, manifest)
        f.flush()
        image = f.id.get_file_image()
    try:
        os.makedirs(directory, exist_ok=True)
        clean_stale_temps(directory)
        free = _free_bytes(directory)
        if free is not None and free < len(image):
            raise OSError(errno.ENOSPC, f"No space left on device ({len(image)} bytes needed, {free} free)")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(image)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        problems = verify_checkpoint(tmp)
        if problems:
            raise CheckpointError(f"checkpoint {path} failed verification after writing: {problems[0]}")
        os.replace(tmp, path)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    finally:
        _remove(tmp)


def _free_bytes(directory):
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _open(path):
    import h5py

    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not HDF5)") from None


def _layout(f, path):
    """Names of the checkpoint's datasets after checking the layout: ``params`` and the
    groups ``state``/``train`` of datasets, hard links only (no soft or external links)."""
    import h5py

    names = []

    def walk(group, prefix, depth):
        for key in group.keys():
            name = f"{prefix}{key}"
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
                raise CheckpointError(f"{path}: {name} is {kind}; a checkpoint holds only its own data")
            obj = group.get(key)
            if isinstance(obj, h5py.Group):
                if depth > 0 or key not in _GROUPS:
                    raise CheckpointError(f"{path}: unexpected group {name}")
                walk(obj, name + "/", depth + 1)
            elif isinstance(obj, h5py.Dataset):
                if depth == 0 and key != "params":
                    raise CheckpointError(f"{path}: unexpected dataset {name}")
                names.append(name)
            else:
                raise CheckpointError(f"{path}: unexpected object {name}")

    walk(f, "", 0)
    if "params" not in names:
        what = "a group" if "params" in f else "missing"
        raise CheckpointError(f"{path}: dataset params is {what}; not a complete checkpoint")
    return sorted(names)


def _check_dataset(path, name, ds, world, file_size):
    """Shape/dtype/storage checks that need no data read."""
    dt = ds.dtype
    if dt.kind not in "fiu" or dt.fields is not None or dt.subdtype is not None:
        raise CheckpointError(f"{path}: dataset {name} has type {dt}; checkpoints hold only numbers")
    if ds.ndim < 1 or ds.shape[0] != world:
        raise CheckpointError(f"{path}: dataset {name} has shape {ds.shape}; its first axis must be "
                              f"world_size {world}")
    plist = ds.id.get_create_plist()
    if plist.get_nfilters() or plist.get_external_count() or ds.is_virtual:
        raise CheckpointError(f"{path}: dataset {name} is compressed, external or virtual; "
                              "hpctrain checkpoints are stored plain")
    nbytes = int(np.prod(ds.shape, dtype=object)) * dt.itemsize
    if nbytes > file_size:
        raise CheckpointError(f"{path}: dataset {name} declares {nbytes} bytes, more than the "
                              f"{file_size}-byte file holds")
    if "sha256" not in ds.attrs:
        raise CheckpointError(f"{path}: dataset {name} has no sha256 checksum")


def _check_meta(path, meta):
    for key, typ in REQUIRED_ATTRS.items():
        if key not in meta:
            raise CheckpointError(f"{path}: attribute {key} is missing; not a complete hpctrain checkpoint")
        if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
            raise CheckpointError(f"{path}: attribute {key} must be {typ.__name__}, got {meta[key]!r}")
    lows = {"world_size": 1, "step": 0, "epoch": 1, "step_in_epoch": 0, "steps_per_epoch": 1, "n_params": 1}
    for key, low in lows.items():
        if meta[key] < low:
            raise CheckpointError(f"{path}: attribute {key} = {meta[key]} is out of range (>= {low})")
    if meta["step_in_epoch"] > meta["steps_per_epoch"]:
        raise CheckpointError(f"{path}: step_in_epoch {meta['step_in_epoch']} exceeds steps_per_epoch "
                              f"{meta['steps_per_epoch']}")


def _scan(path, expected=None, accept=None, keep=True, problems=None):
    """Open, check and (when ``keep``) read a checkpoint.

    Order: layout and attributes (no data read), the attribute signature, the caller's
    ``accept(meta)`` and ``expected`` schema (name -> (per-rank shape, dtype)), then each
    dataset hashed in bounded pieces. With ``problems`` (a list), checksum mismatches are
    appended and the scan goes on; any other problem raises CheckpointError.
    """
    with _open(path) as f:
        try:
            attrs = {k: f.attrs[k] for k in f.attrs}
        except OSError:
            raise CheckpointError(f"{path}: unreadable attributes (truncated or corrupt)") from None
        meta = {k: _attr(v) for k, v in attrs.items()}
        if "format_version" not in meta:
            raise CheckpointError(f"{path}: not an hpctrain checkpoint (no format_version)")
        version = meta["format_version"]
        if not isinstance(version, int):
            raise CheckpointError(f"{path}: format_version must be int, got {version!r}")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format version {version} is newer than this hpctrain "
                f"supports ({FORMAT_VERSION}); upgrade hpctrain"
            )
        if version < FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format version {version} has no attribute checksum "
                                  f"(version {FORMAT_VERSION} needed); it cannot be verified")
        if _SIGNATURE not in meta:
            raise CheckpointError(f"{path}: no {_SIGNATURE} attribute; the attributes cannot be verified")
        _check_meta(path, meta)
        names = _layout(f, path)
        file_size = os.path.getsize(path)
        world = meta["world_size"]
        manifest = []
        for name in names:
            ds = f[name]
            _check_dataset(path, name, ds, world, file_size)
            manifest.append((name, ds.dtype.str, ds.shape, _attr(ds.attrs["sha256"])))
        if _signature(attrs, manifest) != meta[_SIGNATURE]:
            raise CheckpointError(f"{path}: attribute checksum mismatch (an attribute or the dataset list "
                                  "was changed); the file is corrupt")
        if f["params"].shape != (world, meta["n_params"]):
            raise CheckpointError(f"{path}: params has shape {f['params'].shape}, not (world_size, n_params) = "
                                  f"({world}, {meta['n_params']})")
        if accept is not None:
            accept(meta)
        if expected is not None:
            _check_expected(path, f, names, expected)
        arrays = {}
        for name in names:
            ds = f[name]
            try:
                got, data = _hash_dataset(ds, keep)
            except OSError:
                msg = f"{path}: dataset {name} is unreadable (truncated file)"
                if problems is None:
                    raise CheckpointError(msg) from None
                problems.append(msg)
                continue
            if got != _attr(ds.attrs["sha256"]):
                msg = f"{path}: checksum mismatch in dataset {name}; the file is corrupt"
                if problems is None:
                    raise CheckpointError(msg)
                problems.append(msg)
                continue
            if keep:
                if data.dtype.kind == "f" and not np.isfinite(data).all():
                    raise CheckpointError(f"{path}: dataset {name} holds NaN or Inf; resume from an earlier "
                                          "checkpoint")
                arrays[name] = data
    config_toml = meta.pop("config_toml")
    return Snapshot(meta, config_toml, arrays)


def _check_expected(path, f, names, expected):
    missing = sorted(set(expected) - set(names))
    if missing:
        raise CheckpointError(f"{path} lacks {missing[0]}; it was not written for this algorithm")
    extra = sorted(set(names) - set(expected))
    if extra:
        raise CheckpointError(f"{path} holds {extra[0]}, which this run's algorithm does not use")
    for name in names:
        shape, dtype = expected[name]
        ds = f[name]
        if ds.dtype != np.dtype(dtype):
            raise CheckpointError(f"{path}: {name} is {ds.dtype}, this run uses {np.dtype(dtype)} "
                                  "(--dtype must match the checkpoint)")
        if tuple(ds.shape[1:]) != tuple(shape):
            raise CheckpointError(f"{path}: {name} has per-rank shape {tuple(ds.shape[1:])}, this run's is "
                                  f"{tuple(shape)}")


def verify_checkpoint(path):
    """Check the layout, every attribute and every dataset's checksum without keeping the
    data (memory bounded by the block size); returns a list of problems (empty if sound)."""
    problems = []
    try:
        _scan(path, keep=False, problems=problems)
    except CheckpointError as exc:
        problems.append(str(exc))
    except OSError as exc:
        problems.append(f"unreadable ({exc})")
    return [p.removeprefix(f"{path}: ").removeprefix(f"{path} ") for p in problems]


def read_checkpoint(path, expected=None, accept=None):
    """Read and verify a checkpoint; raises CheckpointError on any problem.

    Args:
        expected: optional name -> (per-rank shape, dtype) of the run that resumes: the
            file must hold exactly these datasets, with these shapes and dtypes (checked
            before any data is read).
        accept: optional ``accept(meta)`` called once the attributes are verified (the
            run's own compatibility checks), before any data is read.
    """
    try:
        return _scan(path, expected, accept)
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None


def prune_checkpoints(run_dir, keep, lineage=None, protect=()):
    """Delete all but the ``keep`` newest checkpoints of ``lineage`` (keep <= 0 keeps all).

    Only files of that lineage are candidates (other lineages are other runs' lines, never
    touched) and no path in ``protect`` (the checkpoint this run resumed from) is deleted.
    """
    if keep <= 0:
        return
    safe = {os.path.realpath(p) for p in protect if p}
    for path in list_checkpoints(run_dir, lineage)[:-keep]:
        if os.path.realpath(path) not in safe:
            _remove(path)


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
