"""The contract between the :class:`~mlpframe.engine.Trainer` and its callbacks.

This module imports nothing of the trainer: the trainer and every callback import
it, never each other. A callback sees the trainer as a :class:`Run` — the few
attributes and the two methods it may use — and hands nothing back but through
``run.stop``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mlpframe.engine.state import TrainState

# how a run ended; decided only by the trainer (``Trainer.stop``, an interrupt, or reaching max_epochs)
STATUSES = ("completed", "diverged", "interrupted", "pruned")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        status: one of :data:`STATUSES`.
        metrics: host floats: ``val/acc_best``, ``test/acc``, ``test/loss``, ``epochs``,
            ``wall_time_s``, ``samples_per_s``, the last epoch's train/val metrics, ….
        history: one dict of metrics per completed epoch.
        confusion: the test set's confusion matrix (true x predicted), if tested.
        message: why the run stopped early, if it did.
    """

    status: str
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    confusion: np.ndarray | None = None
    message: str = ""


class Run(Protocol):
    """What a callback may use of the trainer that calls it."""

    model: Any
    backend: Any
    max_epochs: int
    state: TrainState

    def stop(self, status: str, message: str = "") -> None:
        """End the run after this epoch with ``status`` (``completed``, ``diverged`` or ``pruned``)."""

    def checkpoint_state(self) -> dict[str, Any]:
        """The whole training state, to save."""


class Callback:
    """Base class; every hook is a no-op. ``state_dict``/``load_state_dict`` survive resumes.

    Contract: the trainer calls each hook on its callbacks in ascending ``order`` (ties in
    the order given), only at its sync points (never per step). A callback reads the run
    and the metrics it is handed and never changes them; it changes how the run goes only
    through ``run.stop(status, message)``. ``name`` keys its state in a checkpoint.
    """

    name = "callback"
    order = 0  # ModelCheckpoint is 100: last, so the file holds the others' state after their hook

    def on_fit_start(self, run: Run) -> None: ...

    def on_epoch_start(self, run: Run, epoch: int, num_batches: int) -> None: ...

    def on_train_sync(self, run: Run, metrics: dict[str, float], steps: int) -> None:
        """After a host sync inside an epoch: ``metrics`` hold ``train/loss``, ``train/acc`` of
        the ``steps`` steps since the previous sync."""

    def on_epoch_end(self, run: Run, metrics: dict[str, Any]) -> None: ...

    def on_interrupt(self, run: Run) -> None:
        """The run was interrupted mid-epoch; ``run.checkpoint_state()`` can resume from here."""

    def on_fit_end(self, run: Run, result: TrainResult) -> None: ...

    def teardown(self, run: Run) -> None:
        """Always called last, also after an exception: close files here."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
