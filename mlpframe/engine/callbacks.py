"""Callbacks: what the :class:`~mlpframe.engine.Trainer` calls at its few sync points.

Nothing here runs per step: hooks fire at fit start/end, epoch start/end, at
the host syncs (every ``log_every_n_steps`` steps and at the end of each epoch) and
once when a run is interrupted mid-epoch, so a callback cannot slow the training
loop down by more than those.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any, Callable

from mlpframe.engine.callback import Callback, Run
from mlpframe.engine.checkpoint import NonFiniteError, save_checkpoint, temp_files

log = logging.getLogger("mlpframe")


# ------------------------------------------------------------------ progress
def _pct(x: float) -> str:
    return "  n/a " if x is None or not math.isfinite(x) else f"{100 * x:5.1f}%"


def _num(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4f}"


class ProgressBar(Callback):
    """A tqdm bar per epoch (updated at sync points only) and one summary line per epoch."""

    name = "progress"

    def __init__(self, enabled: bool = True, print_fn: Callable[[str], None] | None = None) -> None:
        self.enabled = enabled
        self.print_fn = print_fn or log.info
        self._bar = None

    def on_epoch_start(self, trainer: Run, epoch: int, num_batches: int) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=num_batches, initial=trainer.state.step_in_epoch, leave=False, file=sys.stderr,
                         desc=f"epoch {epoch + 1}/{trainer.max_epochs}", dynamic_ncols=True, unit="step")

    def on_train_sync(self, trainer: Run, metrics: dict[str, float], steps: int) -> None:
        if self._bar is not None:
            self._bar.update(steps)
            self._bar.set_postfix(loss=f"{metrics['train/loss']:.4f}", acc=_pct(metrics["train/acc"]).strip(),
                                  refresh=False)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_epoch_end(self, trainer: Run, metrics: dict[str, Any]) -> None:
        self._close()
        self.print_fn(
            f"epoch {metrics['epoch']:>3}/{trainer.max_epochs}  "
            f"train loss {_num(metrics['train/loss'])} acc {_pct(metrics['train/acc'])}  "
            f"val loss {_num(metrics.get('val/loss'))} acc {_pct(metrics.get('val/acc'))}  "
            f"best {_pct(metrics.get('val/acc_best'))}  lr {metrics['lr']:.3g}  "
            f"{metrics['throughput/samples_per_s']:,.0f} samples/s  {metrics['epoch_time_s']:.2f}s"
        )

    def teardown(self, trainer: Run) -> None:
        self._close()


# --------------------------------------------------------------- checkpoints
class ModelCheckpoint(Callback):
    """``<dirpath>/last.npz`` after every epoch, ``<dirpath>/best.npz`` when val accuracy improved.

    ``best.npz`` is written before ``last.npz``: a run killed between the two has a
    ``last.npz`` one epoch behind, and resuming from it rewrites the same ``best.npz``;
    the other order could leave a ``best.npz`` that misses the best epoch. An
    interrupt mid-epoch writes that state to ``last.npz``.

    A write that fails (disk full, read-only folder) is reported with one warning and
    training goes on; the previous file stays intact because writes are atomic.
    Weights with NaN/inf are never written: the trainer is told the run diverged
    instead. Temporary files of a write that was killed are removed at fit start.
    """

    name = "checkpoint"
    order = 100  # after the others, so their state for this epoch is in the file

    def __init__(self, dirpath: str | Path, save_last: bool = True, save_best: bool = True) -> None:
        self.dirpath = Path(dirpath)
        self.save_last, self.save_best = save_last, save_best
        self.last_path: Path | None = None
        self.best_path: Path | None = None
        self.failures = 0

    def on_fit_start(self, trainer: Run) -> None:
        for tmp in temp_files(self.dirpath):
            try:
                tmp.unlink()
                log.info("removed %s, left by a checkpoint write that was killed", tmp)
            except OSError:
                pass

    def _write(self, kind: str, path: Path, state: dict[str, Any]) -> bool:
        """One checkpoint write; False (after one warning) when the disk refused it."""
        try:
            save_checkpoint(path, state)
        except OSError as exc:
            self.failures += 1
            reason = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
            log.warning("could not write checkpoint %s (%s); training continues", path, " ".join(reason.split()))
            return False
        setattr(self, f"{kind}_path", path)
        return True

    def on_epoch_end(self, trainer: Run, metrics: dict[str, Any]) -> None:
        want_best = self.save_best and metrics.get("improved", False)
        if not (self.save_last or want_best):
            return
        state = trainer.checkpoint_state()
        targets = [("best", self.dirpath / "best.npz")] if want_best else []
        targets += [("last", self.dirpath / "last.npz")] if self.save_last else []
        for kind, path in targets:
            try:
                self._write(kind, path, state)
            except NonFiniteError as exc:
                trainer.stop("diverged", f"{exc}; keeping the previous checkpoint")
                return

    def on_interrupt(self, trainer: Run) -> None:
        if not self.save_last:
            return
        try:
            self._write("last", self.dirpath / "last.npz", trainer.checkpoint_state())
        except NonFiniteError as exc:
            log.warning("%s; the previous checkpoint stays", exc)


# ------------------------------------------------------------ early stopping
class EarlyStopping(Callback):
    """Stop when ``val/acc`` has not improved for ``patience`` epochs in a row."""

    name = "early_stopping"

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience: expected an integer >= 1, got {patience!r}")
        self.patience, self.min_delta = patience, float(min_delta)
        self.best = -math.inf
        self.bad_epochs = 0

    def on_epoch_end(self, trainer: Run, metrics: dict[str, Any]) -> None:
        acc = metrics.get("val/acc")
        if acc is None or not math.isfinite(acc):
            return
        if acc > self.best + self.min_delta:
            self.best, self.bad_epochs = acc, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            trainer.stop("completed", f"early stopping: val/acc has not improved for {self.patience} epochs")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])
