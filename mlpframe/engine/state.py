"""What a checkpoint must hold for the training loop to continue: counters, a partial epoch, the random stream.

:class:`TrainState` is the loop's own bookkeeping. After an interrupt mid-epoch it
also holds ``step_in_epoch`` and ``epoch_progress``: the running sums of that epoch
(host numbers, and the unsynced device sums as host arrays of their own dtype), its
training time so far, its number of batches, and the backend's random stream
(:meth:`Backend.rng_state`), which is what the rest of the epoch's dropout masks are drawn from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TrainState:
    """Everything the loop itself needs to continue a run (saved in every checkpoint)."""

    epoch: int = 0  # completed epochs
    global_step: int = 0
    best_val_acc: float = -math.inf
    best_val_loss: float = math.nan
    best_epoch: int = 0
    samples_seen: int = 0
    train_time_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    step_in_epoch: int = 0  # steps of epoch `epoch` already done (a mid-epoch interrupt); 0 at a boundary
    epoch_progress: dict[str, Any] | None = None  # that partial epoch's sums, timing and random state

    def validate(self) -> None:
        """``ValueError`` naming the field when a loaded state cannot be continued from."""
        for name in ("epoch", "global_step", "best_epoch", "samples_seen", "step_in_epoch"):
            _count(getattr(self, name), f"trainer.{name}")
        for name in ("best_val_acc", "best_val_loss", "train_time_s"):
            _number(getattr(self, name), f"trainer.{name}")
        if not isinstance(self.history, list) or not all(isinstance(h, dict) for h in self.history):
            raise ValueError("trainer.history: expected a list of dicts")
        if not self.step_in_epoch:
            return
        p = self.epoch_progress
        keys = {"loss_sum", "correct", "n", "train_time_s", "num_batches", "accumulator", "rng"}
        if not isinstance(p, dict) or not keys <= set(p):
            raise ValueError("trainer.epoch_progress: missing or incomplete for a mid-epoch checkpoint")
        for name in ("correct", "n", "num_batches"):
            _count(p[name], f"trainer.epoch_progress.{name}")
        for name in ("loss_sum", "train_time_s"):
            _number(p[name], f"trainer.epoch_progress.{name}")
        acc = p["accumulator"]
        if not isinstance(acc, dict) or not {"loss_sum", "correct", "n", "batches"} <= set(acc):
            raise ValueError("trainer.epoch_progress.accumulator: expected loss_sum, correct, n, batches")
        _count(acc["n"], "trainer.epoch_progress.accumulator.n")
        _count(acc["batches"], "trainer.epoch_progress.accumulator.batches")
        sums = (acc["loss_sum"], acc["correct"])
        if sums != (None, None) and not all(isinstance(a, np.ndarray) and a.shape == () and a.dtype.kind in "fiu"
                                            for a in sums):
            raise ValueError("trainer.epoch_progress.accumulator: the running sums must be numeric scalars")
        if p["rng"] is not None and not isinstance(p["rng"], dict):
            raise ValueError("trainer.epoch_progress.rng: expected a generator state or null")


def _count(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key}: expected an integer >= 0, got {value!r}")


def _number(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key}: expected a number, got {value!r}")
