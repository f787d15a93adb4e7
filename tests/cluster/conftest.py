"""A real single-node Slurm for the tests in this folder, started once per session.

Needs Debian's ``slurm-wlm`` and ``munge`` (``.ci/run`` installs them) and root;
elsewhere every test here is skipped with the reason. The daemons' state, logs,
munge key and ``slurm.conf`` live in a temporary folder; they are stopped by
process id when the session ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env

from .cluster import SlurmCluster, missing

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

# the launcher options that fit the test cluster (no GPUs, 2 cores, 8 GB)
ON_CLUSTER = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0",
              "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> SlurmCluster:
    reason = missing()
    if reason:
        pytest.skip(f"no test cluster: {reason}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_env(slurm: SlurmCluster, data_cache: Path) -> dict[str, str]:
    """The CLI's test environment, pointed at the cluster (``SLURM_CONF``)."""
    return {**cli_env(data_cache), "SLURM_CONF": str(slurm.conf)}


def mlpframe(*args: str, cwd: Path, env: dict[str, str], timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlpframe", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)


def wait_for(predicate, timeout: float = 120, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate.__doc__ or predicate}")
