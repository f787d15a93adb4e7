"""The `python -m mlpframe` dispatcher and the train task's return value (in process)."""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from mlpframe.__main__ import hoist_config_dir, rewrite_override, usage
from mlpframe.cli.common import config_dir
from mlpframe.cli.train import train

from .helpers import FAST


@pytest.mark.parametrize("arg, expected", [
    ("+backend=cupy", "backend=cupy"), ("++backend=numpy", "backend=numpy"), ("backend=cupy", "backend=cupy"),
    ("+backend.device=1", "+backend.device=1"), ("+trainer.foo=1", "+trainer.foo=1"),
])
def test_backend_group_overrides_are_normalised(arg, expected):
    assert rewrite_override(arg) == expected


@pytest.mark.parametrize("args, expected", [
    (["ckpt_path=x", "--config-dir", "conf", "model=m"], ["--config-dir", "conf", "ckpt_path=x", "model=m"]),
    (["a=1", "-cd", "c", "b=2"], ["-cd", "c", "a=1", "b=2"]),
    (["a=1", "--config-dir=c", "-m", "b=2"], ["--config-dir=c", "a=1", "-m", "b=2"]),
    (["-m", "a=1,2"], ["-m", "a=1,2"]),
])
def test_config_dir_goes_before_the_overrides(args, expected):
    assert hoist_config_dir(args) == expected


def test_usage_lists_the_commands():
    text = usage()
    assert all(f"  {c}" in text for c in ("train", "evaluate", "gradcheck"))


def run_task(tmp_path, *overrides, mode=RunMode.RUN):
    """Call the train task as Hydra would, with the run dir set to ``tmp_path``."""
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
        cfg.hydra.mode = mode
    HydraConfig.instance().set_config(cfg)
    task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return train(task_cfg)


def test_train_returns_the_optimized_metric_as_a_float(tmp_path):
    value = run_task(tmp_path, *FAST, "logger=none", "optimized_metric=test/acc")
    metrics = OmegaConf.to_container(OmegaConf.load(tmp_path / "metrics.json"))
    assert isinstance(value, float) and value == metrics["test/acc"]


def test_a_diverged_run_returns_nan(tmp_path):
    assert math.isnan(run_task(tmp_path, *FAST, "logger=none", "optimizer.lr=1e6"))


def test_a_bad_job_in_a_sweep_returns_nan_and_records_why(tmp_path):
    value = run_task(tmp_path, *FAST, "optimizer.lr=-1", mode=RunMode.MULTIRUN)
    metrics = OmegaConf.to_container(OmegaConf.load(tmp_path / "metrics.json"))
    assert math.isnan(value) and metrics["status"] == "failed" and "optimizer.lr" in metrics["error"]


def test_a_bad_single_run_exits_2(tmp_path):
    with pytest.raises(SystemExit) as info:
        run_task(tmp_path / "run", *FAST, "optimizer.lr=-1")
    assert info.value.code == 2
