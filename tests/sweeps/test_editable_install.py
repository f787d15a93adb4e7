"""``pip install -e .`` (how contributors install) runs the Optuna sweeper too.

setuptools' editable installs serve the project's packages through an import hook
that Hydra's plugin scan (``pkgutil`` over the ``hydra_plugins`` namespace) cannot
list; :mod:`mlpframe.plugins` registers the project's plugins by name instead. The
test makes a virtual environment that shares this one's packages except mlpframe's
own, installs a copy of the repository into it in editable mode, and runs a tiny
Optuna sweep from another directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import mlpframe

REPO = Path(mlpframe.__file__).resolve().parent.parent
OURS = ("mlpframe", "__editable__", "__editable___mlpframe")


def venv_without_mlpframe(dest: Path) -> Path:
    """A venv whose site-packages links every package of this one but mlpframe and its plugins."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(dest)
    python = dest / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    parent = Path(sysconfig.get_paths()["purelib"])
    for entry in parent.iterdir():
        if entry.name.startswith(OURS) or entry.name in ("hydra_plugins", "__pycache__"):
            continue
        (site / entry.name).symlink_to(entry)
    if (parent / "hydra_plugins").is_dir():
        (site / "hydra_plugins").mkdir()
        for entry in (parent / "hydra_plugins").iterdir():
            if not entry.name.startswith("mlpframe") and entry.name != "__pycache__":
                (site / "hydra_plugins" / entry.name).symlink_to(entry)
    return python


@pytest.mark.slow
def test_editable_install_runs_the_optuna_sweeper(tmp_path, data_cache):
    pytest.importorskip("optuna")
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("mlpframe is imported from an installation, not from a source tree")
    if sys.platform == "win32":
        pytest.skip("the venv is built with POSIX symlinks")
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                              "outputs", "multirun", ".pytest_cache", "experiments"))
    python = venv_without_mlpframe(tmp_path / "venv")
    build = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--no-index", "-e", str(src)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "MLPFRAME_DATA": str(data_cache), "HOME": str(tmp_path),
           "PYTHONWARNINGS": "ignore", "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "OPENBLAS_NUM_THREADS": "1"}
    where = subprocess.run([str(python), "-c", "import hydra_plugins.mlpframe_optuna_sweeper as m, mlpframe.cli.common"
                            " as c; print(m.__file__); print(c.config_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.split() == [str(src / "hydra_plugins/mlpframe_optuna_sweeper/__init__.py"), str(src / "conf")], \
        where.stderr  # the editable copy, not this checkout nor an installed mlpframe
    proc = subprocess.run([str(python), "-m", "mlpframe", "train", "hparams_search=mnist1d_optuna", "data=synthetic",
                           "data.n_samples=300", "trainer.max_epochs=1", "logger=none", "hydra.sweeper.n_trials=2",
                           "hydra.sweep.dir=sweep"], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted(p for p in (elsewhere / "sweep").iterdir() if (p / "metrics.json").is_file())
    assert [p.name[:2] for p in runs] == ["0_", "1_"]
    assert all(json.loads((p / "metrics.json").read_text())["status"] == "completed" for p in runs)
    assert (elsewhere / "sweep" / "optuna.db").is_file() and (elsewhere / "sweep" / "optimization_results.yaml").is_file()
