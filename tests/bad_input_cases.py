"""The bad-input cases: each is a command that must print one clear line on stderr and
exit with status 2. tests/test_bad_input.py runs them and checks docs/errors.md against
their real messages (HPCTRAIN_UPDATE_DOCS=1 rewrites the file)."""

import hashlib
import os

import h5py
import numpy as np

from case import Case
from ckpt_tools import resign, set_attr
from red_team_cases import RED_TEAM

__all__ = ["CASES", "Case"]


def _train(*args):
    return lambda tmp: ["train", "--dataset", "synthetic", "--epochs", "1", "--out", f"{tmp}/run", *args]


def _model_file(text, kind, factory):
    def setup(tmp):
        with open(f"{tmp}/m.py", "w") as f:
            f.write(text)
        return _train("--model", f"{kind}:{tmp}/m.py:{factory}")(tmp)
    return setup


def _toml(text):
    def setup(tmp):
        with open(f"{tmp}/bad.toml", "w") as f:
            f.write(text)
        return ["train", f"{tmp}/bad.toml", "--out", f"{tmp}/run"]
    return setup


def _write_idx(path, arr, magic=None):
    arr = np.asarray(arr, dtype=np.uint8)
    head = magic or bytes([0, 0, 8, arr.ndim])
    with open(path, "wb") as f:
        f.write(head + np.array(arr.shape, dtype=">u4").tobytes() + arr.tobytes())


def _idx_dir(tmp, damage=None):
    d = f"{tmp}/idx"
    os.makedirs(d, exist_ok=True)
    for stem, n in (("train", 40), ("t10k", 10)):
        _write_idx(f"{d}/{stem}-images-idx3-ubyte", np.zeros((n, 2, 2)))
        _write_idx(f"{d}/{stem}-labels-idx1-ubyte", np.arange(n) % 10)
    if damage == "truncate":
        p = f"{d}/train-images-idx3-ubyte"
        data = open(p, "rb").read()
        open(p, "wb").write(data[:-7])
    if damage == "magic":
        _write_idx(f"{d}/t10k-labels-idx1-ubyte", np.zeros(10), magic=bytes([0x1F, 0x8B + 1, 8, 1]))
    if damage == "missing":
        os.remove(f"{d}/t10k-images-idx3-ubyte")
    return ["train", "--dataset", d, "--batch-size", "4", "--out", f"{tmp}/run"]


def _libsvm(train, test=None):
    def setup(tmp):
        with open(f"{tmp}/a.svm", "w") as f:
            f.write(train)
        args = ["train", "--dataset", f"libsvm:{tmp}/a.svm", "--batch-size", "1", "--out", f"{tmp}/run"]
        if test is not None:
            with open(f"{tmp}/t.svm", "w") as f:
                f.write(test)
            args += ["--test-dataset", f"{tmp}/t.svm"]
        return args
    return setup


def _h5_dim_mismatch(tmp):
    with h5py.File(f"{tmp}/d.h5", "w") as f:
        f["x"], f["y"] = np.zeros((20, 4)), np.arange(20) % 2
        f["x_test"], f["y_test"] = np.zeros((5, 3)), np.arange(5) % 2
    return ["train", "--dataset", f"hdf5:{tmp}/d.h5", "--batch-size", "2", "--out", f"{tmp}/run"]


def _ckpt(tmp):
    """A real checkpoint of a 1-epoch synthetic dmsgd run (made once per test session)."""
    return os.environ["HPCTRAIN_TEST_CKPT"]


def _resume_from(edit=None, extra=()):
    def setup(tmp):
        src = _ckpt(tmp)
        dst = f"{tmp}/ckpt.h5"
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
        if edit:
            edit(dst)
        return ["train", "--dataset", "synthetic", "--epochs", "2", "--out", f"{tmp}/run", "--resume", dst, *extra]
    return setup


def _truncate(p):
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 3])


def _flip(p):
    with h5py.File(p, "r") as f:
        off = f["params"].id.get_offset()
    data = bytearray(open(p, "rb").read())
    data[off + 8] ^= 0x40
    open(p, "wb").write(bytes(data))


def _attr(key, value, sign=True):
    """Edit a root attribute; re-signed, this models a genuine checkpoint of another run."""
    def edit(p):
        set_attr(p, key, value, sign)
    return edit


