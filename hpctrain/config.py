"""Training configuration: one dataclass, loaded from TOML, overridden by flags, validated.

Config keys are the CLI flags with ``_`` for ``-`` (``batch_size`` <-> ``--batch-size``).
Every problem raises :class:`~hpctrain.errors.ConfigError` with one clear sentence.
"""

import dataclasses
import difflib
import math
import sys
from dataclasses import dataclass, field, fields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from .algorithms import ALGORITHMS
from .collectives import ALLREDUCE
from .compress import COMPRESSORS, RENAMED
from .errors import ConfigError
from .memory import parse_memory

__all__ = ["TrainConfig", "BoolOrAuto", "load_config", "config_to_toml", "validate", "parse_period", "option_specs",
           "ALGO_NAMES"]


def _f(default, help, choices=None, check=None, short=None):
    return field(default=default, metadata={"help": help, "choices": choices, "check": check, "short": short})


class BoolOrAuto:
    """Field type of a switch with a third setting: ``true``, ``false`` or ``"auto"`` (the
    run decides; what it chose is recorded in the run's config.toml). On the command line
    ``--NAME/--no-NAME``; not giving either keeps the file's value or the default."""


#: every --algo name, from the registry (each class declares its compressors and aggregations)
ALGO_NAMES = tuple(ALGORITHMS)

_positive = (lambda v: v > 0, "must be > 0")
_nonneg = (lambda v: v >= 0, "must be >= 0")


