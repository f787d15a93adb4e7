"""The training loop: epochs, validation, best-model tracking, test, divergence.

Per step the trainer does forward, loss, backward, optional clipping and the
optimizer step, and adds the batch's loss and correct count to device-side
accumulators. The host sees those numbers once every ``log_every_n_steps`` steps
and at the end of each epoch (the lines marked ``# host sync``); that is also
where a non-finite loss is noticed, so a diverging run stops within one log
interval. It knows nothing of Hydra: plain objects in, a :class:`TrainResult` out.

Randomness is re-derived at every epoch start from ``(seed, epoch)`` — the
backend's random stream (dropout) and the loader's shuffling — so a run resumed
from an epoch-boundary checkpoint repeats the uninterrupted run bit for bit.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlpframe.backend import Backend
from mlpframe.engine.callbacks import Callback
from mlpframe.engine.checkpoint import Checkpoint
from mlpframe.engine.metrics import Accumulator, epoch_seed, evaluate

log = logging.getLogger("mlpframe")

STATUSES = ("completed", "diverged", "interrupted")


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


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        status: ``"completed"``, ``"diverged"`` or ``"interrupted"``.
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


class Trainer:
    """Fits ``model`` with ``optimizer`` on batches from data loaders.

    Args:
        model: an :class:`mlpframe.nn.Module` on ``backend``.
        criterion: a loss module: ``loss = criterion(outputs, y)``, ``criterion.backward()``.
        optimizer: an :class:`mlpframe.optim.Optimizer` over the model's parameters.
        backend: the model's backend (seeding, host transfers).
        scheduler: stepped once per epoch, after validation; ``None`` for a constant lr.
        max_epochs: train until this many epochs are complete.
        grad_clip: clip the global gradient norm to this value; ``None`` disables.
        log_every_n_steps: steps between host syncs of the running metrics.
        seed: the run's seed; epoch ``e`` uses :func:`epoch_seed` ``(seed, e)``.
        callbacks: progress, checkpoints, logging, early stopping…
        config: a JSON-able description of the run, saved in checkpoints.
    """

    def __init__(self, model: Any, criterion: Any, optimizer: Any, backend: Backend, *,
                 scheduler: Any = None, max_epochs: int = 10, grad_clip: float | None = None,
                 log_every_n_steps: int = 50, seed: int = 0, callbacks: Sequence[Callback] = (),
                 config: dict[str, Any] | None = None) -> None:
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 0:
            raise ValueError(f"max_epochs: expected an integer >= 0, got {max_epochs!r}")
        if isinstance(log_every_n_steps, bool) or not isinstance(log_every_n_steps, int) or log_every_n_steps < 1:
            raise ValueError(f"log_every_n_steps: expected an integer >= 1, got {log_every_n_steps!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip: expected a positive number or None, got {grad_clip!r}")
        self.model, self.criterion, self.optimizer, self.backend = model, criterion, optimizer, backend
        self.scheduler = scheduler
        self.max_epochs, self.grad_clip, self.log_every_n_steps = max_epochs, grad_clip, log_every_n_steps
        self.seed = int(seed)
        # checkpoints go last so they save the other callbacks' state after this epoch's update
        self.callbacks = sorted(callbacks, key=lambda cb: getattr(cb, "order", 0))
        self.config = config or {}
        self.state = TrainState()
        self.best_state: dict[str, np.ndarray] | None = None
        self.last_metrics: dict[str, Any] = {}
        self._stop: tuple[str, str] | None = None
        self._interrupt = False

    # ----------------------------------------------------------------- control
    def stop(self, status: str, message: str = "") -> None:
        """Finish after the current epoch's bookkeeping (``status`` ``"completed"`` or ``"diverged"``)."""
        if status not in STATUSES:
            raise ValueError(f"status: expected one of {STATUSES}, got {status!r}")
        if self._stop is None or status == "diverged":
            self._stop = (status, message)

    def request_interrupt(self) -> None:
        """Stop after the current step (safe to call from a signal handler)."""
        self._interrupt = True

    @property
    def lr(self) -> float:
        if self.scheduler is not None:
            return float(self.scheduler.get_last_lr()[0])
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """The whole training state as plain data and host arrays (see :mod:`.checkpoint`)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "best_model": self.best_state,
            "trainer": asdict(self.state),
            "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks if cb.state_dict()},
            # the random streams are functions of (seed, epoch): this is all of the RNG state
            "rng": {"seed": self.seed, "next_epoch": self.state.epoch},
            "metrics": dict(self.last_metrics),
            "config": self.config,
        }

    def restore(self, checkpoint: Checkpoint | dict[str, Any]) -> None:
        """Continue from a checkpoint: model, optimizer, scheduler, counters, best weights.

        ``ValueError`` (naming the parameter) when the checkpoint does not fit this
        model or optimizer.
        """
        state = checkpoint.state if isinstance(checkpoint, Checkpoint) else checkpoint
        missing = {"model", "optimizer", "trainer", "rng"} - set(state)
        if missing:
            raise ValueError(f"checkpoint: lacks {', '.join(sorted(missing))}")
        if int(state["rng"]["seed"]) != self.seed:
            log.warning("resuming a run with seed %s under seed %s: data order and dropout will differ "
                        "from the original run", state["rng"]["seed"], self.seed)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.state = TrainState(**state["trainer"])
        self.best_state = state.get("best_model")
        self.last_metrics = dict(state.get("metrics") or {})
        saved = state.get("callbacks") or {}
        for cb in self.callbacks:
            if cb.name in saved:
                cb.load_state_dict(saved[cb.name])

    # -------------------------------------------------------------------- fit
    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def fit(self, train_loader: Any, val_loader: Any = None, test_loader: Any = None, *,
            num_classes: int | None = None) -> TrainResult:
        """Train to ``max_epochs`` (or until stopped), then test the best-validation weights.

        Without a validation loader the last epoch's weights count as the best.
        """
        self._stop, self._interrupt = None, False
        t_fit = time.perf_counter()
        status, message, confusion = "completed", "", None
        test: dict[str, Any] = {}
        try:
            self._call("on_fit_start")
            while self.state.epoch < self.max_epochs and self._stop is None and not self._interrupt:
                ok = self._run_epoch(train_loader, val_loader)
                if not ok:
                    break
            if self._interrupt:
                status, message = "interrupted", "interrupted; the last checkpoint holds the last complete epoch"
            elif self._stop is not None:
                status, message = self._stop
            if status != "interrupted" and test_loader is not None and self.best_state is not None:
                self.model.load_state_dict(self.best_state)
                test = evaluate(self.model, self.criterion, test_loader, self.backend, num_classes=num_classes)
                confusion = test.pop("confusion", None)
            result = self._result(status, message, test, confusion, time.perf_counter() - t_fit)
            self._call("on_fit_end", result)
            return result
        finally:
            for cb in self.callbacks:
                try:
                    cb.teardown(self)
                except Exception:  # a failing close must not hide the real error
                    log.exception("callback %s failed to tear down", cb.name)

    def _run_epoch(self, train_loader: Any, val_loader: Any) -> bool:
        """One epoch of training and validation; False when the run must stop now."""
        epoch = self.state.epoch
        self.backend.seed(epoch_seed(self.seed, epoch))
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        lr = self.lr
        self._call("on_epoch_start", epoch, len(train_loader))
        t0 = time.perf_counter()
        train = self._train_epoch(train_loader)
        self.backend.synchronize()
        train_time = time.perf_counter() - t0
        if train is None:  # interrupted or diverged mid-epoch: this epoch does not count
            return False
        loss_sum, correct, n = train
        self.state.samples_seen += n
        self.state.train_time_s += train_time
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "train/loss": loss_sum / n if n else math.nan,
            "train/acc": correct / n if n else math.nan,
            "lr": lr,
            "throughput/samples_per_s": n / train_time if train_time > 0 else math.nan,
            "epoch_time_s": train_time,
        }
        if val_loader is not None:
            val = evaluate(self.model, self.criterion, val_loader, self.backend)
            metrics["val/loss"], metrics["val/acc"] = val["loss"], val["acc"]
            if not math.isfinite(val["loss"]):
                self.stop("diverged", f"validation loss became {val['loss']} in epoch {epoch + 1}")
                return False
            improved = val["acc"] > self.state.best_val_acc
        else:
            improved = True
        if improved:
            self.state.best_val_acc = metrics.get("val/acc", math.nan)
            self.state.best_val_loss = metrics.get("val/loss", math.nan)
            self.state.best_epoch = epoch + 1
            self.best_state = self.model.state_dict()
        metrics["val/acc_best"] = self.state.best_val_acc
        metrics["improved"] = improved
        self.state.epoch = epoch + 1
        if self.scheduler is not None:
            self.scheduler.step()
        self.state.history.append({k: v for k, v in metrics.items() if k != "improved"})
        self.last_metrics = self.state.history[-1]
        self._call("on_epoch_end", metrics)
        return True

    def _train_epoch(self, loader: Any) -> tuple[float, int, int] | None:
        """Steps over ``loader``; ``(loss_sum, correct, n)`` or None if stopped mid-epoch."""
        model, criterion, optimizer = self.model, self.criterion, self.optimizer
        params = model.parameters()
        clip = None
        if self.grad_clip is not None:
            from mlpframe.optim import clip_grad_norm_ as clip
        acc = Accumulator(self.backend)
        every, num_batches = self.log_every_n_steps, len(loader)
        loss_sum, correct, n = 0.0, 0, 0
        model.train()
        for i, (xb, yb) in enumerate(loader, start=1):
            out = model(xb)
            loss = criterion(out, yb)
            model.zero_grad()
            model.backward(criterion.backward())
            if clip is not None:
                clip(params, self.grad_clip)
            optimizer.step()
            acc.update(loss, out, yb)
            self.state.global_step += 1
            if i % every == 0 or i == num_batches:
                steps = acc.batches
                s, c, k = acc.sync()  # host sync
                if not math.isfinite(s):
                    self.stop("diverged", f"training loss became {s / k} at step {self.state.global_step} "
                                          f"(epoch {self.state.epoch + 1}); lower optimizer.lr or set trainer.grad_clip")
                    return None
                loss_sum, correct, n = loss_sum + s, correct + c, n + k
                self._call("on_train_sync", {"train/loss": s / k, "train/acc": c / k}, steps)
            if self._interrupt:
                return None
        return loss_sum, correct, n

    def _result(self, status: str, message: str, test: dict[str, Any], confusion: np.ndarray | None,
                wall_time: float) -> TrainResult:
        st = self.state
        metrics: dict[str, Any] = {k: v for k, v in self.last_metrics.items() if k != "epoch"}
        metrics.update({
            "val/acc_best": st.best_val_acc if math.isfinite(st.best_val_acc) else math.nan,
            "val/loss_best": st.best_val_loss,
            "best_epoch": st.best_epoch,
            "test/acc": test.get("acc", math.nan),
            "test/loss": test.get("loss", math.nan),
            "epochs": st.epoch,
            "global_step": st.global_step,
            "wall_time_s": wall_time,
            "train_time_s": st.train_time_s,
            "samples_per_s": st.samples_seen / st.train_time_s if st.train_time_s > 0 else math.nan,
            "status": status,
        })
        return TrainResult(status=status, metrics=metrics, history=list(st.history), confusion=confusion,
                           message=message)
