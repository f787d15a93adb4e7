"""Sweeps on a real (single-node) Slurm cluster, through the CLI as a user runs them.

Grid and Optuna sweeps with ``hydra/launcher=slurm``; a job cancelled with
``scancel``; a job re-queued (``scontrol requeue``) or pre-empted (SIGUSR2, what
Slurm sends before the time limit with submitit's ``--signal``) mid-epoch, which
must end exactly like a job that was never stopped; ``sbatch`` refusals as one line.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.robustness.helpers import LONG, assert_same_run

from .conftest import ON_CLUSTER, mlpframe, wait_for

FAST = ["data=synthetic", "data.n_samples=600", "trainer.max_epochs=1", "trainer.progress_bar=false",
        "trainer.histogram_every_n_epochs=0"]
# LONG (tests/robustness) with 4 epochs of ~1 s, long enough to be stopped mid-epoch; without
# trainer.resume=auto: the launcher sets it in a re-queued job
RESUMABLE = [o for o in LONG if not o.startswith(("trainer.resume=", "data.n_samples=", "trainer.max_epochs="))] \
    + ["data.n_samples=40000", "trainer.max_epochs=4"]


def run_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(dirs, key=lambda p: int(p.name.split("_", 1)[0]))


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "metrics.json").read_text())["status"]


def report_rows(sweep_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """``report``'s table (report.csv): run folder name -> status."""
    proc = mlpframe("report", str(sweep_dir), "--no-plot", cwd=sweep_dir, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with open(sweep_dir / "report.csv", newline="") as f:
        return {Path(r["path"]).name: r["status"] for r in csv.DictReader(f)}


def started_training(run_dir: Path) -> bool:
    """the job's train.log says training started"""
    log = run_dir / "train.log"
    return log.exists() and " train / " in log.read_text()


def slurm_job_ids(slurm, state: str = "RUNNING") -> list[str]:
    out = slurm.run("squeue", "--noheader", "--format=%i", f"--states={state}").stdout
    return sorted(out.split())


def test_grid_sweep_runs_every_job_and_report_lists_them(slurm, cluster_env, tmp_path):
    sweep = tmp_path / "grid"
    proc = mlpframe("train", "-m", *ON_CLUSTER, *FAST, "optimizer.lr=0.1,0.05,0.02", f"hydra.sweep.dir={sweep}",
                    cwd=tmp_path, env=cluster_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = run_dirs(sweep)
    assert [d.name.split("_")[0] for d in dirs] == ["0", "1", "2"]
    assert [status(d) for d in dirs] == ["completed"] * 3
    assert report_rows(sweep, cluster_env) == {d.name: "completed" for d in dirs}
    # no accounting on this cluster: states come from squeue, without submitit's warning on every poll
    assert "Bypassing sacct error" not in proc.stdout + proc.stderr
    assert "job states come from squeue" in proc.stdout + proc.stderr


def test_optuna_sweep_shares_one_sqlite_study_across_jobs(slurm, cluster_env, tmp_path):
    sweep = tmp_path / "optuna"
    proc = mlpframe("train", "-m", "hparams_search=mnist1d_optuna", *ON_CLUSTER, *FAST, "hydra.sweeper.n_trials=4",
                    "hydra.sweeper.n_jobs=2", f"hydra.sweep.dir={sweep}", cwd=tmp_path, env=cluster_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = run_dirs(sweep)
    assert len(dirs) == 4 and [status(d) for d in dirs] == ["completed"] * 4
    assert report_rows(sweep, cluster_env) == {d.name: "completed" for d in dirs}
    import optuna

    study = optuna.load_study(study_name="mnist1d_mlp", storage=f"sqlite:///{sweep / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    objectives = {round(json.loads((d / "metrics.json").read_text())["val/acc_best"], 9) for d in dirs}
    assert {round(t.value, 9) for t in trials} == objectives


@pytest.mark.parametrize("override, key, sweep_args", [
    # the shipped default asks for a GPU this cluster lacks
    (None, "hydra.launcher.gpus_per_node", ["optimizer.lr=0.1,0.05"]),
    ("hydra.launcher.partition=nosuch", "hydra.launcher.partition", ["optimizer.lr=0.1,0.05"]),
    # the Optuna sweeper makes its study's database before the first batch is submitted
    (None, "hydra.launcher.gpus_per_node", ["hparams_search=mnist1d_optuna", "hydra.sweeper.n_trials=2"]),
])
def test_sbatch_refusal_is_one_line_naming_the_key(slurm, cluster_env, tmp_path, override, key, sweep_args):
    launcher = [o for o in ON_CLUSTER if not o.startswith("hydra.launcher.gpus_per_node")] if override is None \
        else ON_CLUSTER + [override]
    sweep = tmp_path / "refused"
    proc = mlpframe("train", "-m", *launcher, *FAST, *sweep_args, f"hydra.sweep.dir={sweep}",
                    cwd=tmp_path, env=cluster_env)
    assert proc.returncode == 2
    # (Optuna itself logs the new study on stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if "A new study created" not in ln]
    assert len(lines) == 1 and "Traceback" not in proc.stdout, proc.stderr
    assert lines[0].startswith("error: Slurm refused the sweep's jobs: sbatch: error: ") and key in lines[0]
    if override is None:
        assert "Invalid generic resource (gres) specification" in lines[0]
    assert not sweep.exists()


def test_cancelled_job_is_listed_cancelled_and_the_sweep_finishes(slurm, cluster_env, tmp_path):
    sweep = tmp_path / "cancel"
    cmd = [sys.executable, "-m", "mlpframe", "train", "-m", *ON_CLUSTER, *RESUMABLE, "trainer.max_epochs=1,40",
           f"hydra.sweep.dir={sweep}"]
    with subprocess.Popen(cmd, cwd=tmp_path, env=cluster_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as sweep_proc:
        long_job = wait_for(lambda: [d for d in (run_dirs(sweep) if sweep.exists() else [])
                                     if d.name.startswith("1_") and started_training(d)])[0]
        (job_id,) = [j for j in slurm_job_ids(slurm) if j.endswith("_1")]
        slurm.run("scancel", job_id)
        out, err = sweep_proc.communicate(timeout=180)
    assert sweep_proc.returncode == 0, err[-3000:]
    short_job = run_dirs(sweep)[0]
    assert status(short_job) == "completed" and status(long_job) == "cancelled"
    assert report_rows(sweep, cluster_env) == {short_job.name: "completed", long_job.name: "cancelled"}
    assert f"ended by Slurm: CANCELLED" in out + err


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_cache) -> Path:
    """``RESUMABLE`` run to the end on this machine, without Slurm."""
    from tests.conftest import cli_env

    cwd = tmp_path_factory.mktemp("uninterrupted")
    proc = mlpframe("train", *RESUMABLE, "hydra.run.dir=run", cwd=cwd, env=cli_env(data_cache))
    assert proc.returncode == 0, proc.stderr
    return cwd / "run"


@pytest.mark.parametrize("stop", ["scontrol requeue", "scancel --signal=USR2"])
def test_requeued_or_preempted_job_resumes_mid_epoch_bit_for_bit(slurm, cluster_env, tmp_path, uninterrupted,
                                                                 stop):
    sweep = tmp_path / "requeue"
    cmd = [sys.executable, "-m", "mlpframe", "train", "-m", *ON_CLUSTER, *RESUMABLE, f"hydra.sweep.dir={sweep}"]
    with subprocess.Popen(cmd, cwd=tmp_path, env=cluster_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as sweep_proc:
        run_dir = wait_for(lambda: [d for d in (run_dirs(sweep) if sweep.exists() else []) if started_training(d)])[0]
        log = run_dir / "train.log"
        # a second into training: mid-epoch (an epoch has 1,050 steps)
        wait_for(lambda: re.search(r"epoch +1/4 +train loss", log.read_text()), timeout=60, every=0.02)
        (job_id,) = slurm_job_ids(slurm)
        slurm.run(*stop.split(), job_id)
        out, err = sweep_proc.communicate(timeout=240)
    assert sweep_proc.returncode == 0, err[-3000:]
    text = log.read_text()
    job_logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.err"))
    assert "re-queued by Slurm: resuming from this run's newest checkpoint" in job_logs, job_logs[-3000:]
    resumed = re.search(r"resuming from \S+ \(epoch (\d+) \+ (\d+) steps of epoch \d+\)", text)
    assert resumed, text[-3000:]  # mid-epoch
    assert status(run_dir) == "completed"
    assert_same_run(uninterrupted, run_dir)