@dataclass
class TrainConfig:
    """Every setting of a training run (defaults: the Quickstart's Fashion-MNIST run)."""

    algo: str = _f("dmsgd", "training algorithm (see hpctrain/algorithms/__init__.py)", choices=ALGO_NAMES)
    collective: str = _f("auto", "allreduce implementation (hpctrain/collectives); auto: recursive doubling "
                         "below the alpha-beta crossover, ring above", choices=tuple(ALLREDUCE))
    device: str = _f("cpu", "where arrays live: cpu (NumPy) or gpu (CuPy, one GPU per rank by local rank)",
                     choices=("cpu", "gpu"))
    transport: str = _f("auto", "how GPU buffers reach MPI: cuda-aware, staged (pinned host copies), auto, host",
                        choices=("auto", "cuda-aware", "staged", "host"))
    model: str = _f("softmax", "model: softmax, mlp, cnn, resnet8, a layer string (conv:32:3,relu,maxpool:2,"
                    "flatten,linear:10), python:PATH:FACTORY or torch:PATH:FACTORY (docs/models.md)",
                    check=(lambda v: bool(v.strip()), "must not be empty"))
    hidden: int = _f(128, "hidden units of the mlp model (one ReLU layer)", check=_positive)
    dataset: str = _f("fashion-mnist", "fashion-mnist, synthetic, libsvm:PATH, hdf5:PATH, or a directory of IDX files")
    data_dir: str = _f("", "directory holding the Fashion-MNIST IDX files")
    epochs: int = _f(5, "passes over the training set", check=_positive)
    batch_size: int = _f(128, "mini-batch size per worker", check=_positive)
    lr: float = _f(0.05, "learning rate (eta)", check=_positive)
    momentum: float = _f(0.9, "momentum factor (beta), in [0, 1)", check=(lambda v: 0 <= v < 1, "must be in [0, 1)"))
    weight_decay: float = _f(1e-4, "L2 weight decay", check=_nonneg)
    lr_schedule: str = _f("constant", "lr schedule", choices=("constant", "stagewise", "step"))
    lr_stage_epochs: int = _f(10, "epochs per stage (stagewise: lr0/(s+1); step: lr0*lr_decay^s)", check=_positive)
    lr_decay: float = _f(0.1, "step schedule factor", check=(lambda v: 0 < v <= 1, "must be in (0, 1]"))
    warmup_epochs: float = _f(0.0, "linear lr warm-up length in epochs", check=_nonneg)
    compressor: str = _f("topk", "compression operator / mask of the compressed algorithms; qsgd = QSGD "
                         "(Alistarh et al.: l2 norm, sign, s = 2^(b-1)-1 levels and zero), minmax = the survey's "
                         "min/max quantizer (eq 3.1, 2^b knobs between the bucket's min and max)",
                         choices=tuple(COMPRESSORS) + tuple(RENAMED),
                         check=(lambda v: v not in RENAMED,
                                "was renamed: " + ", ".join(f"{a} is now {b}" for a, b in RENAMED.items())))
    density: float = _f(0.01, "fraction of coordinates sent, s/d, in (0, 1]", check=(lambda v: 0 < v <= 1, "must be in (0, 1]"))
    bits: int = _f(8, "bits per coordinate (b) of qsgd (2, 4, 8: sign + level, s = 2^(b-1)-1) or minmax "
                   "(1, 2, 4, 8: 2^b knobs)",
                   check=(lambda v: v in (1, 2, 4, 8), "must be one of 1, 2, 4, 8"))
    aggregation: str = _f("allreduce", "how compressed updates are aggregated (gmc, csgd, ecsgd, doublesqueeze)",
                          choices=("allreduce", "ps", "ring"))
    sparsity_warmup_epochs: float = _f(0.0, "DGC sparsity warm-up: density falls from 0.25 to --density over these epochs", check=_nonneg)
    clip: float = _f(0.0, "DGC local gradient clipping: max gradient norm over all ranks (0 = off)", check=_nonneg)
    sync_period: int = _f(8, "local steps between synchronizations (I of PR-SGD, H of local SGD / AdaAlter)", check=_positive)
    rank: int = _f(2, "PowerSGD approximation rank r of every compressed matrix (clamped to min(rows, cols) "
                   "per matrix)", check=_positive)
    powersgd_start: int = _f(0, "PowerSGD: steps of uncompressed averaging before compression starts (the "
                             "start iteration of PyTorch's powerSGD_hook)", check=_nonneg)
    nesterov: bool = _f(False, "Nesterov momentum (Option II of PR-SGD-Momentum / decentralized momentum)")
    adagrad_eps: float = _f(1e-2, "AdaGrad / AdaAlter epsilon (denominator B^2 + t' eps^2)", check=_positive)
    adagrad_b0: float = _f(1.0, "AdaGrad / AdaAlter initial denominator b0 (B^2 starts at b0^2)", check=_nonneg)
    adaalter_warmup: int = _f(0, "AdaAlter lr warm-up steps: lr * min(1, t / warmup) (0 = off)", check=_nonneg)
    topology: str = _f("ring", "mixing graph of dpsgd/dmomentum (ring: W = 1/3 self and neighbours; complete: J/n)",
                       choices=("ring", "torus", "exponential", "complete", "star"))
    topology_file: str = _f("", "custom mixing matrix W (.npy or .csv) for dpsgd/dmomentum; overrides --topology")
    staleness: int = _f(0, "asgd bounded staleness tau: the server rejects gradients older than tau steps", check=_nonneg)
    partition: str = _f("iid", "how the training set is split over ranks", choices=("iid", "label-sorted", "dirichlet"))
    dirichlet_alpha: float = _f(0.5, "Dirichlet concentration for partition = dirichlet", check=_positive)
    test_dataset: str = _f("", "separate test file for libsvm:/hdf5: data sets")
    normalize: str = _f("auto", "input scaling: auto (integer data such as uint8 images divided by 255, float data "
                        "as stored), none, unit (integer data / type max, float data / largest magnitude), standard "
                        "(per-feature mean 0, std 1 over the training set)",
                        choices=("auto", "none", "unit", "standard"))
    max_samples: int = _f(0, "train on a seeded subset of this many training samples, the same on every rank "
                          "(0 = all)", check=_nonneg)
    max_steps: int = _f(0, "stop after this many steps in total, even inside an epoch (0 = run every epoch)",
                        check=_nonneg)
    seed: int = _f(0, "random seed (data order, initialisation)", check=_nonneg)
    dtype: str = _f("float32", "parameter/gradient precision", choices=("float32", "float64"))
    overlap: BoolOrAuto = _f("auto", "reduce the gradient bucket by bucket during backward on a communication "
                             "thread (algorithms that average the gradient, e.g. dsgd, dmsgd, adagrad, on layer models "
                             "such as cnn or resnet8, with MPI_THREAD_MULTIPLE). Neither flag: auto, on where every "
                             "rank has a free core for the thread (the ranks sharing its cores have at least 2 cores "
                             "each; unbound ranks: cores >= 2 x ranks on the node; with the cores full it measured "
                             "slower); --overlap forces it, --no-overlap turns it off (config: "
                             "true, false or \"auto\"); the banner says when it is off and why")
    fp16_allreduce: bool = _f(False, "dense 16-bit baseline: the gradient's allreduce carries IEEE half precision "
                              "(divided by the ranks, rounded to float16, summed in float16 by the collective, "
                              "widened back; PyTorch DDP's fp16_compress_hook): half the bytes; algorithms that "
                              "average the gradient (dsgd, dmsgd, adagrad)")
    bucket_size: float = _f(0.0, "MiB per gradient bucket after a small first one of 0.25 MiB (0: 25 MiB as "
                            "PyTorch DDP, or a quarter of a smaller model); with --no-overlap a size > 0 reduces "
                            "the buckets one after another after backward", check=_nonneg)
    threads: int = _f(0, "BLAS threads per rank (0: the node's cores / ranks on the node; at most 1024)",
                      check=(lambda v: 0 <= v <= 1024, "must be in [0, 1024]"))
    stall_warning: float = _f(60.0, "seconds a rank may wait in a collective before rank 0 names the ranks that "
                              "have not arrived and where they are (0 = off)", check=_nonneg)
    stall_timeout: float = _f(0.0, "seconds of such a wait after which the job is aborted with that message, exit "
                              "status 4 (0 = never)", check=_nonneg)
    max_memory: str = _f("", "memory one rank may use, e.g. '8G' (default: the node's available memory / ranks on "
                         "the node); the pre-flight refuses a run that needs more, before allocating")
    checkpoint_every: str = _f("", "checkpoint period: N steps or N epochs, e.g. '200steps', '1epochs' ('' = off)")
    keep: int = _f(3, "checkpoints to keep (0 = all)", check=_nonneg)
    resume: str = _f("", "checkpoint to resume from: a path or 'latest' (newest in the run directory)")
    out: str = _f("", "run directory (default runs/run-YYYYmmdd-HHMMSS)")
    overwrite: bool = _f(False, "reuse an existing run directory")
    quiet: bool = _f(False, "no progress bar or per-epoch lines", short="-q")
    trace: str = _f("", "write a per-rank timeline (Chrome trace-event JSON, all ranks merged) to this file")

    def to_dict(self):
        """The configuration as a plain dict."""
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def option_specs():
    """One dict per TrainConfig field, in declaration order, for building command-line
    flags: ``name`` (config key), ``flag`` (``--batch-size``), ``type`` (int, float, str,
    bool), ``default``, ``help``, ``choices`` (or None) and ``short`` (e.g. ``-q``)."""
    defaults = TrainConfig()
    return [{"name": f.name, "flag": "--" + f.name.replace("_", "-"), "type": _TYPES.get(f.type, f.type),
             "default": getattr(defaults, f.name), "help": f.metadata["help"], "choices": f.metadata["choices"],
             "short": f.metadata["short"]} for f in fields(TrainConfig)]


