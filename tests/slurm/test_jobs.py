"""The real jobs/*.sbatch scripts submitted to a real (private, single-node) Slurm.

Each test submits a script from the repository root with overrides for a tiny run
(environment variables through ``--export=ALL``, resources on the sbatch command line),
polls ``scontrol show job`` with a timeout, and checks what the job wrote.
"""

import glob
import json
import shutil
import time

import pytest
from jobutil import TINY, check_preempted_run, check_run_dir, output_of, submit, wait_done

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("launcher", ["srun", "mpiexec"])
def test_train_sbatch_runs_4_ranks(slurm, tmp_path, launcher):
    job = submit(slurm, tmp_path, "train.sbatch", CONFIG=TINY, LAUNCHER=launcher)
    out = tmp_path / f"train-{job}.out"
    wait_done(slurm, job, out)
    text = output_of(out)
    assert ("running: srun --mpi=pmi2 --wait=10 hpctrain train" if launcher == "srun" else
            "running: mpiexec -n 4 hpctrain train") in text, text
    assert "on 4 ranks" in text, text
    check_run_dir(tmp_path / f"train-{job}", epochs=2, world_size=4)


def test_preempted_job_requeues_and_resumes_bit_identical(slurm, tmp_path):
    """SIGUSR1 to the batch shell mid-run -> checkpoint -> exit 75 -> scontrol requeue ->
    the rerun (Restarts=1) resumes and ends bit-identical to an uninterrupted job."""
    common = dict(CONFIG=TINY, CHECKPOINT_EVERY="1steps", KEEP=2, TRAIN_ARGS="--epochs 3")
    ref = submit(slurm, tmp_path, "train.sbatch", **common)
    job = submit(slurm, tmp_path, "train.sbatch", **common)
    run_dir, out = tmp_path / f"train-{job}", tmp_path / f"train-{job}.out"

    t_end = time.monotonic() + 60
    while not glob.glob(str(run_dir / "checkpoints" / "ckpt-*.h5")):
        state = (slurm.job(job) or [{}])[0].get("JobState")
        assert state in ("PENDING", "RUNNING", "CONFIGURING"), f"job ended early: {state}\n{output_of(out)}"
        assert time.monotonic() < t_end, f"no checkpoint after 60 s\n{output_of(out)}"
        time.sleep(0.05)
    res = slurm.run(["scancel", "--signal=USR1", "--batch", job])
    assert res.returncode == 0, res.stderr

    tasks = wait_done(slurm, job, out, timeout=120, cond=lambda ts: ts[0].get("Restarts") == "1")
    assert tasks[0]["Restarts"] == "1"
    wait_done(slurm, ref, tmp_path / f"train-{ref}.out", timeout=60)

    text = output_of(out)
    assert "got SIGUSR1; forwarding it to the job step" in text, text
    check_preempted_run(text, job, run_dir, tmp_path / f"train-{ref}", steps=3 * 46, epochs=3, world_size=4)


def test_sweep_sbatch_array_runs_two_configs(slurm, tmp_path):
    job = submit(slurm, tmp_path, "sweep.sbatch", options=["--array=0-1", "--ntasks=2"],
                 args=["jobs/configs/tiny-a.toml", "jobs/configs/tiny-b.toml"])
    tasks = wait_done(slurm, job, tmp_path / f"sweep-{job}_0.out")
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1"]
    sweep = tmp_path / f"sweep-{job}"
    a = check_run_dir(sweep / "0-tiny-a", epochs=2, world_size=2)
    b = check_run_dir(sweep / "1-tiny-b", epochs=1, world_size=2)
    assert (a["config"]["model"], b["config"]["model"]) == ("softmax", "mlp")
    assert "array task 1 of 2: jobs/configs/tiny-b.toml" in output_of(tmp_path / f"sweep-{job}_1.out")


def test_bench_sbatch_writes_json(slurm, tmp_path):
    job = submit(slurm, tmp_path, "bench.sbatch", options=["--nodes=1", "--ntasks-per-node=2"],
                 MAX_BYTES="16K", FIT_MAX_BYTES="16K", FIT_ARGS="--compare-min 4K --iters 2 --rounds 3", ITERS=2, WARMUP=1, COLLECTIVE_ALGOS="ring,mpi")
    out = tmp_path / f"bench-{job}.out"
    wait_done(slurm, job, out, timeout=120)
    res = tmp_path / f"bench-{job}"
    with open(res / "allreduce.json") as f:
        rows = json.load(f)
    assert rows and {r["algo"] for r in rows} == {"ring", "mpi"} and {r["ranks"] for r in rows} == {2}
    assert all(r["wrong"] == 0 for r in rows)
    info = output_of(res / "info.txt")
    assert "world size          2" in info and f"Slurm job           {job}" in info, info
    for name in ("fit.json", "alpha_beta.json", "collective.json", "collective.csv"):
        assert (res / name).stat().st_size > 0, name
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no collective.png" in output_of(out)
    else:
        assert (res / "collective.png").stat().st_size > 0


@pytest.mark.parametrize("launcher,resources", [
    # srun with --gpus-per-task: Slurm binds each task to its GPU
    ("srun", ["--ntasks-per-node=2", "--gpus-per-task=1", "--cpus-per-task=1"]),
    # mpiexec, GPUs by --gres: every rank sees both; the wrapper picks by MPICH's local rank
    ("mpiexec", ["--ntasks-per-node=2", "--gpus-per-task=0", "--gres=gpu:2", "--cpus-per-task=1"]),
])
def test_gpu_sbatch_maps_one_gpu_per_rank(slurm, tmp_path, launcher, resources):
    """The test cluster's node has two fake GPUs (GRES); GPU_CHECK=0 trains on the CPU."""
    job = submit(slurm, tmp_path, "gpu.sbatch", options=resources, CONFIG=TINY, GPU_CHECK=0, LAUNCHER=launcher)
    out = tmp_path / f"gpu-{job}.out"
    wait_done(slurm, job, out)
    text = output_of(out)
    lines = sorted(x for x in text.splitlines() if x.startswith("gpu_rank: rank"))
    assert len(lines) == 2, text
    for rank, line in enumerate(lines):
        how = "(bound by Slurm)" if launcher == "srun" else f"(local rank {rank} of GPUs 0,1)"
        assert line.startswith(f"gpu_rank: rank {rank} local {rank} on ") and \
            line.endswith(f"-> CUDA_VISIBLE_DEVICES={rank} {how}"), text
    assert "transport " in text
    check_run_dir(tmp_path / f"gpu-{job}", epochs=2, world_size=2)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_gpu_sbatch_refuses_a_node_without_gpus(slurm, tmp_path):
    job = submit(slurm, tmp_path, "gpu.sbatch", options=["--ntasks-per-node=1"], CONFIG=TINY)
    tasks = slurm.wait(job, timeout=60)
    assert tasks[0]["JobState"] == "FAILED" and tasks[0]["ExitCode"] == "2:0"
    assert "GPU_CHECK=0 runs the launch logic on CPU" in output_of(tmp_path / f"gpu-{job}.out")
