"""Fixtures shared across the suite: running ``python -m mlpframe`` as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import mlpframe

# per-test limit of the tests marked slow (pip installs, kill-and-resume loops, launchers, clusters);
# the others get the `timeout` of pyproject.toml
SLOW_TIMEOUT_S = 900


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


# the folder holding the package the tests import: the source tree, or site-packages when installed
PACKAGE_PARENT = Path(mlpframe.__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One data folder per test session (MNIST-1D is generated into it once)."""
    return tmp_path_factory.mktemp("mlpframe-data")


def cli_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MLPFRAME_DATA"] = str(data_dir)
    env.pop("HYDRA_FULL_ERROR", None)
    # one BLAS thread per process: several test processes share two cores
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONWARNINGS"] = "ignore"
    return env


@pytest.fixture(scope="session")
def cli_environ(data_cache: Path) -> dict[str, str]:
    """The environment ``run_cli`` uses, for tests that start ``python -m mlpframe`` themselves."""
    return cli_env(data_cache)


RunCli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def run_cli(tmp_path: Path, data_cache: Path) -> RunCli:
    """``run_cli("train", "data=synthetic", ...)``: ``python -m mlpframe ...`` in ``tmp_path``.

    Returns the finished process (``returncode``, ``stdout``, ``stderr`` as text).
    """

    def run(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None
            ) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mlpframe", *args], cwd=cwd or tmp_path,
                              env={**cli_env(data_cache), **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)

    return run
