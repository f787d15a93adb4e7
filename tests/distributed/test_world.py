"""How a process learns its rank from the launcher (mpiexec, srun) and the distributed config group."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from mlpframe.cli.common import config_dir
from mlpframe.cli.config import ConfigError, validate_train
from mlpframe.distributed.world import is_quiet_rank, launcher_world

LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMIX_SIZE",
                 "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_ID")


@pytest.fixture
def launched(monkeypatch):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)

    def set_vars(**env: str) -> None:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    return set_vars


@pytest.mark.parametrize("env, expected", [
    ({}, (0, 1)),
    ({"PMI_RANK": "1", "PMI_SIZE": "3"}, (1, 3)),  # MPICH's mpiexec, and srun --mpi=pmi2
    ({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4"}, (2, 4)),  # Open MPI
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0"}, (1, 2)),  # a task of srun
    # a batch script's own shell in a 2-task allocation is one process, not rank 0 of 2
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, (0, 1)),
])
def test_launcher_world_reads_the_launchers_variables(launched, env, expected):
    launched(**env)
    assert launcher_world() == expected
    assert is_quiet_rank() == (expected[0] != 0)


def make(*overrides: str):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", list(overrides))


def test_distributed_group_defaults_to_one_process_and_selects_mpi():
    assert validate_train(make()).distributed.name == "none"
    s = validate_train(make("distributed=mpi"))
    assert (s.distributed.name, s.distributed.gpu_reduce) == ("mpi", "nccl")


def test_a_bad_gpu_reduce_names_its_key():
    with pytest.raises(ConfigError, match=r"distributed\.gpu_reduce"):
        validate_train(make("distributed=mpi", "distributed.gpu_reduce=gloo"))
