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
from .compress import COMPRESSORS
from .errors import ConfigError

__all__ = ["TrainConfig", "load_config", "config_to_toml", "validate", "parse_period", "option_specs", "ALGO_NAMES"]


def _f(default, help, choices=None, check=None, short=None):
    return field(default=default, metadata={"help": help, "choices": choices, "check": check, "short": short})


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
                         choices=tuple(COMPRESSORS))
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
    seed: int = _f(0, "random seed (data order, initialisation)", check=_nonneg)
    dtype: str = _f("float32", "parameter/gradient precision", choices=("float32", "float64"))
    threads: int = _f(0, "BLAS threads per rank (0: the node's cores / ranks on the node)", check=_nonneg)
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


def _check_type(name, value):
    want = _FIELDS[name].type
    want = _TYPES.get(want, want)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is int and isinstance(value, bool) or not isinstance(value, want):
        raise ConfigError(f"{name} must be {want.__name__}, got {type(value).__name__} {value!r}")
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
    _check_data_options(cfg)
    cls = ALGORITHMS[cfg.algo]
    allowed = cls.compressors
    if allowed and cfg.compressor not in allowed:
        raise ConfigError(f"algo {cfg.algo} takes compressor {', '.join(allowed)}; got {cfg.compressor!r}")
    aggs = cls.aggregations
    if cfg.aggregation not in aggs:
        raise ConfigError(f"algo {cfg.algo} supports aggregation {', '.join(aggs)}; got {cfg.aggregation!r}")
    return cfg


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
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        if isinstance(data.get("train"), dict):
            data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
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


def config_to_toml(cfg):
    """The full resolved configuration as TOML text (``[train]`` table)."""
    return tomli_w.dumps({"train": cfg.to_dict()})