def _w_file(rows, name="W.csv"):
    def setup(tmp):
        with open(f"{tmp}/{name}", "w") as f:
            f.write(rows)
        return ["train", "--algo", "dpsgd", "--topology-file", f"{tmp}/{name}", "--dataset", "synthetic",
                "--epochs", "1", "--out", f"{tmp}/run"]
    return setup


def _resume_dpsgd_other_size(tmp):
    return ["train", "--algo", "dpsgd", "--dataset", "synthetic", "--epochs", "2", "--out", f"{tmp}/run",
            "--resume", os.environ["HPCTRAIN_TEST_CKPT_DPSGD"]]


def _existing_run(tmp):
    os.makedirs(f"{tmp}/run", exist_ok=True)
    open(f"{tmp}/run/metrics.jsonl", "w").write('{"epoch": 1}\n')
    return ["train", "--dataset", "synthetic", "--out", f"{tmp}/run"]


def _out_under_file(tmp):
    open(f"{tmp}/afile", "w").close()
    return ["train", "--dataset", "synthetic", "--out", f"{tmp}/afile/run"]


def _h5_data(make, ranks_note=""):
    """An HDF5 data set whose 'x'/'y' ``make(f)`` writes (a valid small set unless replaced)."""
    def setup(tmp):
        with h5py.File(f"{tmp}/d.h5", "w") as f:
            make(f, tmp)
            for k, v in (("x", np.zeros((20, 4), np.float32)), ("y", np.arange(20) % 2)):
                if k not in f and k not in getattr(f, "_skip", ()):
                    f[k] = v
        return ["train", "--dataset", f"hdf5:{tmp}/d.h5", "--batch-size", "2", "--out", f"{tmp}/run"]
    return setup


def _x(value):
    def make(f, tmp):
        f["x"] = value
    return make


def _x_external(f, tmp):
    with h5py.File(f"{tmp}/other.h5", "w") as g:
        g["x"] = np.zeros((20, 4))
    f["x"] = h5py.ExternalLink(f"{tmp}/other.h5", "/x")


def _x_huge(f, tmp):
    f.create_dataset("x", shape=(20, 225_000_000), dtype="f4", chunks=(1, 1 << 20))  # 18 GB declared, 0 written


def _y_huge(f, tmp):
    f["y"] = np.where(np.arange(20) == 3, 2_000_000_000, np.arange(20) % 2)


def _x_nan(f, tmp):
    x = np.zeros((20, 4), np.float32)
    x[5, 1] = np.nan
    f["x"] = x


def _idx_header(ndim_dims):
    def setup(tmp):
        _idx_dir(tmp)
        p = f"{tmp}/idx/t10k-labels-idx1-ubyte"
        ndim, dims = ndim_dims
        with open(p, "wb") as f:
            f.write(bytes([0, 0, 8, ndim]) + np.array(dims, dtype=">u4").tobytes() + b"\0" * 16)
        return ["train", "--dataset", f"{tmp}/idx", "--batch-size", "4", "--out", f"{tmp}/run"]
    return setup


def _ckpt_edit(fn, extra=()):
    """Resume from a copy of the session's checkpoint after ``fn(h5file)`` (re-signed)."""
    def edit(p):
        with h5py.File(p, "a") as f:
            fn(f)
        resign(p)
    return _resume_from(edit, extra)


def _params_group(f):
    del f["params"]
    f.create_group("params")


def _params_soft_loop(f):
    del f["params"]
    f["params"] = h5py.SoftLink("/params")


def _params_external(f):
    del f["params"]
    f["params"] = h5py.ExternalLink("/nonexistent/other.h5", "/params")


def _params_crafted(shape, fill, compression=None):
    def fn(f):
        del f["params"]
        ds = f.create_dataset("params", shape=shape, dtype="f4", compression=compression)
        if fill is not None:
            ds[...] = fill
            ds.attrs["sha256"] = hashlib.sha256(ds[()].tobytes()).hexdigest()
        else:
            ds.attrs["sha256"] = "0" * 64
    return fn


def _other_model(f):
    """A genuine-looking checkpoint of a 784-feature softmax: params (1, 7850) and n_params 7850."""
    _params_crafted((1, 7850), 0.0)(f)
    del f["state/velocity"]
    f["state/velocity"] = np.zeros((1, 7850), np.float32)
    f["state/velocity"].attrs["sha256"] = hashlib.sha256(np.zeros((1, 7850), np.float32).tobytes()).hexdigest()
    f.attrs["n_params"] = 7850


