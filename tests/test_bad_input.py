"""Every bad input gives one clear line on stderr and exit status 2, no traceback, and
nothing overwritten; docs/errors.md shows each real message (checked here)."""

import concurrent.futures
import os
import re
import subprocess

import pytest

from bad_input_cases import CASES
from red_team_cases import RED_TEAM
from mpiutil import HPCTRAIN, run_mpi

#: the session fixture runs ~80 commands: on a loaded 2-core machine that exceeds the default 300 s
pytestmark = pytest.mark.timeout(1800)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "errors.md")


@pytest.fixture(scope="session")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    ck = base / "ckrun"
    res = subprocess.run([HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "--checkpoint-every",
                          "1epochs", "-q", "--out", str(ck)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    os.environ["HPCTRAIN_TEST_CKPT"] = sorted((ck / "checkpoints").iterdir())[-1].as_posix()
    dp = base / "dprun"
    run_mpi(2, [HPCTRAIN, "train", "--algo", "dpsgd", "--dataset", "synthetic", "--epochs", "1", "--checkpoint-every",
                "1epochs", "-q", "--out", dp], timeout=120)
    os.environ["HPCTRAIN_TEST_CKPT_DPSGD"] = sorted((dp / "checkpoints").iterdir())[-1].as_posix()
    # each case is independent (its own directory): two at a time, as the machine has two cores
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        out = dict(pool.map(lambda case: (case.name, _run_case(base, case)), CASES))
    return out


def _run_case(base, case):
    tmp = base / case.name
    tmp.mkdir()
    args = case.setup(str(tmp))
    snapshot = {p: p.read_bytes() for p in tmp.rglob("*") if p.is_file()}
    dirs = {p for p in tmp.rglob("*") if p.is_dir()}
    if case.ranks == 1:
        r = subprocess.run([HPCTRAIN, *args], capture_output=True, text=True, timeout=120, cwd=tmp)
    else:
        r = run_mpi(case.ranks, [HPCTRAIN, *args], timeout=120, cwd=tmp, check=False)
    changed = [str(p) for p, b in snapshot.items() if not p.exists() or p.read_bytes() != b]
    changed += [f"{p} (left behind)" for p in tmp.rglob("*") if p.is_dir() and p not in dirs]
    shown = [a.replace(str(tmp), "<tmp>").replace(os.environ["HPCTRAIN_TEST_CKPT"], "<ckpt>")
             .replace(os.environ["HPCTRAIN_TEST_CKPT_DPSGD"], "<dpsgd-ckpt>") for a in args]
    err = r.stderr.replace(str(tmp), "<tmp>").replace(os.environ["HPCTRAIN_TEST_CKPT_DPSGD"], "<dpsgd-ckpt>")
    err = err.replace(os.environ["HPCTRAIN_TEST_CKPT"], "<ckpt>")
    err = re.sub(r"[\d.]+ [GM]B of memory available", "<M> GB of memory available", err)  # varies by machine
    err = re.sub(r"more than [\d.]+ [KMGT]B \([\d.]+ [KMGT]B available", "more than <M> (<M> available", err)
    return r.returncode, err, changed, shown


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(results, case):
    rc, err, changed, _ = results[case.name]
    lines = [x for x in err.splitlines() if x.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert case.expect in lines[0], lines[0]
    assert not changed, f"bad input modified {changed}"


def test_enough_cases():
    assert len(CASES) >= 25
    assert len(RED_TEAM) >= 60


def render(results):
    lines = [
        "# Error messages",
        "",
        "Every bad input ends the job with **one line on stderr and exit status 2** (once per",
        "job, whatever the number of ranks), never a traceback, and leaves existing files",
        "(run directories, checkpoints) untouched. Other exit statuses: 1 for a bug or a",
        "system failure (the rank prints `rank R: <error>` and a traceback, then the job is",
        "aborted through MPI), 3 when the loss or parameters become NaN/Inf, 4 when",
        "`--stall-timeout` ended a job whose ranks waited too long in a collective (rank 0",
        "names the ranks that had not arrived and where they were), 75 when",
        "SIGTERM/SIGUSR1 stopped the run after writing a checkpoint, 130 when Ctrl-C (SIGINT)",
        "stopped it (with a checkpoint when checkpointing is on). A file that cannot be",
        "written (full disk, read-only, quota) is also one line naming the file and status 2.",
        "An error that only one rank meets ends the whole job within `HPCTRAIN_EXIT_WAIT`",
        "seconds (default 10) with that rank's line and status.",
        "",
        "Outputs (`--trace`, `bench --json/--csv`, `plot -o`) are checked before any work: they",
        "never name an input of the run (data, mixing matrix, model file, configuration, the",
        "checkpoint resumed), a file the run writes itself, a device, a FIFO or a directory, and",
        "are written atomically. Inputs must be regular files (a FIFO or device is refused, never",
        "opened). A memory pre-flight refuses a run whose arrays cannot fit per rank (the node's",
        "available memory shared by its ranks, or `--max-memory`) before allocating them.",
        "",
        "This page is generated from `tests/bad_input_cases.py` by running each case;",
        "`tests/test_bad_input.py` fails when it drifts (`HPCTRAIN_UPDATE_DOCS=1 pytest",
        "tests/test_bad_input.py` rewrites it). `<tmp>` stands for the case's directory, `<ckpt>` for",
        "a checkpoint of a real run, `<M>` for the memory available on the machine.",
        "",
        "| case | bad input | command | message (stderr) |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        rc, err, _, args = results[case.name]
        cmd = "hpctrain " + " ".join(args)
        if case.ranks > 1:
            cmd = f"mpiexec -n {case.ranks} {cmd}"
        msg = err.strip().replace("|", "\\|")
        lines.append(f"| `{case.name}` | {case.what} | `{cmd}` | `{msg}` |")
    return "\n".join(lines) + "\n"


def test_errors_doc_is_current(results):
    text = render(results)
    if os.environ.get("HPCTRAIN_UPDATE_DOCS"):
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(text)
    assert os.path.exists(DOC), "docs/errors.md is missing: run HPCTRAIN_UPDATE_DOCS=1 pytest tests/test_bad_input.py"
    with open(DOC, encoding="utf-8") as f:
        assert f.read() == text, "docs/errors.md is out of date: HPCTRAIN_UPDATE_DOCS=1 pytest tests/test_bad_input.py"
