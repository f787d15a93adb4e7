"""The sweep presets compose (hydra.compose, in process): Optuna search spaces, launchers, Slurm."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mlpframe.cli.common import config_dir

SWEEPER = "hydra_plugins.mlpframe_optuna_sweeper.mlpframe_optuna_sweeper.MlpframeOptunaSweeper"


def hydra_cfg(*overrides: str):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("preset, data", [("mnist1d_optuna", "mnist1d"), ("cifar10_optuna", "cifar10")])
def test_optuna_presets_compose_with_a_stable_sqlite_study(preset, data):
    cfg = hydra_cfg(f"hparams_search={preset}")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == SWEEPER
    assert cfg.data.name == data
    assert cfg.optimized_metric == "val/acc_best" and sweeper.direction == "maximize"
    assert cfg.hydra.mode.name == "MULTIRUN"
    # resumable: the sweep dir is named after the study, not a timestamp, and holds the database
    assert cfg.hydra.sweep.dir == f"multirun/optuna/{sweeper.study_name}"
    assert sweeper.storage == f"sqlite:///multirun/optuna/{sweeper.study_name}/optuna.db"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == cfg.seed
    # scalar choices only (Optuna cannot choose lists); the learning rate on a log scale
    params = {k: OverridesParser.create().parse_override(f"{k}={v}") for k, v in sweeper.params.items()}
    assert set(params) == {"optimizer", "optimizer.lr", "optimizer.weight_decay", "model.width", "model.depth"}
    assert params["optimizer"].is_choice_sweep()
    assert "log" in params["optimizer.lr"].value().tags
    for key in ("model.width", "model.depth"):
        assert all(isinstance(x, int) for x in params[key].value().list)
    assert sweeper.pruner is None and sweeper.pruning_metric == "val/acc"


def test_pruning_is_one_override():
    cfg = hydra_cfg("hparams_search=mnist1d_optuna", "hydra.sweeper.pruner=median",
                    "hydra.sweeper.pruner_kwargs.n_startup_trials=2")
    assert cfg.hydra.sweeper.pruner == "median"
    assert cfg.hydra.sweeper.pruner_kwargs.n_startup_trials == 2


def test_slurm_preset_composes_with_cluster_settings_as_config():
    cfg = hydra_cfg("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=120",
                    "hydra.launcher.gpus_per_node=2", "hydra.launcher.cpus_per_task=4")
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.mlpframe_slurm_launcher.MlpframeSlurmLauncher"
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node, launcher.cpus_per_task) == \
        ("gpu", 120, 2, 4)
    defaults = hydra_cfg("hydra/launcher=slurm").hydra.launcher
    assert defaults.gpus_per_node == 1 and defaults.partition is None
    assert OmegaConf.select(cfg, "hydra.launcher.submitit_folder", throw_on_resolution_failure=False) is not None


@pytest.mark.parametrize("launcher, target", [
    ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("submitit_local", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"),
    ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
])
def test_stock_launchers_compose(launcher, target):
    assert hydra_cfg(f"hydra/launcher={launcher}").hydra.launcher._target_ == target
