"""Safe input and output paths: what hpctrain reads and writes outside its run directory.

An output (``--trace``, ``bench --json/--csv``, ``plot -o``) never overwrites an input of
the same run (data, test data, mixing matrix, config, checkpoint being resumed), a file the
run manages itself (``metrics.jsonl``, ``summary.json``, ``config.toml``, checkpoints), or
anything that is not a regular file (a device such as ``/dev/null``, a FIFO, a socket, a
directory). It is checked before any work starts (including that its directory is
writable), and written atomically: a temporary file in the same directory, then a rename,
so a failure never leaves a partial file in its place.

An input is read only when it is a regular file: a FIFO would block ``open`` forever, a
device would be read without end.
"""

import contextlib
import os
import stat

from .errors import ConfigError, DataError, OutputError

__all__ = ["check_text_path", "check_input", "check_output", "check_run_files", "run_inputs", "probe_writable", "write_atomic", "io_errors", "MANAGED"]

#: the files a run directory's own run writes (an output path must not name them)
MANAGED = ("metrics.jsonl", "summary.json", "config.toml")


def check_text_path(path, what, error=ConfigError):
    """Refuse a path holding a NUL byte (no file system accepts one)."""
    if "\0" in os.fspath(path):
        raise error(f"{what} {path!r} holds a NUL byte; give a real path")


def _kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_input(path, what="data file", error=DataError):
    """Raise ``error`` unless ``path`` names an existing regular file (symbolic links are
    followed): missing files, directories, FIFOs and devices get one line, never a hang."""
    check_text_path(path, what, error)
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is {_kind(st.st_mode)}; give a regular file")
    return path


def _same(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path, directory):
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    try:
        return os.path.commonpath([path, directory]) == directory
    except ValueError:
        return False


def check_output(path, what, inputs=(), run_dir=None):
    """Check, before any work, that ``path`` may be written.

    Args:
        path: the output file.
        what: its name for the message (e.g. ``--trace``).
        inputs: paths this run reads (files or directories; empty strings ignored).
        run_dir: the run directory whose managed files and checkpoints are off limits.

    Raises:
        ConfigError: the path names an input, a managed file, a special file or a
            directory, or its directory does not exist or is not writable.
    """
    check_text_path(path, what)
    path = os.fspath(path)
    if not path:
        raise ConfigError(f"{what} needs a file name")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} {path} is {_kind(st.st_mode)}; give a regular file name")
    for inp in inputs:
        if not inp or not os.path.exists(inp):
            continue
        if os.path.isdir(inp) and st is not None and _inside(path, inp) or _same(path, inp):
            raise ConfigError(f"{what} {path} would overwrite the input {inp}; choose another file")
    if run_dir:
        from .checkpoint import checkpoint_dir

        managed = [os.path.join(run_dir, name) for name in MANAGED]
        if any(_same(path, m) or os.path.realpath(path) == os.path.realpath(m) for m in managed) or \
                _inside(path, checkpoint_dir(run_dir)):
            raise ConfigError(f"{what} {path} is a file the run writes itself (in {run_dir}); choose another file")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"{what} {path}: directory {parent} does not exist")
    try:
        probe_writable(parent)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: directory {parent} is not writable ({exc.strerror})") from None
    return path


def probe_writable(directory):
    """Create and remove a file in ``directory`` (as root, permission bits alone do not
    tell); raises the OSError that a real write would meet."""
    probe = os.path.join(directory, f".hpctrain-probe-{os.getpid()}")
    with open(probe, "x"):
        pass
    os.remove(probe)


@contextlib.contextmanager
def io_errors(path):
    """Turn an OSError (disk full, read-only, quota) into one line naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_atomic(path, data):
    """Write ``data`` (str or bytes) to ``path`` through a temporary file in the same
    directory and a rename: never a 0-byte or partial file, and never into a device or
    FIFO (a special file at ``path`` is refused, not replaced)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"cannot write {path}: it is {_kind(st.st_mode)}")
    except FileNotFoundError:
        pass
    except OSError:
        pass  # reported by the write below
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    mode = "wb" if isinstance(data, (bytes, bytearray)) else "w"
    try:
        with io_errors(path):
            with open(tmp, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def check_run_files(run_dir):
    """Refuse a run directory whose managed files (or checkpoints folder) exist as something
    other than regular files (a FIFO there would block the run's first write)."""
    from .checkpoint import checkpoint_dir

    for name in MANAGED:
        p = os.path.join(run_dir, name)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):  # writing through it would replace whatever it points to
            raise ConfigError(f"run directory {run_dir}: {name} is a symbolic link; remove it or choose "
                              "another --out")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"run directory {run_dir}: {name} is {_kind(st.st_mode)}; remove it or choose "
                              "another --out")
    ck = checkpoint_dir(run_dir)
    if os.path.lexists(ck) and not os.path.isdir(ck):
        raise ConfigError(f"run directory {run_dir}: checkpoints is not a directory; remove it or choose another --out")


def run_inputs(cfg):
    """Every path a training run reads: data, test data, IDX directory, mixing matrix,
    model file, the checkpoint resumed and the configuration file."""
    paths = [cfg.test_dataset.partition(":")[2] if ":" in cfg.test_dataset else cfg.test_dataset,
             cfg.data_dir, cfg.topology_file, getattr(cfg, "config_path", "") or ""]
    kind, sep, rest = cfg.dataset.partition(":")
    paths.append(rest if sep else cfg.dataset)
    kind, sep, rest = cfg.model.partition(":")
    if sep and kind in ("python", "torch"):
        paths.append(rest.rpartition(":")[0] or rest)
    if cfg.resume and cfg.resume != "latest":
        paths.append(cfg.resume)
    return [p for p in paths if p and p not in ("synthetic", "fashion-mnist")]
