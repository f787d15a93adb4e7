"""A non-editable install finds its Hydra configs from any working directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlpframe

REPO = Path(mlpframe.__file__).resolve().parent.parent


@pytest.mark.slow
def test_non_editable_install_runs_from_another_directory(tmp_path, data_cache):
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("mlpframe is imported from an installation, not from a source tree")
    src = tmp_path / "src"
    # a clean copy, so the build leaves nothing in the repository
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                              "outputs", "multirun", ".pytest_cache", "experiments"))
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--no-index", "--target", str(target), str(src)], capture_output=True, text=True,
                           timeout=600)
    if build.returncode != 0 and "No module named" in build.stderr and "setuptools" in build.stderr:
        pytest.skip("setuptools is not available to build the wheel offline")
    assert build.returncode == 0, build.stderr[-2000:]
    assert (target / "mlpframe/conf/train.yaml").is_file()
    assert (target / "mlpframe/conf/experiment/dl1_cifar10.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "MLPFRAME_DATA": str(data_cache),
           "HOME": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", "import mlpframe.cli.common as c; print(c.config_dir())"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == str(target / "mlpframe" / "conf"), proc.stderr
    run = subprocess.run([sys.executable, "-m", "mlpframe", "train", "data=synthetic", "data.n_samples=300",
                          "trainer.max_epochs=1", "trainer.progress_bar=false", "hydra.run.dir=run"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((elsewhere / "run/metrics.json").read_text())["status"] == "completed"
