"""Learning-rate schedules, stepped once per epoch.

Each schedule is a closed form ``lr(base_lr, epoch)``: ``step()`` advances the epoch
and writes the new value into every param group's ``"lr"``, which the optimizer
reads at its next step. The values equal PyTorch's for the schedulers of the same
name (``StepLR``, ``CosineAnnealingLR``; ``LinearWarmup`` = ``LinearLR`` followed by
the inner schedule, as ``SequentialLR`` chains them).

Because the value comes from the closed form, a manual change of ``group["lr"]``
lasts only until the next ``step()`` (PyTorch's chainable forms would build on it).
As in PyTorch, construction applies epoch 0 and records the base rate once per
group as ``group["initial_lr"]``, so several schedulers on one optimizer agree on it.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from mlpframe.optim.optimizer import Optimizer, check_number


class LRScheduler:
    """Base class; on its own the constant schedule ``lr = base_lr``.

    Subclasses override :meth:`lr_at`. Usage::

        sched = StepLR(opt, step_size=30)
        for epoch in range(epochs):
            train_one_epoch(...)    # opt.step() many times
            sched.step()            # once per epoch, after the epoch

    Attributes:
        optimizer: the optimizer whose groups' ``"lr"`` this sets.
        base_lrs: each group's ``initial_lr``.
        last_epoch: epochs stepped so far (0 right after construction).
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(getattr(optimizer, "param_groups", None), list):
            raise ValueError(f"optimizer: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [float(g.setdefault("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._last_lr = self._apply(0)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        """The learning rate of a group whose base rate is ``base_lr``, at ``epoch`` (0, 1, …)."""
        return base_lr

    def step(self) -> None:
        """Advance one epoch and set each group's ``"lr"``."""
        self.last_epoch += 1
        self._last_lr = self._apply(self.last_epoch)

    def get_last_lr(self) -> list[float]:
        """The learning rate set by the last ``step()`` (or the constructor), one per group."""
        return list(self._last_lr)

    def _apply(self, epoch: int) -> list[float]:
        self.last_epoch = epoch
        lrs = [float(self.lr_at(base, epoch)) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        return lrs

    # ------------------------------------------------------------ checkpoints
    def _hparams(self) -> dict[str, Any]:
        """The schedule's own arguments, saved with its state (validated on load by ``__init__``'s checks)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """``{"last_epoch": int, "base_lrs": [float], **hyperparameters}``: plain data, no arrays."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), **self._hparams()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the epoch, base rates and hyperparameters, and set the optimizer's lr to match."""
        expected = {"last_epoch", "base_lrs", *self._hparams()}
        if set(state_dict) != expected:
            raise ValueError(
                f"state_dict: {type(self).__name__} expects the keys {sorted(expected)}, got {sorted(state_dict)}"
            )
        base_lrs = [float(b) for b in state_dict["base_lrs"]]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"state_dict: has {len(base_lrs)} base lr(s), the optimizer has "
                f"{len(self.optimizer.param_groups)} param group(s)"
            )
        last_epoch = int(state_dict["last_epoch"])
        if last_epoch < 0:
            raise ValueError(f"state_dict: last_epoch must be >= 0, got {last_epoch}")
        self._load_hparams(state_dict)
        self.base_lrs = base_lrs
        self._last_lr = self._apply(last_epoch)

    def _load_hparams(self, state_dict: dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self._hparams().items() if not isinstance(v, dict))
        return f"{type(self).__name__}({hp})"


def _check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int; ``ValueError`` naming ``name`` unless it is an integer >= ``low``."""
    try:
        n = operator.index(value)  # ints and NumPy integers; not floats, not strings
    except TypeError:
        n = None
    if n is None or isinstance(value, bool) or n < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return n


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``: decay by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size, self.gamma = self._check(step_size, gamma)
        super().__init__(optimizer)

    @staticmethod
    def _check(step_size: Any, gamma: Any) -> tuple[int, float]:
        step_size = _check_int("step_size", step_size, 1)
        check_number("gamma", gamma, low_open=True)
        return step_size, float(gamma)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)

    def _hparams(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def _load_hparams(self, state_dict: dict[str, Any]) -> None:
        self.step_size, self.gamma = self._check(state_dict["step_size"], state_dict["gamma"])


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2`` (SGDR without restarts).

    Reaches ``eta_min`` at ``epoch == T_max``; past it the cosine continues, rising
    again, as PyTorch's does.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max, self.eta_min = self._check(T_max, eta_min)
        super().__init__(optimizer)

    @staticmethod
    def _check(T_max: Any, eta_min: Any) -> tuple[int, float]:
        T_max = _check_int("T_max", T_max, 1)
        check_number("eta_min", eta_min)
        return T_max, float(eta_min)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2

    def _hparams(self) -> dict[str, Any]:
        return {"T_max": self.T_max, "eta_min": self.eta_min}

    def _load_hparams(self, state_dict: dict[str, Any]) -> None:
        self.T_max, self.eta_min = self._check(state_dict["T_max"], state_dict["eta_min"])


class LinearWarmup(LRScheduler):
    """Linear warm-up, then another schedule (or the constant base rate).

    For ``epoch < warmup_epochs``::

        lr = base_lr * (start_factor + (1 - start_factor) * epoch / warmup_epochs)

    and from ``warmup_epochs`` on, ``after``'s schedule restarted at its epoch 0, i.e.
    ``after.lr_at(base_lr, epoch - warmup_epochs)`` — PyTorch's
    ``SequentialLR([LinearLR(start_factor, total_iters=warmup_epochs), after], milestones=[warmup_epochs])``.

    Args:
        optimizer: the optimizer (the same one ``after`` was built on).
        warmup_epochs: length of the ramp, >= 1.
        start_factor: the fraction of ``base_lr`` at epoch 0, in [0, 1].
        after: the schedule that takes over; ``None`` keeps ``base_lr``. Step only
            this wrapper: it drives ``after``.
    """

    def __init__(self, optimizer: Optimizer, warmup_epochs: int, start_factor: float = 1.0 / 3,
                 after: LRScheduler | None = None) -> None:
        self.warmup_epochs, self.start_factor = self._check(warmup_epochs, start_factor)
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("after: the inner scheduler must be built on the same optimizer")
        self.after = after if after is not None else LRScheduler(optimizer)
        super().__init__(optimizer)

    @staticmethod
    def _check(warmup_epochs: Any, start_factor: Any) -> tuple[int, float]:
        warmup_epochs = _check_int("warmup_epochs", warmup_epochs, 1)
        check_number("start_factor", start_factor, high=1.0, low_open=True)
        return warmup_epochs, float(start_factor)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        if epoch >= self.warmup_epochs:
            return self.after.lr_at(base_lr, epoch - self.warmup_epochs)
        return base_lr * (self.start_factor + (1 - self.start_factor) * epoch / self.warmup_epochs)

    def _apply(self, epoch: int) -> list[float]:
        # keep the inner schedule's own epoch counter in step (it is saved with ours)
        self.after.last_epoch = max(epoch - self.warmup_epochs, 0)
        return super()._apply(epoch)

    def _hparams(self) -> dict[str, Any]:
        return {"warmup_epochs": self.warmup_epochs, "start_factor": self.start_factor,
                "after": {"type": type(self.after).__name__, **self.after.state_dict()}}

    def _load_hparams(self, state_dict: dict[str, Any]) -> None:
        warmup_epochs, start_factor = self._check(state_dict["warmup_epochs"], state_dict["start_factor"])
        after = dict(state_dict["after"])
        kind = after.pop("type", None)
        if kind != type(self.after).__name__:
            raise ValueError(
                f"state_dict: saved with {kind} after the warm-up, this scheduler has {type(self.after).__name__}"
            )
        self.after.load_state_dict(after)
        self.warmup_epochs, self.start_factor = warmup_epochs, start_factor