def _only_format_version(p):
    os.remove(p)
    with h5py.File(p, "w") as f:
        f.attrs["format_version"] = 2


def _other_run(tmp):
    os.makedirs(f"{tmp}/B", exist_ok=True)
    open(f"{tmp}/B/metrics.jsonl", "w").write('{"epoch": 1}\n')
    open(f"{tmp}/B/config.toml", "w").write("[train]\n")
    return ["train", "--dataset", "synthetic", "--epochs", "2", "--out", f"{tmp}/B", "--resume",
            os.environ["HPCTRAIN_TEST_CKPT"]]


CASES = [
    Case("typo-option", "a mistyped option", lambda t: ["train", "--lrr", "0.1"], "No such option '--lrr'. Did you mean '--lr'?"),
    Case("typo-command", "a mistyped command", lambda t: ["trian"], "No such command 'trian'"),
    Case("unknown-algo", "an unknown algorithm", _train("--algo", "sgdx"), "'sgdx' is not one of"),
    Case("fp16-allreduce-compressed", "--fp16-allreduce with an algorithm that does not average the gradient",
         _train("--algo", "gmc", "--fp16-allreduce"), "--fp16-allreduce: algo gmc does not average the gradient"),
    Case("unknown-collective", "an unknown collective", _train("--collective", "tree"), "'tree' is not one of"),
    Case("unknown-model", "an unknown model", _train("--model", "cnnn"), "unknown model 'cnnn'"),
    Case("model-bad-token", "a layer string with an unknown token", _train("--model", "conv:8:3,relu,pool:2,linear:10"),
         "bad token 3 'pool:2': unknown layer"),
    Case("bucket-size-too-big", "a gradient bucket larger than the model",
         _train("--model", "linear:16,relu,linear:10", "--bucket-size", "5"), "bucket size 5 MiB is larger than the model"),
    Case("bucket-size-negative", "a negative bucket size", _train("--bucket-size", "-1"), "bucket_size must be >= 0"),
    Case("model-needs-images", "an image model on flat features", _train("--model", "cnn"),
         "model cnn needs image data"),
    Case("model-file-missing", "a model file that does not exist",
         lambda t: _train("--model", f"python:{t}/none.py:make")(t), "model file not found"),
    Case("model-no-factory", "a model file without the named factory",
         _model_file("def make():\n    pass\n", "python", "build"), "has no factory 'build'"),
    Case("model-import-raises", "a model module that raises on import",
         _model_file("raise RuntimeError('no GPU here')\n", "python", "make"),
         "raised RuntimeError: no GPU here"),
    Case("torch-output-shape", "a torch model whose output does not match the labels",
         _model_file("import torch\ndef make():\n    return torch.nn.Linear(64, 3)\n", "torch", "make"),
         "output has shape (2, 3) for a batch of 2, but the labels need (2, 10)"),
    Case("unknown-key", "an unknown config key (the closest is suggested)", _toml("[train]\nbatchsize = 3\n"),
         "unknown config key 'batchsize' (did you mean 'batch_size'?)"),
    Case("wrong-type-toml", "a value of the wrong type in TOML", _toml('epochs = "ten"\n'), "epochs must be int"),
    Case("wrong-type-flag", "a value of the wrong type on the command line", _train("--epochs", "ten"),
         "'ten' is not a valid integer"),
    Case("lr-nonpositive", "lr <= 0", _train("--lr", "0"), "lr must be > 0"),
    Case("momentum-range", "momentum outside [0, 1)", _train("--momentum", "1.0"), "momentum must be in [0, 1)"),
    Case("threads-negative", "a negative thread count", _train("--threads", "-1"), "threads must be in [0, 1024]"),
    Case("bn-batch-of-one", "batch norm on flat features with a batch of one sample",
         _train("--model", "bn,linear:10", "--batch-size", "1"), "batch norm on flat features needs batch_size >= 2"),
    Case("checkpoint-period", "a malformed checkpoint period", _train("--checkpoint-every", "5minutes"),
         "checkpoint_every must look like"),
    Case("bad-toml", "a TOML syntax error", _toml("lr = = 1\n"), "invalid TOML"),
    Case("config-missing", "a config file that does not exist", lambda t: ["train", f"{t}/none.toml"],
         "config file not found"),
    Case("batch-too-large", "a batch larger than a shard (2 ranks)", _train("--batch-size", "100000"),
         "batch_size 100000 is larger than a shard", ranks=2),
    Case("data-missing", "a data file that does not exist",
         lambda t: ["train", "--dataset", f"libsvm:{t}/none.svm", "--out", f"{t}/run"], "data file not found"),
    Case("idx-file-missing", "an IDX directory lacking a file", lambda t: _idx_dir(t, "missing"),
         "data file not found"),
    Case("idx-truncated", "a truncated IDX file", lambda t: _idx_dir(t, "truncate"), "truncated IDX data"),
    Case("idx-magic", "an IDX file with a wrong magic number", lambda t: _idx_dir(t, "magic"), "bad magic number"),
    Case("libsvm-malformed", "a malformed LIBSVM line", _libsvm("1 1:0.5\n1 2:x\n"), "a.svm:2: malformed LIBSVM line"),
    Case("label-out-of-range", "a test label the training set does not have", _libsvm("1 1:1\n2 2:1\n", "7 1:1\n"),
         "test label 7 is out of range"),
    Case("feature-dim-mismatch", "train and test feature dimensions differ", _h5_dim_mismatch,
         "feature dimension mismatch"),
    Case("run-exists", "an existing run directory without --overwrite", _existing_run, "pass --overwrite"),
    Case("out-not-writable", "an output directory that cannot be created", _out_under_file, "is not writable"),
    Case("ckpt-missing", "a checkpoint that does not exist",
         lambda t: ["train", "--dataset", "synthetic", "--out", f"{t}/run", "--resume", f"{t}/none.h5"],
         "checkpoint not found"),
    Case("ckpt-latest-none", "--resume latest in a run without checkpoints",
         lambda t: ["train", "--dataset", "synthetic", "--out", f"{t}/run", "--resume", "latest"], "no checkpoint in"),
    Case("ckpt-truncated", "a truncated checkpoint", _resume_from(_truncate), "truncated or not HDF5"),
    Case("ckpt-checksum", "a checkpoint whose data no longer matches its checksum", _resume_from(_flip),
         "checksum mismatch in dataset params"),
    Case("ckpt-newer-format", "a checkpoint of a newer format version", _resume_from(_attr("format_version", 99)),
         "checkpoint format version 99 is newer"),
    Case("ckpt-other-algo", "a checkpoint of another algorithm", _resume_from(_attr("algo", "gmc")),
         "was written by algorithm 'gmc', not 'dmsgd'"),
    Case("ckpt-model-shape", "a checkpoint of a model of another shape", _ckpt_edit(_other_model),
         "holds a softmax model with 7850 parameters"),
    Case("density-range", "s/d outside (0, 1]", _train("--algo", "gmc", "--density", "0"), "density must be in (0, 1]"),
    Case("bits-range", "quantization bits outside {1, 2, 4, 8}", _train("--algo", "csgd", "--compressor", "qsgd",
                                                                           "--bits", "3"), "bits must be one of 1, 2, 4, 8"),
    Case("unknown-topology", "an unknown topology", _train("--algo", "dpsgd", "--topology", "hypercube"),
         "'hypercube' is not one of"),
    Case("w-malformed", "a mixing-matrix file that is not numbers", _w_file("a,b\nc,d\n"), "cannot read mixing matrix"),
    Case("w-non-stochastic", "a mixing matrix whose rows do not sum to 1 (2 ranks)", _w_file("0.5,0.6\n0.5,0.4\n"),
         "row 0 of the mixing matrix sums to 1.1", ranks=2),
    Case("w-wrong-size", "a mixing matrix for another world size", _w_file("0.5,0.5\n0.5,0.5\n"),
         "mixing matrix is 2x2 but the world has 1 ranks"),
    Case("w-disconnected", "a disconnected mixing graph (2 ranks)", _w_file("1,0\n0,1\n"),
         "the graph of the mixing matrix is disconnected", ranks=2),
    Case("w-asymmetric", "a non-symmetric mixing matrix (3 ranks)", _w_file("0.5,0.5,0\n0,0.5,0.5\n0.5,0,0.5\n"),
         "mixing matrix is not symmetric", ranks=3),
    Case("ckpt-world-size", "resuming a decentralized run on another number of ranks", _resume_dpsgd_other_size,
         "cannot be remapped to 3 ranks; resume with mpiexec -n 2", ranks=3),
    Case("bench-fit-range", "a benchmark size range with nothing to compare (2 ranks)",
         lambda t: ["bench", "fit", "--max-bytes", "16K"], "--compare-min 64K is above --max-bytes 16K", ranks=2),
    Case("bench-fit-algo", "an algorithm without a cost model in bench fit (2 ranks)",
         lambda t: ["bench", "fit", "--algo", "ring,mpi"], "bench fit has no cost model of 'mpi'", ranks=2),
    Case("bench-unknown-algo", "an unknown collective in a benchmark (3 ranks)",
         lambda t: ["bench", "collective", "--algo", "ring,tree"], "unknown algorithm 'tree'", ranks=3),
    Case("servers-vs-ranks", "as many dedicated servers as ranks (2 ranks)",
         lambda t: ["bench", "collective", "--algo", "multi-ps", "--servers", "2"],
         "multi-ps with dedicated servers needs 1 <= servers < 2 ranks", ranks=2),
    Case("lr-inf", "a non-finite number (lr inf)", _train("--lr", "inf"), "lr must be a finite number"),
    Case("data-dir-missing", "a --data-dir that does not exist (no silent fallback)",
         lambda t: ["train", "--data-dir", f"{t}/nowhere", "--epochs", "1", "--out", f"{t}/run"],
         "--data-dir <tmp>/nowhere is not a directory"),
    Case("data-dir-unused", "--data-dir with a data set that does not read it", _train("--data-dir", "/tmp"),
         "data_dir applies to dataset fashion-mnist only"),
    Case("test-dataset-unused", "--test-dataset with a data set that does not read it",
         _train("--test-dataset", "/tmp/t.svm"), "test_dataset applies to libsvm:/hdf5: data sets only"),
    Case("h5-x-string", "an HDF5 x of strings", _h5_data(_x(np.array([b"ab"] * 20))), "x must hold numbers"),
    Case("h5-x-compound", "an HDF5 x of a compound type",
         _h5_data(_x(np.zeros(20, dtype=[("a", "f4"), ("b", "i4")]))), "x must hold numbers"),
    Case("h5-x-vlen", "an HDF5 x of variable-length rows",
         _h5_data(lambda f, t: f.create_dataset("x", (20,), dtype=h5py.vlen_dtype(np.float32))),
         "x must hold numbers"),
    Case("h5-x-scalar", "an HDF5 x that is a scalar", _h5_data(_x(np.float32(3))), "x is a scalar"),
    Case("h5-x-group", "an HDF5 x that is a group", _h5_data(lambda f, t: f.create_group("x")),
         "x is a group, not a dataset"),
    Case("h5-x-empty", "an HDF5 x with no rows", _h5_data(_x(np.zeros((0, 4), np.float32))), "x is empty"),
    Case("h5-x-external", "an HDF5 x that is an external link", _h5_data(_x_external), "x is an external link"),
    Case("h5-x-huge", "an HDF5 x declaring 18 GB in a small file", _h5_data(_x_huge), "more than the"),
    Case("h5-label-huge", "a label of 2e9 (a model of 2e9 classes)", _h5_data(_y_huge), "label 2000000000"),
    Case("h5-x-nan", "NaN in the features (bad input, not divergence)", _h5_data(_x_nan), "x holds NaN or Inf (row 5)"),
    Case("h5-x-huge-mpi", "an HDF5 x declaring 18 GB (2 ranks)", _h5_data(_x_huge), "more than the", ranks=2),
    Case("idx-ndim0", "an IDX header with 0 dimensions", _idx_header((0, [])), "declares 0 dimensions"),
    Case("idx-overflow", "IDX dims whose product overflows int64", _idx_header((4, [2**32 - 1] * 4)),
         "truncated IDX data"),
    Case("libsvm-huge-index", "a LIBSVM feature index of 1e12", _libsvm("1 1:1\n2 1000000000000:1\n1 2:1\n"),
         "largest feature index 1000000000000"),
    Case("libsvm-nan", "a NaN value in a LIBSVM file", _libsvm("1 1:1\n2 2:nan\n"), "a.svm:2: NaN or Inf"),
    Case("ckpt-dtype", "resuming a float32 checkpoint with --dtype float64", _resume_from(extra=("--dtype", "float64")),
         "params is float32, this run uses float64"),
    Case("ckpt-params-crafted", "a checkpoint whose params has another shape (2, 100)",
         _ckpt_edit(_params_crafted((2, 100), 2e38)), "params has shape (2, 100)"),
    Case("ckpt-attr-edited", "a checkpoint attribute changed (step) without its checksum",
         _resume_from(_attr("step", 3, sign=False)), "attribute checksum mismatch"),
    Case("ckpt-step-missing", "a checkpoint without step", _resume_from(_attr("step", None)),
         "attribute step is missing"),
    Case("ckpt-world-size-missing", "a checkpoint without world_size", _resume_from(_attr("world_size", None)),
         "attribute world_size is missing"),
    Case("ckpt-params-missing", "a checkpoint without params", _ckpt_edit(lambda f: f.__delitem__("params")),
         "params is missing"),
    Case("ckpt-params-group", "a checkpoint whose params is a group", _ckpt_edit(_params_group),
         "unexpected group params"),
    Case("ckpt-soft-link-loop", "a checkpoint whose params is a soft-link loop", _ckpt_edit(_params_soft_loop),
         "params is a soft link"),
    Case("ckpt-external-link", "a checkpoint whose params is an external link", _ckpt_edit(_params_external),
         "params is an external link"),
    Case("ckpt-state-missing", "a checkpoint without the algorithm's state",
         _ckpt_edit(lambda f: f.__delitem__("state/velocity")), "lacks state/velocity"),
    Case("ckpt-gzip-bomb", "a small checkpoint holding a 3 GB gzip-of-zeros dataset",
         _ckpt_edit(_params_crafted((1, 750_000_000), None, "gzip")), "compressed"),
    Case("ckpt-only-version", "a file holding only format_version", _resume_from(_only_format_version),
         "no attrs_sha256"),
    Case("ckpt-nan", "a checkpoint holding NaN", _ckpt_edit(_params_crafted((1, 650), np.nan)), "holds NaN or Inf"),
    Case("resume-into-other-run", "--resume of one run with --out of another run", _other_run,
         "already holds another run"),
]

