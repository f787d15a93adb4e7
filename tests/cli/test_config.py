"""Config composition (hydra.compose, in process) and value validation."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mlpframe.cli.common import config_dir, format_hydra_error
from mlpframe.cli.config import ConfigError, hidden_sizes, validate_train


def make(*overrides: str, name: str = "train"):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose(name, list(overrides))


def test_default_config_is_valid_and_keeps_the_documented_keys():
    cfg = make()
    validate_train(cfg)
    assert cfg.backend.name == "numpy" and cfg.data.name == "mnist1d" and cfg.optimizer.name == "sgd"
    assert cfg.optimized_metric == "val/acc_best" and cfg.ckpt_path is None
    for key in ("seed", "data.root", "data.download", "data.url", "data.md5", "data.batch_size", "data.val_size",
                "model.hidden", "model.width", "model.depth", "model.activation", "model.norm", "model.dropout",
                "optimizer.lr", "optimizer.momentum", "optimizer.weight_decay", "scheduler.warmup_epochs",
                "trainer.max_epochs", "trainer.grad_clip", "trainer.log_every_n_steps"):
        assert OmegaConf.select(cfg, key, default="<absent>") != "<absent>", key


@pytest.mark.parametrize("overrides", [
    ["optimizer=adam"], ["optimizer=adamw", "optimizer.betas=[0.8,0.99]"], ["scheduler=step"],
    ["scheduler=cosine", "scheduler.warmup_epochs=2"], ["scheduler=none"], ["backend=cupy"], ["logger=none"],
    ["data=synthetic", "data.n_samples=100"], ["model.norm=batch"], ["model.norm=layer", "model.dropout=0.5"],
    ["trainer.grad_clip=1.0", "trainer.early_stopping_patience=3"], ["model.width=64", "model.depth=3"],
])
def test_every_option_composes_and_validates(overrides):
    validate_train(make(*overrides))


def test_dl1_preset_has_the_homework_defaults():
    cfg = make("experiment=dl1_cifar10")
    assert cfg.data.name == "cifar10" and cfg.data.batch_size == 128
    assert list(cfg.model.hidden) == [128] and cfg.model.activation == "elu" and cfg.model.output == "softmax"
    assert cfg.model.norm is None and cfg.model.dropout == 0.0
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.lr == 0.1 and cfg.optimizer.momentum == 0.0
    assert cfg.optimizer.weight_decay == 0.0 and cfg.scheduler.name == "none"
    assert cfg.trainer.max_epochs == 10 and cfg.seed == 42
    validate_train(cfg)


def test_width_and_depth_replace_hidden():
    assert hidden_sizes({"hidden": [128, 64]}) == [128, 64]
    assert hidden_sizes({"hidden": [128, 64], "width": 32, "depth": 3}) == [32, 32, 32]
    assert hidden_sizes({"hidden": [128, 64], "width": 32}) == [32, 32]
    assert hidden_sizes({"hidden": [128, 64], "depth": 1}) == [128]


@pytest.mark.parametrize("override, key", [
    ("optimizer.lr=-1", "optimizer.lr"), ("optimizer.lr=0", "optimizer.lr"), ("optimizer.lr=nan", "optimizer.lr"),
    ("optimizer.momentum=1.5", "optimizer.momentum"), ("optimizer.weight_decay=-0.1", "optimizer.weight_decay"),
    ("model.hidden=[]", "model.hidden"), ("model.hidden=[64,0]", "model.hidden[1]"), ("model.width=0", "model.width"),
    ("model.activation=swish", "model.activation"), ("model.norm=group", "model.norm"),
    ("model.dropout=1.0", "model.dropout"), ("model.output=probits", "model.output"),
    ("data.batch_size=0", "data.batch_size"), ("data.name=imagenet", "data.name"), ("data.val_size=-5", "data.val_size"),
    ("backend.name=tpu", "backend.name"), ("seed=-3", "seed"), ("dtype=float16", "dtype"),
    ("trainer.max_epochs=0", "trainer.max_epochs"), ("trainer.grad_clip=0", "trainer.grad_clip"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps"),
    ("trainer.early_stopping_patience=0", "trainer.early_stopping_patience"),
    ("optimized_metric=val/f1", "optimized_metric"), ("logger.name=wandb", "logger.name"),
    ("scheduler.warmup_epochs=-1", "scheduler.warmup_epochs"),
])
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError) as info:
        validate_train(make(override))
    assert info.value.key == key and str(info.value).startswith(key + ":")


@pytest.mark.parametrize("override, expected", [
    ("optimizer.lr=fast", "optimizer.lr"),
    ("trainer.nope=1", "trainer.nope"),
    ("model.hidden=5", "model.hidden"),
    ("seed=1.5", "seed"),
    ("data=imagenet", "data/imagenet"),
    ("optimizer=rmsprop", "optimizer/rmsprop"),
    ("model.hidden=[", "override"),
])
def test_composition_errors_become_one_line_naming_the_key(override, expected):
    with pytest.raises((HydraException, OmegaConfBaseException)) as info:
        make(override)
    text = format_hydra_error(info.value)
    assert "\n" not in text and expected in text
    assert "base_" not in text  # schema entries are not offered as options
