"""Config (plain dicts) -> objects: data, model, loss, optimizer, schedule.

Shared by ``train`` and ``evaluate`` (which rebuilds the model from the config
stored in a checkpoint), so these take plain mappings, not Hydra objects.
Library ``ValueError``s become :class:`~mlpframe.config.ConfigError`s naming the
config group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlpframe import nn, optim
from mlpframe.backend import Backend
from mlpframe.config import ConfigError, hidden_sizes

DATA_LOADER_KEYS = ("root", "download", "url", "md5", "sha256", "val_size", "normalize", "flatten",
                    "n_samples", "num_classes", "noise", "turns", "test_size")


def load_data(data: Mapping[str, Any], *, seed: int, progress: bool = True) -> Any:
    """``load_dataset(data.name, ...)`` with every data key except ``batch_size``."""
    from mlpframe.data import load_dataset

    kwargs = {k: data[k] for k in DATA_LOADER_KEYS if k in data}
    extra = {k: v for k, v in data.items() if k not in (*DATA_LOADER_KEYS, "name", "batch_size")}
    return load_dataset(data["name"], seed=seed, progress=progress, **kwargs, **extra)


def build_model(model: Mapping[str, Any], in_features: int, num_classes: int, *, seed: int,
                dtype: str = "float32") -> nn.Module:
    """The MLP of ``model``; initialised on the host from ``default_rng(seed)`` (same on every backend)."""
    try:
        mlp = nn.MLP(in_features, hidden=hidden_sizes(model), out_features=num_classes,
                     activation=model["activation"], norm=model.get("norm"), dropout=float(model.get("dropout", 0.0)),
                     rng=np.random.default_rng(seed), dtype=dtype, init=model.get("init", "kaiming"))
    except ValueError as exc:
        raise ConfigError("model", str(exc)) from None
    if model.get("output", "logits") == "softmax":
        return nn.Sequential(mlp, nn.Softmax())
    return mlp


def build_criterion(model: Mapping[str, Any]) -> nn.Module:
    """Cross-entropy on logits, or on probabilities after the model's Softmax (``output: softmax``)."""
    try:
        return nn.CrossEntropyLoss(from_logits=model.get("output", "logits") != "softmax",
                                   label_smoothing=float(model.get("label_smoothing", 0.0)))
    except ValueError as exc:
        raise ConfigError("model", str(exc)) from None


def build_optimizer(cfg: Mapping[str, Any], params: list) -> optim.Optimizer:
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    try:
        return optim.build_optimizer(cfg["name"], params, **kwargs)
    except ValueError as exc:
        raise ConfigError("optimizer", str(exc)) from None


def build_scheduler(cfg: Mapping[str, Any], optimizer: optim.Optimizer, max_epochs: int) -> optim.LRScheduler:
    """The epoch schedule; cosine's ``T_max`` defaults to the epochs after warm-up."""
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    if cfg["name"] == "cosine" and kwargs.get("T_max") is None:
        kwargs["T_max"] = max(1, max_epochs - int(kwargs.get("warmup_epochs", 0)))
    try:
        return optim.build_scheduler(cfg["name"], optimizer, **kwargs)
    except ValueError as exc:
        raise ConfigError("scheduler", str(exc)) from None


def make_loader(split: tuple[np.ndarray, np.ndarray], batch_size: int, backend: Backend, *, train: bool,
                seed: int = 0) -> Any:
    from mlpframe.data import DataLoader

    X, y = split
    return DataLoader(X, y, batch_size, backend, shuffle=train, drop_last=train, seed=seed)
