"""The ``hpctrain`` command line: a click group whose commands parse, validate and call
library code. Every user-facing error becomes one line on stderr and exit status 2."""

import importlib.metadata
import json
import os
import sys
import traceback

import click

from . import __version__
from .errors import EXIT_USAGE, CheckpointError, ConfigError, HpctrainError, SilentExit

__all__ = ["cli", "main"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _env_rank():
    """This process's rank from the launcher's environment (before MPI starts), or 0."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "MV2_COMM_WORLD_RANK"):
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def _comm():
    from .comm import world

    return world()


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="hpctrain")
def cli():
    """hpctrain: communication-efficient distributed training over hand-made MPI collectives.

    Run under MPI, e.g. `mpiexec -n 4 hpctrain train --dataset fashion-mnist`.
    """


def _check_outputs(**paths):
    """Check every output file named on the command line before any work (never an
    existing device, FIFO or directory; the directory writable)."""
    from .files import check_output

    for flag, path in paths.items():
        if path is not None:
            check_output(path, "--" + flag.replace("_", "-"))


def _write_json(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically (one line on failure)."""
    from .files import write_atomic

    write_atomic(path, json.dumps(obj, indent=1))


def _bench_fits(nbytes, what):
    """The memory pre-flight of a benchmark: ``nbytes`` per rank must fit (one line if not)."""
    from .memory import check_fits
    from .threads import local_ranks

    check_fits({what: int(nbytes)}, ranks_on_node=local_ranks(), hint="choose smaller sizes")


def _names(text, flag):
    """The comma-separated names of ``flag``; an empty list is refused."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise ConfigError(f"{flag} names nothing; give at least one name")
    return names


@cli.command()
def info():
    """Versions, MPI library, world size, CuPy/GPU availability."""
    import h5py
    import numpy

    from .comm.communicator import mpi_library_info
    from .threads import default_threads, local_ranks
    from .xp import cupy_or_none, gpu_available

    comm = _comm()
    layout = _job_layout(comm)  # collective: every rank takes part
    if comm.rank != 0:
        return
    lib = mpi_library_info()
    cp = cupy_or_none()
    ok, gpu = gpu_available()
    rows = [
        ("hpctrain", __version__),
        ("python", sys.version.split()[0]),
        ("numpy", numpy.__version__),
        ("mpi4py", lib["mpi4py"]),
        ("h5py", h5py.__version__),
        ("click", importlib.metadata.version("click")),
        ("MPI standard", lib["mpi_standard"]),
        ("MPI library", lib["mpi_library"]),
        ("MPI vendor", lib["mpi_vendor"]),
        ("world size", str(comm.size)),
        ("ranks on this node", str(local_ranks())),
        ("BLAS threads/rank", f"{os.environ.get('OPENBLAS_NUM_THREADS', '?')} (default {default_threads()})"),
        ("nodes", f"{len(layout['nodes'])} ({', '.join(layout['nodes'])})"),
        ("ranks per node", ", ".join(str(len(r)) for r in layout["ranks"])),
        ("cupy", cp.__version__ if cp else "not installed"),
        ("GPU", gpu if ok else f"none ({gpu})"),
    ]
    env = os.environ
    if env.get("SLURM_JOB_ID"):  # shown only inside a Slurm job; nothing here needs Slurm
        job = env["SLURM_JOB_ID"]
        if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
            job += f" (array {env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']})"
        rows += [
            ("Slurm job", f"{job} on {env.get('SLURM_JOB_NODELIST', '?')}"),
            ("Slurm restarts", env.get("SLURM_RESTART_COUNT", "0")),
            ("Slurm tasks", f"{env.get('SLURM_NTASKS', '?')} ({env.get('SLURM_TASKS_PER_NODE', '?')} per node)"),
            ("Slurm local rank", env.get("SLURM_LOCALID", "- (not an srun task)")),
        ]
    for r, (host, local, size, threads) in enumerate(layout["per_rank"]):
        rows.append((f"rank {r}", f"{host}  local rank {local} of {size}  BLAS threads {threads}"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")


def _job_layout(comm):
    """Where every rank runs, as MPI sees it (collective): ``nodes`` (host names in order of
    their lowest rank), ``ranks`` (the world ranks of each node) and ``per_rank`` (host,
    local rank and size from ``MPI_Comm_split_type(SHARED)``, BLAS threads of its pool)."""
    import numpy as np
    from threadpoolctl import threadpool_info

    node = comm.split_shared()
    blas = [p.get("num_threads", 0) for p in threadpool_info() if p.get("user_api") == "blas"]
    rows = comm.allgather_array(np.array([node.rank, node.size, max(blas, default=0)], dtype=np.int64))
    per_rank = [(host, int(row[0]), int(row[1]), int(row[2]) or "?") for host, row in zip(comm.hostnames(), rows)]
    nodes, ranks = [], []
    for r, (h, *_rest) in enumerate(per_rank):
        if h not in nodes:
            nodes.append(h)
            ranks.append([])
        ranks[nodes.index(h)].append(r)
    return {"nodes": nodes, "ranks": ranks, "per_rank": per_rank}


def _train_options(f):
    """The flags of ``hpctrain train``, one per TrainConfig field (generated: a new config
    key is a new flag); each overrides the same key of the TOML file."""
    from .config import BoolOrAuto, option_specs

    for spec in reversed(option_specs()):
        key, flag = spec["name"], spec["flag"]
        help_ = f"{spec['help']} [config key {key}; default {spec['default']!r}]"
        names = [spec["short"]] if spec["short"] else []
        if spec["type"] in (bool, BoolOrAuto):  # --nesterov/--no-nesterov: either overrides the file
            f = click.option(f"{flag}/--no-{flag[2:]}", *names, key, default=None, help=help_)(f)
        else:
            typ = click.Choice(spec["choices"]) if spec["choices"] else spec["type"]
            f = click.option(flag, *names, key, type=typ, default=None, help=help_)(f)
    return f


@cli.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_train_options
def train(config, **overrides):
    """Train a model; CONFIG is an optional TOML file, flags override its keys.

    Writes config.toml, metrics.jsonl (one line per epoch) and summary.json into --out.
    """
    import numpy as np

    from .config import load_config
    from .train import catch_stop_signals_early, run_training

    catch_stop_signals_early()  # Ctrl-C during setup stops at the first step boundary, on every rank

    cfg = load_config(config, overrides)
    cfg.config_path = config or ""  # an input: outputs may not overwrite it
    np.seterr(all="ignore")  # non-finite values are detected and reported by the loop, once
    run_training(cfg)


@cli.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@_train_options
@click.option("--fit", "fit_path", type=click.Path(dir_okay=False),
              help="alpha-beta fit (`bench fit --json FILE`, or the cached fit); default: a short fit now")
@click.option("--links", "links_path", type=click.Path(dir_okay=False),
              help="per-pair bandwidths (`bench links --json FILE`): price every link at the slowest one's rate")
@click.option("--nodes", "nodes_list", default="", help="also predict for these node counts, e.g. 4,64,512")
@click.option("--ranks-per-node", type=click.IntRange(min=1), default=None,
              help="ranks per node of the --nodes jobs (default: this job's, from the host names)")
@click.option("--runs", "run_dirs", multiple=True, type=click.Path(file_okay=False),
              help="run directory of an earlier run (repeatable): marks whether that method converged")
@click.option("--densities", default="0.1,0.01,0.001", show_default=True, help="densities s/d of the sparsifiers")
@click.option("--bits-grid", default="2,4,8", show_default=True, help="bits of the quantizers")
@click.option("--collectives", default="ring,recursive,multi-ps,ps", show_default=True,
              help="allreduces a dense exchange is priced with (hierarchical joins on several nodes)")
@click.option("--probe-steps", default=3, show_default=True, type=click.IntRange(min=1),
              help="timed steps of the model and of each method (after one warm-up)")
@click.option("--top", default=30, show_default=True, type=click.IntRange(min=1), help="rows printed per table")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="also write every row as JSON")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="predicted step time against the number of nodes (PNG; with --nodes)")
def advise(config, fit_path, links_path, nodes_list, ranks_per_node, run_dirs, densities, bits_grid, collectives,
           probe_steps, top, json_path, plot_path, **overrides):
    """Predict every method's step time and bytes on this job's network and model; rank them.

    Run it under mpiexec/srun on the job layout you train on; CONFIG and the train flags
    describe the model and data (--algo/--compressor restrict the methods).
    """
    from .advise import (format_report, load_fit_file, parse_grids, plot_whatif, read_json_file, read_runs,
                         run_advise, straggler_factor, to_json)

    _check_outputs(json=json_path, plot=plot_path)
    if plot_path:
        _need_matplotlib("--plot")
    fit = load_fit_file(fit_path) if fit_path else None
    links = read_json_file(links_path, "--links") if links_path else None
    slow = straggler_factor(links) if links is not None else 1.0
    nodes, dens, bits, colls = parse_grids(nodes_list, densities, bits_grid, collectives)
    marks = read_runs(run_dirs) if run_dirs else None
    comm = _comm()
    res = run_advise(config, overrides, comm, fit=fit, nodes_list=nodes, runs=marks, densities=dens, bits=bits,
                     collectives=colls, probe_steps=probe_steps, slow=slow, ranks_per_node=ranks_per_node,
                     links=links)
    if comm.rank != 0:
        return
    click.echo(format_report(res, top))
    if json_path:
        _write_json(json_path, to_json(res))
    if plot_path:
        click.echo(f"wrote {plot_whatif(res, plot_path)}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="image file (PNG)")
@click.option("--x", "x", type=click.Choice(["epoch", "time", "bytes"]), default=None,
              help="x axis (default: both epoch and bytes sent per rank)")
def plot(run_dirs, out, x):
    """Plot loss/accuracy vs epoch, wall-clock time or bytes communicated for RUN_DIRS on one figure."""
    from .plot import plot_runs

    click.echo(plot_runs(run_dirs, out, x=x))


@cli.command("trace")
@click.argument("trace_file", type=click.Path(dir_okay=False))
def trace_cmd(trace_file):
    """Print the compute/comm/compress split per epoch of a --trace file (mean over ranks)."""
    from .data import check_fits
    from .errors import DataError
    from .files import check_input
    from .trace import format_summary, summarize

    check_input(trace_file, "trace file")
    check_fits(trace_file, 12 * os.path.getsize(trace_file), "reading this trace")  # JSON objects: ~10x the text
    try:
        with open(trace_file, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{trace_file}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read trace file {trace_file}: {exc.strerror}") from None
    except RecursionError:
        raise DataError(f"{trace_file}: not a trace-event JSON file (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{trace_file}: not a trace-event JSON file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        raise DataError(f"{trace_file}: not an hpctrain trace (no traceEvents list)")
    try:
        rows = summarize(doc)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{trace_file}: malformed trace events ({exc})"[:300]) from None
    click.echo(format_summary(rows))


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--verify", is_flag=True, help="check every dataset's SHA-256; exit 1 on corruption")
def inspect(checkpoint, verify):
    """Summarise an HDF5 checkpoint (and verify its checksums). CHECKPOINT may be a run
    directory: its latest checkpoint is inspected."""
    from .checkpoint import checkpoint_dir, latest_checkpoint, read_checkpoint, verify_checkpoint

    if os.path.isdir(checkpoint):
        found = latest_checkpoint(checkpoint)
        if found is None:
            raise CheckpointError(f"{checkpoint} is a directory with no checkpoint in {checkpoint_dir(checkpoint)}; "
                                  "give a run directory that has checkpoints, or a checkpoint file")
        checkpoint = found

    if verify:
        problems = verify_checkpoint(checkpoint)
        if problems:
            for p in problems:
                click.echo(f"{checkpoint}: {p}", err=True)
            click.echo(f"hpctrain: error: {checkpoint} is corrupt ({len(problems)} problem(s))", err=True)
            sys.exit(1)
    snap = read_checkpoint(checkpoint)
    m = snap.meta
    click.echo(f"checkpoint      {checkpoint}")
    for key in ("format_version", "hpctrain_version", "created", "world_size", "algo", "model", "n_params",
                "dataset", "step", "epoch", "step_in_epoch", "steps_per_epoch"):
        if key in m:
            click.echo(f"{key:<15} {m[key]}")
    click.echo(f"{'position':<15} {_position(m)}")
    click.echo("datasets:")
    for name, arr in sorted(snap.arrays.items()):
        click.echo(f"  {name:<28} {str(arr.shape):<16} {arr.dtype}")
    if verify:
        click.echo(f"verified        all {len(snap.arrays)} checksums match")


def _position(m):
    """Where a checkpoint stands, in words (epoch = the epoch it continues in)."""
    epoch, k, per = int(m["epoch"]), int(m["step_in_epoch"]), int(m["steps_per_epoch"])
    if k == 0:
        return f"end of epoch {epoch - 1} (step {m['step']}); a resume starts epoch {epoch}" if epoch > 1 else \
            "start of training"
    return f"step {k} of {per} in epoch {epoch} (step {m['step']})"


@cli.group()
def bench():
    """Benchmarks: collectives (nccl-tests-style), the alpha-beta fit, compression operators."""


@bench.command("compress")
@click.option("--ops", default="topk,approx-topk,randk,qsgd:bits=4,minmax:bits=4,sign,fp16", show_default=True,
              help="operators separated by ',' (or by ';' when one has several parameters), parameters as "
                   "name:key=value (qsgd:bits=2); 'argpartition' is NumPy's exact selection baseline")
@click.option("--sizes", default="1M,8M", show_default=True,
              help="comma-separated element counts (K, M, G = 2^10, 2^20, 2^30, as in every bench command)")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "gpu"]))
@click.option("--density", default=None, type=float, help="s/d for sparsifiers that do not name one")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(min=0))
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float64"]))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="also write the rows as JSON")
def bench_compress_cmd(ops, sizes, device, density, repeats, warmup, dtype, json_path):
    """Time compress+pack and unpack+decompress of each operator (min/median over repeats)."""
    from .bench.common import parse_size
    import numpy as np

    from .bench.compress import format_compress_table, run_compress_bench
    from .compress import COMPRESSORS

    _check_outputs(json=json_path)
    names = [o.strip() for o in ops.split(";" if ";" in ops else ",") if o.strip()]
    if not names:
        raise ConfigError("--ops names nothing; give at least one operator")
    if density is not None:
        names = [f"{n}:density={density}" if "density" in getattr(COMPRESSORS.get(n), "config_params", ()) else n
                 for n in names]
    counts = [parse_size(text) for text in sizes.split(",")]
    _bench_fits(max(counts) * (np.dtype(dtype).itemsize * 4 + 8), f"--sizes {max(counts)} elements and their copies")
    rows = run_compress_bench(names, counts, device=device, repeats=repeats, warmup=warmup, dtype=dtype)
    if device == "cpu":
        from . import jit
        click.echo(jit.describe())
    click.echo(format_compress_table(rows))
    if json_path:
        _write_json(json_path, rows)


@bench.command("allreduce")
@click.option("--algo", "algos", default="ring,mpi", show_default=True, help="comma-separated allreduce names")
@click.option("--min-bytes", default="1K", show_default=True, help="smallest message (e.g. 1K)")
@click.option("--max-bytes", default="64M", show_default=True, help="largest message (e.g. 64M)")
@click.option("--step-factor", default=4, show_default=True, type=int, help="size multiplier between rows")
@click.option("--iters", default=20, show_default=True, type=click.IntRange(min=1), help="timed iterations per size")
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(min=0), help="untimed iterations per size")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float64", "int32", "int64"]))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="also write the rows as JSON")
def bench_allreduce_cmd(algos, min_bytes, max_bytes, step_factor, iters, warmup, dtype, json_path):
    """Time allreduce algorithms over message sizes; check every result."""
    from .bench.allreduce import bench_allreduce, format_table
    from .bench.common import parse_size, size_sweep
    from .collectives import get_allreduce

    _check_outputs(json=json_path)
    names = _names(algos, "--algo")
    for name in names:
        get_allreduce(name)
    sizes = size_sweep(parse_size(min_bytes), parse_size(max_bytes), step_factor)
    _bench_fits(8 * max(sizes), f"--max-bytes {max_bytes} (buffers, scratch and checks)")
    comm = _comm()
    rows = bench_allreduce(comm, names, sizes, dtype, iters, warmup)
    if comm.rank == 0:
        click.echo(format_table(rows))
        if json_path:
            _write_json(json_path, rows)


@bench.command("links")
@click.option("--bytes", "nbytes", default="1M", show_default=True, help="message size of each round trip")
@click.option("--iters", default=3, show_default=True, type=click.IntRange(min=1), help="timed round trips per pair")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="also write pairs and verdict as JSON")
def bench_links_cmd(nbytes, iters, json_path):
    """Bandwidth of every pair of ranks, one pair per rank at a time; names a slow node."""
    from .bench.common import parse_size
    from .bench.links import bench_links, format_links, node_report

    _check_outputs(json=json_path)
    size = parse_size(nbytes)
    comm = _comm()
    result = bench_links(comm, size, iters)
    if comm.rank == 0:
        report = node_report(result)
        click.echo(format_links(result, report))
        if json_path:
            _write_json(json_path, {**result, "nodes": report})


def _sweep_options(f):
    """--min-bytes/--max-bytes/--step-factor/--iters/--warmup/--dtype of the collective benchmarks."""
    for opt in reversed([
        click.option("--min-bytes", default="1K", show_default=True, help="smallest message per rank (e.g. 1K)"),
        click.option("--max-bytes", default="64M", show_default=True, help="largest message per rank (e.g. 64M)"),
        click.option("--step-factor", default=4, show_default=True, type=int, help="size multiplier between rows"),
        click.option("--iters", default=20, show_default=True, type=click.IntRange(min=1), help="timed iterations per size"),
        click.option("--warmup", default=5, show_default=True, type=click.IntRange(min=0), help="untimed iterations per size"),
        click.option("--dtype", default="float32", show_default=True,
                     type=click.Choice(["float32", "float64", "int32", "int64"])),
    ]):
        f = opt(f)
    return f


@bench.command("collective")
@click.option("--algo", "algos", default="ring,recursive,multi-ps,ps,mpi,auto", show_default=True,
              help="comma-separated: allreduce names, gossip, sparse-allgather[-mpi]")
@_sweep_options
@click.option("--check/--no-check", default=True, show_default=True, help="count wrong elements (#wrong)")
@click.option("--topology", default="ring", show_default=True, help="gossip graph: builder name or W .npy/.csv")
@click.option("--density", default=0.01, show_default=True, type=float, help="non-zeros per rank, sparse-allgather")
@click.option("--servers", default=0, show_default=True, type=click.IntRange(min=0),
              help="multi-ps placement: k dedicated server ranks (the last k; the others compute), 0 = co-located")
@click.option("--transport", default="host", show_default=True,
              type=click.Choice(["auto", "host", "cuda-aware", "staged"]), help="how buffers reach MPI")
@click.option("--refit", is_flag=True, help="rerun the alpha-beta fit first (cached for auto)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="also write the rows as JSON")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="also write the rows as CSV")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="log-log plot (PNG) with alpha-beta lines")
def bench_collective_cmd(algos, min_bytes, max_bytes, step_factor, iters, warmup, dtype, check, topology, density,
                         servers, transport, refit, json_path, csv_path, plot_path):
    """Time every collective over message sizes (nccl-tests columns, OSU min/avg/max)."""
    from .bench.collective import format_rows, plot_rows, run_cli, write_rows
    from .bench.common import parse_size, size_sweep
    from .comm import world

    _check_outputs(json=json_path, csv=csv_path, plot=plot_path)
    _names(algos, "--algo")
    if plot_path:
        _need_matplotlib("--plot")  # before the sweep, not after it
    sizes = size_sweep(parse_size(min_bytes), parse_size(max_bytes), step_factor)
    _bench_fits(8 * max(sizes), f"--max-bytes {max_bytes} (buffers, scratch and checks)")
    comm = world(transport)
    rows, fit = run_cli(comm, algos, sizes, dtype, iters, warmup, check, topology, density, refit, servers=servers)
    if comm.rank == 0:
        click.echo(format_rows(rows))
        write_rows(rows, json_path, csv_path)
        if plot_path:
            plot_rows(rows, plot_path, fit)


def _need_matplotlib(what):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(f"{what} needs matplotlib: pip install 'hpctrain[plot]'") from None


@bench.command("fit")
@click.option("--min-bytes", default="1K", show_default=True, help="smallest ping-pong message")
@click.option("--max-bytes", default="64M", show_default=True,
              help="largest message (past the last-level cache, so the fit sees memory bandwidth)")
@click.option("--step-factor", default=2, show_default=True, type=int, help="size multiplier")
@click.option("--algo", "algos", default="ring,multi-ps,ps,ring-unpartitioned,recursive", show_default=True,
              help="algorithms to compare with their predictions")
@click.option("--compare-min", default="64K", show_default=True, help="smallest size of the comparison")
@click.option("--iters", default=10, show_default=True, type=click.IntRange(min=1),
              help="timed calls (each on a freshly written buffer) of each algorithm per size per round")
@click.option("--rounds", default=20, show_default=True, type=click.IntRange(min=1),
              help="interleaved rounds (at least; up to 3x while a median still moves); each time is its median round")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float64"]))
@click.option("--no-cache", is_flag=True, help="do not write the fit to the cache")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="also write the fit and rows as JSON")
def bench_fit_cmd(min_bytes, max_bytes, step_factor, algos, compare_min, iters, rounds, dtype, no_cache, json_path):
    """Fit the alpha-beta model (ping-pongs, exchanges, reductions); predicted vs measured; cache for auto."""
    from .bench.common import parse_size, size_sweep
    from .bench.fit import format_fit, run_fit

    sizes = size_sweep(parse_size(min_bytes), parse_size(max_bytes), step_factor)
    _bench_fits(8 * max(sizes), f"--max-bytes {max_bytes} (buffers, scratch and checks)")
    compare = [s for s in sizes if s >= parse_size(compare_min)]
    if not compare:
        raise ConfigError(f"--compare-min {compare_min} is above --max-bytes {max_bytes}: nothing to compare")
    _check_outputs(json=json_path)
    names = _names(algos, "--algo")
    comm = _comm()
    res = run_fit(comm, sizes, compare, names, dtype, iters, rounds, save=not no_cache)
    if comm.rank == 0:
        click.echo(format_fit(res))
        if json_path:
            _write_json(json_path, res)


@cli.command("topology")
@click.argument("name", required=False)
@click.option("-n", "--ranks", "n", type=click.IntRange(min=1), help="number of ranks (world size)")
@click.option("--file", "path", type=click.Path(dir_okay=False), help="validate a custom W (.npy or .csv)")
def topology_cmd(name, n, path):
    """Build or validate a mixing matrix: W (or its pattern), degree, spectral gap.

    NAME is ring, torus, exponential, complete or star; or give --file W.npy.
    """
    from .errors import ConfigError
    from .topology import build, format_report

    if (name is None) == (path is None):
        raise ConfigError("give a topology NAME or --file W.npy (one of them)")
    click.echo(format_report(build(name, n, path)))



from .cluster_cli import cluster as _cluster  # noqa: E402

cli.add_command(_cluster)


def _one_line(exc):
    text = str(exc).strip().replace("\n", " ")
    return text or exc.__class__.__name__


def _plain_ctrl_c(prog):
    """Commands other than train take Ctrl-C at once (KeyboardInterrupt), also one that
    arrived during start-up."""
    import signal

    from .signals import pending

    signal.signal(signal.SIGINT, signal.default_int_handler)
    for s in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(s, signal.SIG_DFL)
    if pending() == signal.SIGINT:
        if _env_rank() == 0:
            click.echo(f"{prog}: interrupted", err=True)
        os._exit(130)
    if pending():
        os.kill(os.getpid(), pending())


def _exit_with_others(code, line=None):
    """Leave together with the other ranks; an error that this rank alone met (the others
    are still waiting in a collective) ends the whole job within HPCTRAIN_EXIT_WAIT
    seconds (default 10): this rank prints its ``line`` and aborts the job with its exit
    status (MPI_Abort; the MPI library's own abort banner is silenced, the line says it)."""
    if "hpctrain.comm.communicator" not in sys.modules:
        return
    from .comm.communicator import abort_world, exit_together

    try:
        wait = float(os.environ.get("HPCTRAIN_EXIT_WAIT", "10"))
    except ValueError:
        wait = 10.0
    if exit_together(wait):
        return
    if line:
        click.echo(line, err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    abort_world(code)
    os._exit(code)


def main(argv=None):
    """Entry point: run the CLI; map errors to one line and exit status 2."""
    try:
        _main(argv)
    except SystemExit as exc:
        _leave_despite_threads(exc.code)
        raise
    _leave_despite_threads(0)


def _leave_despite_threads(code):
    """Exit even when user code (a model factory) left non-daemon threads running: Python
    would wait for them forever after the work is done (and SIGTERM is no longer acted on)."""
    import threading

    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not others:
        return
    if _env_rank() == 0:
        names = ", ".join(t.name for t in others[:3])
        click.echo(f"hpctrain: warning: not waiting for {len(others)} thread(s) left running by user code ({names})",
                   err=True)
    import atexit

    atexit._run_exitfuncs()
    if "hpctrain.comm.communicator" in sys.modules:
        from .comm.communicator import finalize

        finalize()
    sys.stdout.flush()
    sys.stderr.flush()
    code = code if isinstance(code, int) else (0 if code is None else 1)
    os._exit(code)


def _main(argv=None):
    prog = "hpctrain"
    args = sys.argv[1:] if argv is None else list(argv)
    if "train" not in args[:1]:
        _plain_ctrl_c(prog)
    try:
        cli.main(args=args, prog_name=prog, standalone_mode=False)
    except SilentExit as exc:
        _exit_with_others(exc.exit_code)
        sys.exit(exc.exit_code)
    except HpctrainError as exc:
        # Errors are raised on every rank alike (config, files) and printed by rank 0
        # only, unless the training loop's agreement named this rank as the reporter.
        line = f"{prog}: {exc.label}: {_one_line(exc)}"
        alone = getattr(exc, "abort_job", False)  # raised on this rank only (user code mid-training)
        printed = alone or getattr(exc, "reporter", False) or _env_rank() == 0
        if printed:
            click.echo(line, err=True)
        if alone and "hpctrain.comm.communicator" in sys.modules:  # the other ranks would wait forever
            sys.stdout.flush()
            sys.stderr.flush()
            from .comm.communicator import abort_world

            abort_world(exc.exit_code)
        _exit_with_others(exc.exit_code, None if printed else line)
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        if _env_rank() == 0:
            where = f"{exc.ctx.command_path}: " if getattr(exc, "ctx", None) else f"{prog}: "
            click.echo(f"{where}error: {_one_line(exc.format_message())}", err=True)
        sys.exit(EXIT_USAGE if exc.exit_code in (1, 2) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        if isinstance(exc, click.exceptions.Abort) and isinstance(exc.__cause__, EOFError):
            _internal_error(exc.__cause__)  # click turns an EOFError into Abort: not a Ctrl-C
        # Ctrl-C outside the training loop (start-up, another command): one line from rank 0,
        # and no MPI_Finalize, which would wait for ranks that are elsewhere
        if _env_rank() == 0:
            click.echo(f"{prog}: interrupted", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except MemoryError as exc:  # a size from the user that no pre-flight foresaw: still one line
        line = f"{prog}: error: out of memory ({_one_line(exc)}); a size in the command or its files is too large"
        if _env_rank() == 0:
            click.echo(line, err=True)
        _exit_with_others(EXIT_USAGE, None if _env_rank() == 0 else line)
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # a bug or a system failure: one line, the traceback, abort all ranks
        _internal_error(exc)


def _internal_error(exc):
    """A bug or a system failure: ``rank R: <error>``, the traceback, every rank aborted."""
    rank = _env_rank()
    click.echo(f"rank {rank}: {type(exc).__name__}: {_one_line(exc)}", err=True)
    traceback.print_exception(exc, file=sys.stderr)
    if "hpctrain.comm.communicator" in sys.modules:  # MPI was started: end every rank
        from .comm.communicator import abort_world

        abort_world(1)
    sys.exit(1)
