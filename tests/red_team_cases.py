"""A red-team round of crafted inputs over configs, sizes, data, topology, outputs and the
trace/plot/bench commands. Each is a :class:`bad_input_cases.Case`: one line on stderr,
exit status 2, no traceback, nothing in the case's directory changed. They run with the
other bad-input cases (tests/test_bad_input.py) and are listed in docs/errors.md."""

import os
import stat

import h5py
import numpy as np

from case import Case

__all__ = ["RED_TEAM"]


_case = Case


def _write(name, data):
    """Write ``data`` (str or bytes) to ``tmp/name``."""
    def put(tmp):
        p = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return p
    return put


def _null_device(name):
    """A character device like /dev/null (1, 3) made in the case's directory: a regression
    replaces this copy, never the machine's /dev/null."""
    def put(tmp):
        p = os.path.join(tmp, name)
        os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return p
    return put


def _fifo(name):
    def put(tmp):
        p = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.mkfifo(p)
        return p
    return put


def _train_with(*files, args=()):
    """Make ``files`` (callables of tmp), then ``hpctrain train ARGS`` ({tmp} substituted)."""
    def setup(tmp):
        for make in files:
            make(tmp)
        return ["train", *[a.format(tmp=tmp) for a in args]]
    return setup


def _toml(text):
    data = text.encode() if isinstance(text, str) else text
    return _train_with(_write("c.toml", data), args=("{tmp}/c.toml", "--out", "{tmp}/run", "--epochs", "1")) \
        if b"epochs" not in data else _train_with(_write("c.toml", data), args=("{tmp}/c.toml", "--out", "{tmp}/run"))


def _flags(*flags):
    return _train_with(args=("--dataset", "synthetic", "--epochs", "1", "--out", "{tmp}/run", *flags))


SVM = "1 1:1\n2 2:1\n1 1:0.5\n2 2:0.3\n1 1:1\n2 2:1\n1 1:1\n2 2:1\n1 1:1\n2 2:1\n"


def _svm(text):
    return _train_with(_write("a.svm", text),
                       args=("--dataset", "libsvm:{tmp}/a.svm", "--batch-size", "1", "--out", "{tmp}/run"))


def _h5(make):
    def setup(tmp):
        with h5py.File(f"{tmp}/d.h5", "w") as f:
            make(f, tmp)
        return ["train", "--dataset", f"hdf5:{tmp}/d.h5", "--batch-size", "2", "--out", f"{tmp}/run"]
    return setup


def _h5_virtual(f, tmp):
    layout = h5py.VirtualLayout(shape=(20, 4), dtype="f4")
    layout[:] = h5py.VirtualSource(f"{tmp}/missing.h5", "x", shape=(20, 4))
    f.create_virtual_dataset("x", layout, fillvalue=0)
    f["y"] = np.arange(20) % 2


def _h5_external(f, tmp):
    f.create_dataset("x", shape=(20, 4), dtype="f4", external=[(f"{tmp}/raw.bin", 0, h5py.h5f.UNLIMITED)])
    f["y"] = np.arange(20) % 2


def _h5_filter(f, tmp):
    f.create_dataset("x", data=np.ones((20, 4), np.float32), chunks=(20, 4), compression=32001,
                     allow_unknown_filter=True)
    f["y"] = np.arange(20) % 2


def _h5_u64(f, tmp):
    f["x"] = np.ones((20, 4), np.float32)
    y = (np.arange(20) % 2).astype(np.uint64)
    y[3] = 2**64 - 1
    f["y"] = y


def _h5_f64(f, tmp):
    x = np.ones((20, 4))
    x[2, 2] = 1e300
    f["x"], f["y"] = x, np.arange(20) % 2


def _h5_xtest_only(f, tmp):
    f["x"], f["y"], f["x_test"] = np.ones((20, 4), np.float32), np.arange(20) % 2, np.ones((5, 4), np.float32)