#: every integer is stored as a signed 64-bit value (checkpoint attributes, NumPy seeds)
INT_RANGE = (-(2**63), 2**63 - 1)


def _shown(value):
    """A value's type and repr for an error line, at most 60 characters of repr."""
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 60 else shown[:57] + '...'}"


def _check_type(name, value):
    """``value`` as field ``name``'s declared type: no bool for int or int for bool, no
    list or table for a string, integers within 64 bits, strings without NUL bytes."""
    want = _FIELDS[name].type
    want = _TYPES.get(want, want)
    if want is BoolOrAuto:
        if isinstance(value, bool) or (isinstance(value, str) and value == "auto"):
            return value
        raise ConfigError(f"{name} must be true, false or \"auto\", got {_shown(value)}")
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**1023:
            raise ConfigError(f"{name} must be a finite number, got an integer of {value.bit_length()} bits")
        return float(value)
    if (want is int and isinstance(value, bool)) or (want is bool and not isinstance(value, bool)) or \
            not isinstance(value, want):
        raise ConfigError(f"{name} must be {want.__name__}, got {_shown(value)}")
    if want is int and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise ConfigError(f"{name} must fit in 64 bits (|{name}| < 2^63), got an integer of {value.bit_length()} bits")
    if want is str and "\0" in value:
        raise ConfigError(f"{name} {value!r} holds a NUL byte")
    return value


def parse_period(text):
    """``'200steps'`` -> (200, 'steps'); ``'2epochs'``/``'1epoch'`` -> (2, 'epochs');
    ``'50'`` -> (50, 'steps'); ``''`` -> None (off)."""
    import re

    if text == "":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(steps?|epochs?)?\s*", text)
    if not m or int(m.group(1)) <= 0:
        raise ConfigError(f"checkpoint_every must look like '200steps' or '1epochs', got {text!r}")
    unit = (m.group(2) or "steps").rstrip("s") + "s"
    return int(m.group(1)), unit


