"""jobs/advise.sbatch submitted to a real (private, single-node) Slurm: the ranked table and
its JSON on 2 ranks of one node, and a named fit file that does not exist (one line, exit 2)."""

import json

import pytest
from jobutil import TINY, output_of, submit, wait_done

pytestmark = pytest.mark.mpi


def test_advise_sbatch_ranks_methods_on_one_node(slurm, tmp_path):
    job = submit(slurm, tmp_path, "advise.sbatch", options=["-N", "1", "--ntasks-per-node=2"], CONFIG=TINY,
                 NODES="4", ADVISE_ARGS="--densities 0.01 --bits-grid 4 --probe-steps 1")
    out = tmp_path / f"advise-{job}.out"
    wait_done(slurm, job, out, timeout=240)
    text = output_of(out)
    assert "predicted on this job (2 ranks)" in text and "what-if: 4 nodes" in text, text
    doc = json.loads((tmp_path / f"advise-{job}" / "advise.json").read_text())
    assert doc["job"]["ranks"] == 2 and len(doc["rows"]) > 30 and set(doc["whatif"]) == {"4"}


def test_advise_sbatch_missing_fit_is_one_line(slurm, tmp_path):
    job = submit(slurm, tmp_path, "advise.sbatch", options=["-N", "1", "--ntasks-per-node=2"], CONFIG=TINY,
                 FIT=str(tmp_path / "no-fit.json"))
    out = tmp_path / f"advise-{job}.out"
    tasks = slurm.wait(job, timeout=120)
    assert tasks[0]["ExitCode"] == "2:0", output_of(out)
    text = output_of(out)
    assert "FIT=" in text and "no such file" in text and "Traceback" not in text, text