def _w(make, name="W.csv"):
    def setup(tmp):
        make(tmp, f"{tmp}/{name}")
        return ["train", "--algo", "dpsgd", "--topology-file", f"{tmp}/{name}", "--dataset", "synthetic",
                "--epochs", "1", "--out", f"{tmp}/run"]
    return setup


def _w_bytes(data):
    def make(tmp, p):
        with open(p, "wb") as f:
            f.write(data)
    return make


def _w_npy_strings(tmp, p):
    np.save(p, np.array([["a", "b"], ["c", "d"]]))


def _w_npy_truncated(tmp, p):
    np.save(p, np.full((2, 2), 0.5))
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-10])


def _trace_over(make_target, *extra):
    """``--trace`` naming an input (made by ``make_target(tmp)``, which returns its path)."""
    def setup(tmp):
        target = make_target(tmp)
        args = [a.format(tmp=tmp) for a in extra] or ["--dataset", "synthetic"]
        return ["train", *args, "--epochs", "1", "--out", f"{tmp}/run", "--trace", target]
    return setup


def _ckpt_copy(tmp):
    with open(os.environ["HPCTRAIN_TEST_CKPT"], "rb") as f, open(f"{tmp}/ckpt.h5", "wb") as g:
        g.write(f.read())
    return f"{tmp}/ckpt.h5"


MODEL = ("import numpy as np\nclass M:\n    def __init__(s, d, c):\n        s.d, s.c = d, c\n"
         "        s.params = np.zeros(d * c, np.float32)\n        s.grad = np.zeros_like(s.params)\n"
         "    def loss_and_grad(s, x, y):\n        return 0.0\n"
         "    def predict(s, x):\n        return x @ s.params.reshape(s.d, s.c)\n"
         "def make(input_shape, n_classes):\n    return M(int(np.prod(input_shape)), n_classes)\n")


def _run_dir(name, files):
    """A run directory ``tmp/name`` holding ``files`` (name -> str/bytes or None for a FIFO/dir marker)."""
    def setup(tmp):
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        for fname, data in files.items():
            p = os.path.join(d, fname)
            if data == "FIFO":
                os.mkfifo(p)
            elif data == "DIR":
                os.makedirs(p)
            else:
                with open(p, "wb") as f:
                    f.write(data.encode() if isinstance(data, str) else data)
        return d
    return setup


GOOD_METRICS = '{"epoch": 1, "train_loss": 0.5, "test_accuracy": 0.8, "wall_time": 1.0, "bytes_sent_per_rank": [10]}\n'


def _plot(files, out="p.png"):
    def setup(tmp):
        _run_dir("r", files)(tmp)
        return ["plot", f"{tmp}/r", "-o", f"{tmp}/{out}" if not out.startswith("/") else out]
    return setup


def _trace_cmd(make):
    def setup(tmp):
        return ["trace", make(tmp)]
    return setup


def _existing_run_with(files):
    def setup(tmp):
        _run_dir("run", files)(tmp)
        return ["train", "--dataset", "synthetic", "--epochs", "1", "--out", f"{tmp}/run"]
    return setup


def _in(tmp_setup):
    """A setup that only prepares files, then a fixed command built from tmp."""
    return tmp_setup