def validate(cfg):
    """Check every field's type, choices and range; returns ``cfg``."""
    for name, f in _FIELDS.items():
        value = _check_type(name, getattr(cfg, name))
        setattr(cfg, name, value)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        check = f.metadata.get("check")
        if check and not check[0](value):
            raise ConfigError(f"{name} {check[1]}, got {value!r}")
    parse_period(cfg.checkpoint_every)
    parse_memory(cfg.max_memory)
    _check_model_spec(cfg.model)
    _check_data_options(cfg)
    cls = ALGORITHMS[cfg.algo]
    allowed = cls.compressors
    if allowed and cfg.compressor not in allowed:
        why = cls.refusal(COMPRESSORS[cfg.compressor])  # by capability
        raise ConfigError(f"{why} (it takes compressor {', '.join(allowed)})")
    if cfg.fp16_allreduce and cls.bucketing != "free":
        raise ConfigError(f"--fp16-allreduce: algo {cfg.algo} does not average the gradient with one allreduce "
                          "(dsgd, dmsgd and adagrad do; compressed algorithms take --compressor fp16)")
    aggs = cls.aggregations
    if cfg.aggregation not in aggs:
        raise ConfigError(f"algo {cfg.algo} supports aggregation {', '.join(aggs)}; got {cfg.aggregation!r}")
    return cfg


def _check_model_spec(spec):
    """``python:``/``torch:`` references: a file path must name a Python source (``.py``)."""
    kind, sep, ref = spec.partition(":")
    if not sep or kind not in ("python", "torch"):
        return
    where = ref.rpartition(":")[0]
    if where and "/" in where and not where.endswith(".py"):
        raise ConfigError(f"model {spec!r}: {where} is not a Python source file (give PATH.py:FACTORY "
                          "or MODULE:FACTORY)")


def _check_data_options(cfg):
    """Options that only some data sets read are refused elsewhere, never ignored."""
    if cfg.data_dir and cfg.dataset != "fashion-mnist":
        raise ConfigError(f"data_dir applies to dataset fashion-mnist only, not {cfg.dataset!r} "
                          "(give a directory of IDX files as --dataset DIR)")
    if cfg.test_dataset and cfg.dataset.partition(":")[0] not in ("libsvm", "hdf5", "h5"):
        raise ConfigError(f"test_dataset applies to libsvm:/hdf5: data sets only, not {cfg.dataset!r}")


#: common names from other trainers for hpctrain's keys (difflib cannot see these)
_SYNONYMS = {"learning_rate": "lr", "learningrate": "lr", "eta": "lr", "num_epochs": "epochs", "n_epochs": "epochs",
             "max_epochs": "epochs", "epoch": "epochs", "bs": "batch_size", "batch": "batch_size",
             "wd": "weight_decay", "l2": "weight_decay", "beta": "momentum", "optimizer": "algo",
             "algorithm": "algo", "output": "out", "output_dir": "out", "out_dir": "out", "run_dir": "out",
             "data": "dataset", "data_path": "data_dir", "checkpoint": "resume", "precision": "dtype",
             "compression": "compressor", "topk_ratio": "density", "ratio": "density", "num_threads": "threads"}


def _unknown_key(key):
    norm = key.lower().replace("-", "_")
    if norm in _SYNONYMS:
        return ConfigError(f"unknown config key {key!r} (did you mean {_SYNONYMS[norm]!r}?)")
    close = difflib.get_close_matches(norm, list(_FIELDS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}")


def load_config(path=None, overrides=None):
    """Build a validated :class:`TrainConfig` from a TOML file and flag overrides.

    Args:
        path: TOML file (flat keys, or a ``[train]`` table), or None.
        overrides: dict of values from the command line; None values are ignored.

    Returns:
        The validated config.
    """
    values = {}
    if path:
        data = _read_toml(path)
        if isinstance(data.get("train"), dict):
            top = {k: v for k, v in data.items() if k != "train"}
            for key, value in data["train"].items():
                if key in top and top[key] != value:
                    raise ConfigError(f"{path}: {key} is {top[key]!r} at the top level but {value!r} in [train]; "
                                      "give it once")
            data = {**top, **data["train"]}
        for key, value in data.items():
            if key not in _FIELDS:
                raise _unknown_key(key)
            values[key] = value
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in _FIELDS:
            raise _unknown_key(key)
        values[key] = value
    return validate(TrainConfig(**values))


def _read_toml(path):
    """The TOML document at ``path``; every failure is one ConfigError line."""
    from .files import check_input

    check_input(path, "config file", ConfigError)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); a TOML file is UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None


def config_to_toml(cfg):
    """The full resolved configuration as TOML text (``[train]`` table)."""
    return tomli_w.dumps({"train": cfg.to_dict()})