CASES += RED_TEAM


def _advise(*args, files=None):
    def setup(tmp):
        for name, text in (files or {}).items():
            with open(f"{tmp}/{name}", "w") as f:
                f.write(text)
        return ["advise", "--dataset", "synthetic", *[a.format(tmp=tmp) for a in args]]
    return setup


CASES += [
    Case("advise-fit-missing", "advise with a --fit file that does not exist", _advise("--fit", "{tmp}/fit.json"),
         "--fit file not found"),
    Case("advise-fit-not-a-fit", "advise with a --fit file holding no alpha and beta",
         _advise("--fit", "{tmp}/fit.json", files={"fit.json": '{"rows": []}'}), "no alpha and beta"),
    Case("advise-fit-directory", "advise with a directory as --fit", _advise("--fit", "{tmp}"), "is a directory"),
    Case("advise-fit-concurrent-missing", "advise with a --fit file whose concurrent term has no segments",
         _advise("--fit", "{tmp}/fit.json",
                 files={"fit.json": '{"alpha": 1e-5, "beta": 1e-8, "concurrent": {"peers": 3}}'}),
         "concurrent: no segments"),
    Case("advise-fit-concurrent-nan", "advise with a --fit file whose concurrent beta is not a number",
         _advise("--fit", "{tmp}/fit.json", files={"fit.json": '{"alpha": 1e-5, "beta": 1e-8, "concurrent": '
                                                               '{"segments": [{"alpha": 1e-5, "beta": "fast", '
                                                               '"max_bytes": null}], "peers": 3}}'}),
         "segment 0's beta is not a finite number"),
    Case("advise-unknown-algo", "advise --algo that does not exist", _advise("--algo", "no-such-algo"),
         "no-such-algo"),
    Case("advise-one-rank-no-fit", "advise on one rank without a fit", _advise(), "give --fit FILE"),
    Case("advise-nodes-zero", "advise --nodes 0", _advise("--nodes", "0"), "at least 1"),
    Case("advise-links-missing", "advise with a --links file that does not exist", _advise("--links", "{tmp}/l.json"),
         "--links file not found"),
    Case("advise-links-not-links", "advise with a --links file holding no pairs",
         _advise("--links", "{tmp}/l.json", files={"l.json": "[1, 2]"}), "not a file of bench links --json"),
    Case("advise-runs-not-a-run", "advise --runs of a directory that holds no run", _advise("--runs", "{tmp}"),
         "no metrics.jsonl"),
]

