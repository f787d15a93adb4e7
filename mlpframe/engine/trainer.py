"""The training loop: epochs, validation, best-model tracking, test, divergence.

Per step the trainer does forward, loss, backward, optional clipping and the
optimizer step, and adds the batch's loss and correct count to device-side
accumulators. The host sees those numbers once every ``log_every_n_steps`` steps
and at the end of each epoch (the lines marked ``# host sync``); that is also
where a non-finite loss or a non-finite weight is noticed (the weights' check is
one more 0-d value in the same transfer), so a diverging run stops within one log
interval, even when only a gradient went bad. It knows nothing of Hydra: plain
objects in, a :class:`TrainResult` out.

Randomness is re-derived at every epoch start from ``(seed, epoch)`` — the
backend's random stream (dropout) and the loader's shuffling — so a run resumed
from an epoch-boundary checkpoint repeats the uninterrupted run bit for bit.

An interrupt (:meth:`Trainer.request_interrupt`, from SIGINT/SIGTERM) stops after
the current step. Mid-epoch, the trainer then records where it is in the epoch:
the step, the running sums (host numbers and the unsynced device sums, as host
arrays of their own dtype) and the state of the backend's random stream; the
callbacks' ``on_interrupt`` save it. Resuming skips the epoch's first steps in the
same order and continues, so on NumPy the result is again bit-identical. (CuPy's
generator state cannot be read back: there the dropout masks of the rest of that
one epoch are drawn from a fresh ``(seed, epoch, step)`` stream instead.)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any

import numpy as np

from mlpframe.backend import Backend
from mlpframe.engine.callback import STATUSES, Callback, TrainResult
from mlpframe.engine.checkpoint import Checkpoint
from mlpframe.engine.metrics import Accumulator, epoch_seed, evaluate, finite_check
from mlpframe.engine.state import TrainState

log = logging.getLogger("mlpframe")

DIVERGED_HINT = "lower optimizer.lr or set trainer.grad_clip"


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
        parallel: a :class:`mlpframe.distributed.DataParallel` for a run across processes
            (gradient reduction, reduced metrics and evaluation, agreed interrupts); None: one process.
    """

    def __init__(self, model: Any, criterion: Any, optimizer: Any, backend: Backend, *,
                 scheduler: Any = None, max_epochs: int = 10, grad_clip: float | None = None,
                 log_every_n_steps: int = 50, seed: int = 0, callbacks: Sequence[Callback] = (),
                 config: dict[str, Any] | None = None, parallel: Any = None) -> None:
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
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)  # stable: ties keep their order
        self.config = config or {}
        self.state = TrainState()
        self.best_state: dict[str, np.ndarray] | None = None
        self.last_metrics: dict[str, Any] = {}
        self._stop: tuple[str, str] | None = None
        self._interrupt = False
        self._unsaved_progress = False
        self._resume: dict[str, Any] | None = None
        self.parallel = parallel

    # ----------------------------------------------------------------- control
    def stop(self, status: str, message: str = "") -> None:
        """Finish after the current epoch's bookkeeping with ``status`` (``completed``, ``diverged``
        or ``pruned``); this and :meth:`request_interrupt` are the only ways a run's status is set,
        and ``diverged`` overrides an earlier request."""
        if status not in STATUSES or status == "interrupted":
            raise ValueError(f"status: expected completed, diverged or pruned, got {status!r}")
        if self._stop is None or status == "diverged":
            self._stop = (status, message)

    def request_interrupt(self) -> None:
        """Stop after the current step (safe to call from a signal handler, also before :meth:`fit`)."""
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
            # the random streams are functions of (seed, epoch); a partial epoch keeps its own
            # generator state in trainer.epoch_progress
            "rng": {"seed": self.seed, "next_epoch": self.state.epoch},
            "metrics": dict(self.last_metrics),
            "config": self.config,
        }

    def restore(self, checkpoint: Checkpoint | dict[str, Any]) -> None:
        """Continue from a checkpoint: model, optimizer, scheduler, counters, best weights.

        ``ValueError`` (naming the parameter or field) when the checkpoint does not fit
        this model or optimizer, or its bookkeeping is malformed; the trainer's own
        state is checked before anything is loaded.
        """
        state = checkpoint.state if isinstance(checkpoint, Checkpoint) else checkpoint
        missing = {"model", "optimizer", "trainer", "rng"} - set(state)
        if missing:
            raise ValueError(f"checkpoint: lacks {', '.join(sorted(missing))}")
        if not isinstance(state["rng"], dict) or isinstance(state["rng"].get("seed"), bool) \
                or not isinstance(state["rng"].get("seed"), int):
            raise ValueError(f"checkpoint: rng: expected {{'seed': <int>, ...}}, got {state['rng']!r:.80}")
        best = state.get("best_model")
        if best is not None and not (isinstance(best, dict) and all(isinstance(v, np.ndarray) for v in best.values())):
            raise ValueError("checkpoint: best_model: expected a mapping of parameter names to arrays")
        if not isinstance(state.get("metrics", {}), (dict, type(None))):
            raise ValueError("checkpoint: metrics: expected a mapping")
        if not isinstance(state["trainer"], dict):
            raise ValueError("checkpoint: trainer: expected a mapping")
        unknown = set(state["trainer"]) - {f.name for f in fields(TrainState)}
        if unknown:
            raise ValueError(f"checkpoint: trainer: unknown fields {sorted(map(str, unknown))}")
        trainer_state = TrainState(**state["trainer"])
        trainer_state.validate()
        if int(state["rng"]["seed"]) != self.seed:
            log.warning("resuming a run with seed %s under seed %s: data order and dropout will differ "
                        "from the original run", state["rng"]["seed"], self.seed)
        self.model.load_state_dict(state["model"])
        if best is not None:  # loaded into the model only at test time: check it fits now
            current = self.model.state_dict()
            for name, w in current.items():
                if name not in best or best[name].shape != w.shape or best[name].dtype.kind != w.dtype.kind:
                    raise ValueError(f"checkpoint: best_model.{name} does not fit this model")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.state = trainer_state
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
        # an interrupt requested before fit (a signal while data loaded) still counts
        self._stop, self._unsaved_progress = None, False
        t_fit = time.perf_counter()
        status, message, confusion = "completed", "", None
        test: dict[str, Any] = {}
        try:
            self._call("on_fit_start")
            while self.state.epoch < self.max_epochs and self._stop is None and not self._interrupted():
                ok = self._run_epoch(train_loader, val_loader)
                if not ok:
                    break
            if self._interrupted() and self._stop is None:
                status = "interrupted"
                st = self.state
                if st.step_in_epoch:
                    message = f"interrupted in epoch {st.epoch + 1} after step {st.step_in_epoch}"
                    if self._unsaved_progress:
                        self._call("on_interrupt")
                else:
                    message = f"interrupted after epoch {st.epoch}"
            elif self._stop is not None:
                status, message = self._stop
            if status != "interrupted" and test_loader is not None and self.best_state is not None:
                self.model.load_state_dict(self.best_state)
                test = self._evaluate(test_loader, num_classes=num_classes)
                confusion = test.pop("confusion", None)
            result = self._result(status, message, test, confusion, time.perf_counter() - t_fit)
            self._call("on_fit_end", result)
            return result
        finally:
            self._interrupt = False
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
        resume = self._resume = self._take_epoch_progress(len(train_loader))
        lr = self.lr
        self._call("on_epoch_start", epoch, len(train_loader))
        t0 = time.perf_counter()
        train = self._train_epoch(train_loader)
        self.backend.synchronize()
        train_time = time.perf_counter() - t0 + (resume["train_time_s"] if resume else 0.0)
        if train is None:  # interrupted or diverged mid-epoch: this epoch does not count (yet)
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
            val = self._evaluate(val_loader)
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
        metrics["val/loss_best"] = self.state.best_val_loss
        metrics["improved"] = improved
        self.state.epoch = epoch + 1
        if self.scheduler is not None:
            self.scheduler.step()
        self.state.history.append({k: v for k, v in metrics.items() if k != "improved"})
        self.last_metrics = self.state.history[-1]
        self._call("on_epoch_end", metrics)
        return True

    def _take_epoch_progress(self, num_batches: int) -> dict[str, Any] | None:
        """The saved partial epoch to continue (and restore its random stream), or None."""
        st = self.state
        progress, step = st.epoch_progress, st.step_in_epoch
        if not step:
            return None
        if progress["num_batches"] != num_batches or step >= num_batches:
            log.warning("the checkpoint stopped after step %d of an epoch of %d batches, this run's epochs have "
                        "%d (batch size or data changed): epoch %d starts over with the current weights",
                        step, progress["num_batches"], num_batches, st.epoch + 1)
            st.step_in_epoch, st.epoch_progress = 0, None
            return None
        if not self.backend.set_rng_state(progress["rng"]):
            log.warning("this backend's random state cannot be restored: dropout masks for the rest of epoch %d "
                        "differ from an uninterrupted run", st.epoch + 1)
            self.backend.seed(epoch_seed(self.seed, st.epoch) ^ step)
        return progress

    def _save_epoch_progress(self, step: int, num_batches: int, sums: tuple[float, int, int], acc: Accumulator,
                             elapsed: float) -> None:
        """Record a partial epoch after ``step`` (the host syncs here happen once, at an interrupt)."""
        self.backend.synchronize()
        self.state.step_in_epoch = step
        self.state.epoch_progress = {
            "loss_sum": sums[0], "correct": sums[1], "n": sums[2], "train_time_s": elapsed,
            "num_batches": num_batches, "accumulator": acc.state_dict(), "rng": self.backend.rng_state(),
        }
        self._unsaved_progress = True

    def _train_epoch(self, loader: Any) -> tuple[float, int, int] | None:
        """Steps over ``loader``; ``(loss_sum, correct, n)`` or None if stopped mid-epoch.

        A saved partial epoch (``self._resume``) skips the steps already done and continues its sums.
        """
        resume, self._resume = self._resume, None
        model, criterion, optimizer = self.model, self.criterion, self.optimizer
        params = model.parameters()
        clip = None
        if self.grad_clip is not None:
            from mlpframe.optim import clip_grad_norm_ as clip
        acc = self._accumulator()
        every, num_batches = self.log_every_n_steps, len(loader)
        loss_sum, correct, n = 0.0, 0, 0
        skip = 0
        if resume is not None:
            skip = self.state.step_in_epoch
            loss_sum, correct, n = float(resume["loss_sum"]), int(resume["correct"]), int(resume["n"])
            acc.load_state_dict(resume["accumulator"])
        prior_time = resume["train_time_s"] if resume is not None else 0.0
        self.state.step_in_epoch, self.state.epoch_progress = 0, None
        t0 = time.perf_counter()
        model.train()
        for i, (xb, yb) in enumerate(loader, start=1):
            if i <= skip:  # the same batches in the same order as before the interrupt: already trained on
                continue
            out = model(xb)
            loss = criterion(out, yb)
            optimizer.zero_grad()
            # the data needs no gradient: backward_params skips the first layer's grad_x matmul
            model.backward_params(criterion.backward())
            if self.parallel is not None:  # across processes: the global batch's gradient
                self.parallel.reduce_gradients(params)
            if clip is not None:
                clip(params, self.grad_clip)
            optimizer.step()
            acc.update(loss, out, yb)
            self.state.global_step += 1
            if i % every == 0 or i == num_batches:
                steps = acc.batches
                acc.watch(finite_check(params))
                s, c, k = acc.sync()  # host sync (loss, correct and the weights' check in one transfer)
                if not math.isfinite(s):
                    self.stop("diverged", f"training loss became {s / k} at {self._where()}; {DIVERGED_HINT}")
                    return None
                if acc.watched is not None and not math.isfinite(acc.watched):
                    self.stop("diverged", f"weights became non-finite (nan/inf gradients) by {self._where()}; "
                                          f"{DIVERGED_HINT}")
                    return None
                loss_sum, correct, n = loss_sum + s, correct + c, n + k
                self._call("on_train_sync", {"train/loss": s / k, "train/acc": c / k}, steps)
            if i < num_batches and self._interrupted():  # after the last step, finish the epoch instead
                self._save_epoch_progress(i, num_batches, (loss_sum, correct, n), acc,
                                          prior_time + time.perf_counter() - t0)
                return None
        return loss_sum, correct, n

    # ------------------------------------------------- across processes
    # With ``parallel`` set, these are the trainer's only collective operations besides the
    # gradient reduction; every rank calls them at the same points, so they never deadlock.
    def _interrupted(self) -> bool:
        """The interrupt flag; across processes, true on every rank when any rank was interrupted."""
        if self.parallel is None:
            return self._interrupt
        agreed = self.parallel.agree(self._interrupt)
        if agreed:  # (never reset here: a signal may have arrived during the reduction)
            self._interrupt = True
        return agreed

    def _accumulator(self) -> Accumulator:
        return Accumulator(self.backend) if self.parallel is None else self.parallel.accumulator(self.backend)

    def _evaluate(self, loader: Any, num_classes: int | None = None) -> dict[str, Any]:
        if self.parallel is None:
            return evaluate(self.model, self.criterion, loader, self.backend, num_classes=num_classes)
        return self.parallel.evaluate(self.model, self.criterion, loader, self.backend, num_classes=num_classes)

    def _where(self) -> str:
        return f"step {self.state.global_step} (epoch {self.state.epoch + 1})"

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

