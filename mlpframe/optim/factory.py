"""Optimizers and schedules by name, for the command line and configs."""

from __future__ import annotations

import inspect
from typing import Any

from mlpframe.optim.adam import Adam, AdamW
from mlpframe.optim.lr_scheduler import CosineAnnealingLR, LinearWarmup, LRScheduler, StepLR
from mlpframe.optim.optimizer import Optimizer, Params
from mlpframe.optim.sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
SCHEDULERS: dict[str, type[LRScheduler]] = {"none": LRScheduler, "step": StepLR, "cosine": CosineAnnealingLR}


def _check_kwargs(kind: str, name: str, cls: type, kwargs: dict[str, Any]) -> None:
    """``ValueError`` for a keyword ``cls`` does not take or a required one missing (not a TypeError)."""
    args = list(inspect.signature(cls.__init__).parameters.values())[2:]  # after self and params/optimizer
    allowed = [a.name for a in args]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"{kind}: {name!r} takes no argument {', '.join(unknown)} (it takes {', '.join(allowed) or 'none'})"
        )
    missing = [a.name for a in args if a.default is inspect.Parameter.empty and a.name not in kwargs]
    if missing:
        raise ValueError(f"{kind}: {name!r} needs {', '.join(missing)}")


def build_optimizer(name: str, params: Params, **kwargs: Any) -> Optimizer:
    """``"sgd"``, ``"adam"`` or ``"adamw"`` over ``params``; ``kwargs`` are the class's arguments.

    ``ValueError`` for an unknown name, an argument the optimizer does not take, or a
    bad value.
    """
    cls = OPTIMIZERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"optimizer: unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)})")
    _check_kwargs("optimizer", name, cls, kwargs)
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])  # a list from YAML
    return cls(params, **kwargs)


def build_scheduler(name: str, optimizer: Optimizer, warmup_epochs: int = 0,
                    warmup_start_factor: float = 1.0 / 3, **kwargs: Any) -> LRScheduler:
    """``"none"`` (constant), ``"step"`` or ``"cosine"`` on ``optimizer``, optionally after a warm-up.

    ``kwargs`` are the schedule's arguments (``step_size``, ``gamma``; ``T_max``,
    ``eta_min``). With ``warmup_epochs > 0`` the result is a :class:`LinearWarmup`
    from ``warmup_start_factor`` that hands over to the named schedule, whose epoch 0
    is the first epoch after the warm-up (so ``T_max`` counts post-warm-up epochs).
    Always returns a scheduler: call ``step()`` once per epoch either way.
    """
    cls = SCHEDULERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"scheduler: unknown scheduler {name!r} (choose from {', '.join(SCHEDULERS)})")
    _check_kwargs("scheduler", name, cls, kwargs)
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs: expected an integer >= 0, got {warmup_epochs!r}")
    scheduler = cls(optimizer, **kwargs)
    if warmup_epochs == 0:
        return scheduler
    try:
        return LinearWarmup(optimizer, warmup_epochs, start_factor=warmup_start_factor, after=scheduler)
    except ValueError as exc:  # named as the caller named it
        raise ValueError(f"warmup_{exc}" if str(exc).startswith("start_factor") else str(exc)) from None
