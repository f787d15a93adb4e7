"""Sweeps driven as a user runs them: ``python -m mlpframe train -m ...`` in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env

# optuna 2.x runs on SQLAlchemy 1.4 (sqlite storage needs < 2), which warns about 2.0 on import
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

# one job in well under a second: 2-d spirals, a tiny MLP, one epoch, no histograms
FAST = ["data=synthetic", "data.n_samples=600", "trainer.max_epochs=1", "trainer.progress_bar=false",
        "trainer.histogram_every_n_epochs=0"]
# every line of a job's train.log starts with the id of the process that ran it
PID_LOG = "hydra.job_logging.formatters.file.format='%(process)d %(message)s'"


def job_pid(run_dir: Path) -> int:
    return int((run_dir / "train.log").read_text().split(maxsplit=1)[0])


def mlpframe(*args: str, cwd: Path, data_dir: Path, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlpframe", *args], cwd=cwd, env=cli_env(data_dir),
                          capture_output=True, text=True, timeout=timeout, **popen)


def run_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders, in job order."""
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(dirs, key=lambda p: int(p.name.split("_", 1)[0]))


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def overrides(run_dir: Path) -> list[str]:
    import yaml

    return yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())


@pytest.fixture(scope="session")
def grid_sweep(tmp_path_factory, data_cache) -> Path:
    """A finished 2 x 2 grid (learning rate x hidden sizes) with the basic launcher, one process."""
    cwd = tmp_path_factory.mktemp("grid")
    sweep_dir = cwd / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "mlpframe", "train", "-m", *FAST, "optimizer.lr=0.1,0.01",
                             "model.hidden=[16],[32,16]", PID_LOG, f"hydra.sweep.dir={sweep_dir}"], cwd=cwd,
                            env=cli_env(data_cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    (sweep_dir / "sweep_pid").write_text(str(proc.pid))  # outside any run dir; the tests compare with it
    return sweep_dir
