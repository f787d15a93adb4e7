"""One run across the tasks of a Slurm job (distributed=mpi) on the real single-node test cluster.

``sbatch --ntasks=2`` with ``srun --mpi=pmi2 python -m mlpframe train distributed=mpi ...``:
Slurm's PMI2 plugin starts the ranks and MPICH (from PyPI) joins them through it; the
ranks read ``PMI_RANK``/``SLURM_PROCID`` as srun sets them. Hydra's Slurm launcher is
for sweeps (one process per job), which ``distributed=mpi`` refuses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mlpframe.engine import load_checkpoint

from .conftest import mlpframe, wait_for

# float64 with BatchNorm and dropout: the 2-task job must train the single-process model
RUN = ["data=synthetic", "data.n_samples=600", "data.batch_size=50", "model.hidden=[16,16]", "model.norm=batch",
       "model.dropout=0.2", "dtype=float64", "scheduler=none", "trainer.max_epochs=2", "trainer.progress_bar=false",
       "trainer.histogram_every_n_epochs=0"]


def sbatch(slurm, env: dict[str, str], folder: Path, srun: str) -> tuple[str, str]:
    """Submit a 2-task batch job running ``srun`` on ``python -m mlpframe train``; wait until it has left
    the queue. Returns its output and its exit code as ``scontrol`` shows it (``status:signal``)."""
    script = folder / "job.sh"
    script.write_text("#!/bin/bash\n"
                      "#SBATCH --ntasks=2 --cpus-per-task=1 --mem=2G --time=10 --partition=debug\n"
                      f"#SBATCH --output={folder}/slurm-%j.out\n"
                      f"{srun} {sys.executable} -m mlpframe train \"$@\"\n")
    proc = subprocess.run(["sbatch", "--parsable", str(script), *RUN, "distributed=mpi",
                           f"hydra.run.dir={folder / 'run'}"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]

    def left_the_queue() -> bool:
        """the batch job finished"""
        return job not in slurm.run("squeue", "--noheader", "--format=%i").stdout.split()

    wait_for(left_the_queue, timeout=300, every=1.0)
    shown = slurm.run("scontrol", "show", "job", job).stdout
    exit_code = next(w.split("=", 1)[1] for w in shown.split() if w.startswith("ExitCode="))
    return (folder / f"slurm-{job}.out").read_text(), exit_code


def test_a_two_task_slurm_job_trains_the_single_process_model(slurm, cluster_env, tmp_path):
    out, exit_code = sbatch(slurm, cluster_env, tmp_path, "srun --mpi=pmi2")
    assert exit_code == "0:0", out[-3000:]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed", out[-3000:]
    assert out.count("status: completed") == 1, out[-3000:]  # rank 0 alone reports
    assert len(list((run / "tensorboard").rglob("events.out.tfevents.*"))) == 1
    single = tmp_path / "single"
    proc = mlpframe("train", *RUN, f"hydra.run.dir={single}", cwd=tmp_path, env=cluster_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (a,), (b,) = (run / "checkpoints").glob("last.*"), (single / "checkpoints").glob("last.*")
    wa, wb = load_checkpoint(a).state["model"], load_checkpoint(b).state["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-9, atol=1e-9, err_msg=k)
    assert json.loads((single / "metrics.json").read_text())["test/acc"] == metrics["test/acc"]


def test_srun_without_an_mpi_plugin_is_one_clear_refusal(slurm, cluster_env, tmp_path):
    # --mpi=none: each task starts an MPI of one process; two runs into one folder must not happen
    out, exit_code = sbatch(slurm, cluster_env, tmp_path, "srun --mpi=none")
    assert exit_code == "2:0", out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "srun --mpi=pmi2" in errors[0], out  # said once, by rank 0
    assert "Traceback" not in out
    assert not (tmp_path / "run" / "metrics.json").exists()
