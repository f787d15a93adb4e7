"""Schema objects -> library objects, for ``train`` and ``evaluate``.

Each component's schema (:mod:`mlpframe.cli.config`) builds its own object; these
functions add the run's seed and dtype and turn a library ``ValueError`` into a
:class:`~mlpframe.cli.schema.ConfigError` naming the config group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from mlpframe.backend import Backend
from mlpframe.cli.config import DataConfig, ModelConfig, OptimizerConfig, SchedulerConfig
from mlpframe.cli.schema import ConfigError

T = TypeVar("T")


def as_config_error(group: str, make: Callable[[], T]) -> T:
    try:
        return make()
    except ValueError as exc:
        raise ConfigError(group, str(exc)) from None


def load_data(data: DataConfig, *, seed: int, progress: bool = True) -> Any:
    return data.load(seed=seed, progress=progress)


def build_model(model: ModelConfig, input_shape: tuple[int, ...], num_classes: int, *, seed: int,
                dtype: str = "float32") -> Any:
    """The model, initialised on the host from ``default_rng(seed)`` (the same on every backend)."""
    return as_config_error("model", lambda: model.build(tuple(input_shape), num_classes,
                                                        rng=np.random.default_rng(seed), dtype=dtype))


def build_criterion(model: ModelConfig) -> Any:
    return as_config_error("model", model.criterion)


def build_optimizer(optimizer: OptimizerConfig, params: list) -> Any:
    return as_config_error("optimizer", lambda: optimizer.build(params))


def build_scheduler(scheduler: SchedulerConfig, optimizer: Any, max_epochs: int) -> Any:
    return as_config_error("scheduler", lambda: scheduler.build(optimizer, max_epochs))


def make_loader(split: tuple[np.ndarray, np.ndarray], batch_size: int, backend: Backend, *, train: bool,
                seed: int = 0) -> Any:
    from mlpframe.data import DataLoader

    X, y = split
    return DataLoader(X, y, batch_size, backend, shuffle=train, drop_last=train, seed=seed)
