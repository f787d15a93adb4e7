"""Parallel and cluster launchers run the same jobs: joblib (2 processes) and submitit_local."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import cli_env
from tests.sweeps.conftest import FAST, PID_LOG, job_pid, overrides, read_metrics, run_dirs



def sweep_pids(tmp_path, data_cache, *launcher: str, timeout: float = 300):
    sweep = tmp_path / "sweep"
    p = subprocess.Popen([sys.executable, "-m", "mlpframe", "train", "-m", *FAST, "optimizer.lr=0.1,0.05",
                          *launcher, PID_LOG, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=cli_env(data_cache),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-3000:]
    dirs = run_dirs(sweep)
    assert sorted(dict(o.split("=", 1) for o in overrides(d))["optimizer.lr"] for d in dirs) == ["0.05", "0.1"]
    for d in dirs:
        assert read_metrics(d)["status"] == "completed"
    pids = {job_pid(d) for d in dirs}
    return p.pid, pids, sweep


def test_joblib_runs_jobs_in_worker_processes(tmp_path, data_cache):
    parent, pids, sweep = sweep_pids(tmp_path, data_cache, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert parent not in pids and 1 <= len(pids) <= 2
    assert "n_jobs: 2" in (sweep / "multirun.yaml").read_text()


@pytest.mark.slow
def test_submitit_local_runs_the_slurm_code_path(tmp_path, data_cache):
    parent, pids, sweep = sweep_pids(tmp_path, data_cache, "hydra/launcher=submitit_local",
                                     "hydra.launcher.timeout_min=5")
    assert parent not in pids and len(pids) == 2  # submitit starts one process per job
    assert (sweep / ".submitit").is_dir()