RED_TEAM = [
    # -- configuration: types, ranges, encodings (TOML and flags alike) -------------------------
    _case("rt-toml-bool-for-int", "TOML boolean where an integer belongs", _toml("epochs = true\n"),
          "epochs must be int, got bool True"),
    _case("rt-toml-int-for-bool", "TOML integer where a boolean belongs", _toml("nesterov = 1\n"),
          "nesterov must be bool, got int 1"),
    _case("rt-toml-overlap-int", "an integer where true, false or \"auto\" belongs", _toml("overlap = 3\n"),
          'overlap must be true, false or "auto", got int 3'),
    _case("rt-toml-overlap-yes", "a word other than \"auto\" for a three-way switch", _toml('overlap = "yes"\n'),
          'overlap must be true, false or "auto", got str \'yes\''),
    _case("rt-toml-negative-epochs", "a negative epoch count", _toml("epochs = -3\n"), "epochs must be > 0, got -3"),
    _case("rt-toml-list-for-str", "a list where a string belongs", _toml('dataset = ["a.svm"]\n'),
          "dataset must be str, got list"),
    _case("rt-toml-table-for-str", "a table where a string belongs", _toml("model = {name = 'mlp'}\n"),
          "model must be str, got dict"),
    _case("rt-toml-seed-128bit", "a seed beyond 64 bits", _toml("seed = 99999999999999999999999\n"),
          "seed must fit in 64 bits"),
    _case("rt-toml-seed-negative", "a negative seed", _toml("seed = -1\n"), "seed must be >= 0"),
    _case("rt-toml-lr-huge-int", "an integer learning rate of 400 digits", _toml("lr = 1" + "0" * 400 + "\n"),
          "lr must be a finite number"),
    _case("rt-toml-lr-string", "a quoted number", _toml('lr = "0.1"\n'), "lr must be float, got str"),
    _case("rt-toml-date", "a TOML date where an integer belongs", _toml("epochs = 1979-05-27\n"),
          "epochs must be int, got date"),
    _case("rt-toml-hidden-bool", "hidden = false", _toml("hidden = false\n"), "hidden must be int, got bool"),
    _case("rt-toml-batch-zero", "batch_size = 0", _toml("batch_size = 0\n"), "batch_size must be > 0"),
    _case("rt-toml-threads-huge", "100000 threads per rank", _toml("threads = 100000\n"),
          "threads must be in [0, 1024]"),
    _case("rt-toml-nul-path", "a NUL byte in a path", _toml('dataset = "libsvm:a\\u0000.svm"\n'),
          "holds a NUL byte"),
    _case("rt-toml-non-utf8", "a Latin-1 configuration file", _toml(b"# caf\xe9\nlr = 0.1\n"), "not UTF-8 text"),
    _case("rt-toml-binary", "a binary configuration file", _toml(b"\x00\x01\x02\x03 binary\n"), "invalid TOML"),
    _case("rt-toml-train-conflict", "a [train] table contradicting a top-level key",
          _toml("lr = 0.1\n[train]\nlr = 0.2\n"), "lr is 0.1 at the top level but 0.2 in [train]"),
    _case("rt-toml-max-memory", "a malformed --max-memory in TOML", _toml('max_memory = "12X"\n'),
          "max_memory must look like"),
    _case("rt-toml-stall-negative", "a negative stall warning", _toml("stall_warning = -1.0\n"),
          "stall_warning must be >= 0"),
    _case("rt-config-fifo", "a FIFO as the configuration file",
          _train_with(_fifo("c.toml"), args=("{tmp}/c.toml", "--out", "{tmp}/run")), "is a FIFO"),
    _case("rt-flag-threads-huge", "--threads 5000", _flags("--threads", "5000"), "threads must be in [0, 1024]"),
    _case("rt-flag-seed-huge", "--seed beyond 64 bits", _flags("--seed", "99999999999999999999999"),
          "seed must fit in 64 bits"),
    _case("rt-flag-epochs-negative", "--epochs -1", _flags("--epochs", "-1"), "epochs must be > 0"),
    _case("rt-flag-max-memory", "--max-memory 0", _flags("--max-memory", "0"), "max_memory must look like"),
    _case("rt-model-etc-passwd", "a python: model naming a file that is not Python",
          _flags("--model", "python:/etc/passwd:make"), "/etc/passwd is not a Python source file"),
    # -- sizes: the memory pre-flight ---------------------------------------------------------
    _case("rt-size-hidden", "an mlp with 1e9 hidden units", _flags("--model", "mlp", "--hidden", "1000000000"),
          "this run needs about"),
    _case("rt-size-hidden-4", "an mlp with 1e9 hidden units (4 ranks)",
          _flags("--model", "mlp", "--hidden", "1000000000"), "this run needs about", ranks=4),
    _case("rt-size-layer", "a layer string with a 1e9-unit layer", _flags("--model", "linear:1000000000,linear:10"),
          "this run needs about"),
    _case("rt-size-max-memory", "a model beyond --max-memory",
          _flags("--model", "mlp", "--hidden", "20000", "--max-memory", "1M"), "(--max-memory 1M)"),
    _case("rt-size-topology", "a dense mixing matrix of 1e6 ranks", lambda t: ["topology", "ring", "-n", "1000000"],
          "a dense mixing matrix of this many ranks does not fit"),
    _case("rt-size-bench-compress", "bench compress of 100G elements", lambda t: ["bench", "compress", "--sizes", "100G"],
          "choose smaller sizes"),
    _case("rt-size-bench-allreduce", "bench allreduce up to 100G", lambda t: ["bench", "allreduce", "--max-bytes", "100G"],
          "choose smaller sizes"),
    # -- data files ---------------------------------------------------------------------------
    _case("rt-libsvm-featureless", "a LIBSVM file of labels only", _svm("1\n2\n1\n2\n"), "no features"),
    _case("rt-libsvm-underscore", "a LIBSVM value with a '_' separator", _svm("1 1:1_0\n" + SVM),
          "a.svm:1: malformed LIBSVM line"),
    _case("rt-libsvm-arabic-digit", "a LIBSVM index in Arabic-Indic digits", _svm("1 \u0661:1\n" + SVM),
          "a.svm:1: malformed LIBSVM line"),
    _case("rt-libsvm-duplicate", "a feature index given twice", _svm("1 1:0.5 1:0.7\n" + SVM),
          "a.svm:1: a feature index appears twice"),
    _case("rt-libsvm-overflow", "a value beyond float32", _svm("1 1:1e39\n" + SVM), "beyond float32's range"),
    _case("rt-libsvm-no-colon", "a token without index:value", _svm(SVM + "1 1:1 junk\n"), "malformed LIBSVM line"),
    _case("rt-libsvm-empty", "an empty LIBSVM file", _svm(""), "no samples"),
    _case("rt-libsvm-fifo", "a FIFO as the data file",
          _train_with(_fifo("a.svm"), args=("--dataset", "libsvm:{tmp}/a.svm", "--out", "{tmp}/run")), "is a FIFO"),
    _case("rt-libsvm-dir", "a directory as the data file",
          _train_with(lambda t: os.makedirs(f"{t}/a.svm"), args=("--dataset", "libsvm:{tmp}/a.svm", "--out",
                                                                  "{tmp}/run")), "is a directory"),
    _case("rt-data-dev-zero", "/dev/zero as the data file", _flags("--dataset", "libsvm:/dev/zero"),
          "is a character device"),
    _case("rt-idx-fifo", "FIFOs in an IDX directory",
          _train_with(*[_fifo(f"idx/{n}") for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")],
                      args=("--dataset", "{tmp}/idx", "--out", "{tmp}/run")), "is a FIFO"),
    _case("rt-h5-virtual", "an HDF5 virtual dataset whose source is missing", _h5(_h5_virtual),
          "x is a virtual dataset"),
    _case("rt-h5-external-raw", "HDF5 external raw storage", _h5(_h5_external), "x keeps its data in external raw files"),
    _case("rt-h5-unknown-filter", "an HDF5 filter that is not available", _h5(_h5_filter), "HDF5 filter 32001"),
    _case("rt-h5-uint64-label", "a uint64 label of 2^64-1", _h5(_h5_u64), "y label 18446744073709551615 is out of range"),
    _case("rt-h5-float-overflow", "float64 features beyond float32", _h5(_h5_f64), "beyond float32's range"),
    _case("rt-h5-xtest-only", "x_test without y_test", _h5(_h5_xtest_only), "has x_test but no y_test"),
    # -- topology files -----------------------------------------------------------------------
    _case("rt-w-empty-npy", "an empty .npy mixing matrix (not 'interrupted')", _w(_w_bytes(b""), "W.npy"), "is empty"),
    _case("rt-w-empty-csv", "an empty CSV mixing matrix (no NumPy warning)", _w(_w_bytes(b"")), "is empty"),
    _case("rt-w-blank-csv", "a CSV mixing matrix of blank lines", _w(_w_bytes(b"\n\n\n")),
          "input contained no data"),
    _case("rt-w-fifo", "a FIFO as the mixing matrix", _w(lambda t, p: os.mkfifo(p)), "is a FIFO"),
    _case("rt-w-npy-strings", "a .npy mixing matrix of strings", _w(_w_npy_strings, "W.npy"), "must hold numbers"),
    _case("rt-w-npy-truncated", "a truncated .npy mixing matrix", _w(_w_npy_truncated, "W.npy"),
          "cannot read mixing matrix"),
    _case("rt-topology-cmd-empty", "hpctrain topology --file of an empty .npy",
          lambda t: (_write("W.npy", b"")(t), ["topology", "--file", f"{t}/W.npy"])[1], "is empty"),
    # -- outputs never overwrite inputs, run files or special files ----------------------------
    _case("rt-trace-over-data", "--trace naming the data set", _trace_over(
        _write("a.svm", SVM), "--dataset", "libsvm:{tmp}/a.svm", "--batch-size", "1"), "would overwrite the input"),
    _case("rt-trace-over-resume", "--trace naming the checkpoint being resumed", _trace_over(
        _ckpt_copy, "--dataset", "synthetic", "--resume", "{tmp}/ckpt.h5"), "would overwrite the input"),
    _case("rt-trace-over-config", "--trace naming the configuration file",
          lambda t: (_write("c.toml", "lr = 0.1\n")(t),
                     ["train", f"{t}/c.toml", "--dataset", "synthetic", "--out", f"{t}/run", "--trace", f"{t}/c.toml"])[1],
          "would overwrite the input"),
    _case("rt-trace-over-model", "--trace naming the python: model file", _trace_over(
        _write("m.py", MODEL), "--model", "python:{tmp}/m.py:make", "--dataset", "synthetic"),
        "would overwrite the input"),
    _case("rt-trace-over-topology", "--trace naming the mixing matrix", _trace_over(
        _write("W.csv", "1\n"), "--algo", "dpsgd", "--topology-file", "{tmp}/W.csv", "--dataset", "synthetic"),
        "would overwrite the input"),
    _case("rt-trace-over-metrics", "--trace naming the run's metrics.jsonl",
          lambda t: _flags("--trace", f"{t}/run/metrics.jsonl")(t), "is a file the run writes itself"),
    _case("rt-trace-dev-null", "--trace naming a null device (a device is never replaced)",
          lambda t: _flags("--trace", _null_device("null")(t))(t), "is a character device"),
    _case("rt-trace-fifo", "--trace naming a FIFO", lambda t: (_fifo("t.json")(t), _flags("--trace", f"{t}/t.json")(t))[1],
          "is a FIFO"),
    _case("rt-trace-no-dir", "--trace in a directory that does not exist (before training)",
          lambda t: _flags("--trace", f"{t}/nowhere/t.json")(t), "does not exist"),
    _case("rt-trace-dir", "--trace naming a directory", lambda t: _flags("--trace", t)(t), "is a directory"),
    _case("rt-run-metrics-fifo", "a run directory whose metrics.jsonl is a FIFO",
          _existing_run_with({"metrics.jsonl": "FIFO"}), "metrics.jsonl is a FIFO"),
    _case("rt-run-summary-dir", "a run directory whose summary.json is a directory",
          _existing_run_with({"summary.json": "DIR"}), "summary.json is a directory"),
    _case("rt-run-metrics-symlink", "a run directory whose metrics.jsonl links to the data set",
          lambda t: (_write("a.svm", SVM)(t), os.makedirs(f"{t}/run"), os.symlink(f"{t}/a.svm", f"{t}/run/metrics.jsonl"),
                     ["train", "--dataset", f"libsvm:{t}/a.svm", "--batch-size", "1", "--out", f"{t}/run"])[-1],
          "metrics.jsonl is a symbolic link"),
    _case("rt-bench-json-dev-null", "bench --json naming a null device",
          lambda t: ["bench", "compress", "--sizes", "1K", "--json", _null_device("null")(t)], "is a character device"),
    _case("rt-bench-json-no-dir", "bench --json in a missing directory (before the run)",
          lambda t: ["bench", "allreduce", "--max-bytes", "1K", "--json", f"{t}/nowhere/b.json"], "does not exist"),
    _case("rt-bench-csv-fifo", "bench collective --csv naming a FIFO (2 ranks)",
          lambda t: (_fifo("b.csv")(t), ["bench", "collective", "--max-bytes", "1K", "--csv", f"{t}/b.csv"])[1],
          "is a FIFO", ranks=2),
    _case("rt-bench-empty-algo", "an empty algorithm list", lambda t: ["bench", "allreduce", "--algo", ","],
          "--algo names nothing"),
    _case("rt-bench-empty-ops", "an empty operator list", lambda t: ["bench", "compress", "--ops", ","],
          "--ops names nothing"),
    # -- hpctrain plot / hpctrain trace on damaged files ----------------------------------------
    _case("rt-plot-empty", "plot of an empty metrics.jsonl (a failed run)", _plot({"metrics.jsonl": ""}),
          "no epoch records"),
    _case("rt-plot-nan", "plot of a NaN loss", _plot({"metrics.jsonl": GOOD_METRICS.replace("0.5", "NaN")}),
          "train_loss must be a finite number"),
    _case("rt-plot-non-utf8", "plot of a non-UTF-8 metrics.jsonl", _plot({"metrics.jsonl": b"\xff\xfe{}\n"}),
          "not UTF-8 text"),
    _case("rt-plot-nested", "plot of a deeply nested line", _plot({"metrics.jsonl": "[" * 100000}),
          "nested too deeply"),
    _case("rt-plot-not-object", "plot of a line that is a list", _plot({"metrics.jsonl": "[1, 2]\n"}),
          "not an epoch record"),
    _case("rt-plot-fifo", "plot of a FIFO metrics.jsonl", _plot({"metrics.jsonl": "FIFO"}), "is a FIFO"),
    _case("rt-plot-format", "plot to an unknown image format", _plot({"metrics.jsonl": GOOD_METRICS}, "p.xyz"),
          "unknown image format 'xyz'"),
    _case("rt-plot-no-dir", "plot into a missing directory", _plot({"metrics.jsonl": GOOD_METRICS}, "nowhere/p.png"),
          "does not exist"),
    _case("rt-trace-cmd-empty", "hpctrain trace of an empty file", _trace_cmd(lambda t: _write("t.json", "")(t)),
          "not a trace-event JSON file"),
    _case("rt-trace-cmd-non-utf8", "hpctrain trace of non-UTF-8 bytes",
          _trace_cmd(lambda t: _write("t.json", b"\xff\xfe")(t)), "not UTF-8 text"),
    _case("rt-trace-cmd-nested", "hpctrain trace of deeply nested JSON",
          _trace_cmd(lambda t: _write("t.json", "[" * 100000)(t)), "nested too deeply"),
    _case("rt-trace-cmd-nan", "hpctrain trace with a NaN timestamp", _trace_cmd(lambda t: _write(
        "t.json", '{"traceEvents": [{"ph": "X", "name": "a", "ts": NaN, "dur": 1, "pid": 0}]}')(t)),
        "malformed trace events"),
    _case("rt-trace-cmd-fifo", "hpctrain trace of a FIFO", _trace_cmd(_fifo("t.json")), "is a FIFO"),
    _case("rt-trace-cmd-dev-zero", "hpctrain trace of /dev/zero", lambda t: ["trace", "/dev/zero"],
          "is a character device"),
]
