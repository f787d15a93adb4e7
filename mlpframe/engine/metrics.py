"""Metrics that accumulate on the device, and evaluation over a data loader.

Per batch only device arrays are combined (``loss_sum += loss * N``,
``correct += count_nonzero(argmax(out) == y)``); the host sees the totals once,
at a sync point the caller chooses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mlpframe.backend import Array, Backend, array_namespace

METRIC_NAMES = (
    "val/acc_best", "val/loss_best", "val/acc", "val/loss", "train/acc", "train/loss", "test/acc", "test/loss",
)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed that depends only on ``(seed, epoch)``: each epoch's random stream.

    Re-seeding from this at every epoch start makes a run resumed at an epoch
    boundary draw exactly what the uninterrupted run drew.
    """
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint32)[0])


class Accumulator:
    """Running ``sum(loss * N)``, ``sum(correct)`` and ``sum(N)`` over batches.

    ``loss_sum`` and ``correct`` stay 0-d device arrays; ``n`` is a Python int (batch
    sizes are known on the host). :meth:`sync` moves both sums to the host in one
    transfer and resets the accumulator. :meth:`watch` adds one more 0-d device value
    to that same transfer (the trainer's check that the weights are still finite);
    its host value is ``watched`` after the sync.
    """

    __slots__ = ("backend", "loss_sum", "correct", "n", "batches", "_watch", "watched")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.watched: float | None = None
        self.reset()

    def reset(self) -> None:
        self.loss_sum: Array | None = None
        self.correct: Array | None = None
        self.n = 0
        self.batches = 0
        self._watch: Array | None = None

    def watch(self, value: Array) -> None:
        """Transfer the 0-d device array ``value`` with the next :meth:`sync` (no extra host sync)."""
        self._watch = value

    def update(self, loss: Array, outputs: Array, y: Array) -> None:
        xp = self.backend.xp
        N = y.shape[0]
        correct = xp.count_nonzero(xp.argmax(outputs, axis=-1) == y)
        if self.loss_sum is None:
            self.loss_sum, self.correct = loss * N, correct
        else:
            self.loss_sum = self.loss_sum + loss * N
            self.correct = self.correct + correct
        self.n += N
        self.batches += 1

    def sync(self) -> tuple[float, int, int]:
        """``(loss_sum, correct, n)`` on the host; resets. One device-to-host transfer."""
        if self.loss_sum is None:
            self.watched = None
            self.reset()
            return 0.0, 0, 0
        xp = self.backend.xp
        values = [xp.astype(self.loss_sum, xp.float64), xp.astype(self.correct, xp.float64)]
        if self._watch is not None:
            values.append(xp.astype(self._watch, xp.float64))
        host = self.backend.to_numpy(xp.stack(values)).tolist()  # host sync
        loss_sum, correct = host[0], host[1]
        self.watched = host[2] if self._watch is not None else None
        n = self.n
        self.reset()
        return float(loss_sum), int(round(correct)), n

    def state_dict(self) -> dict[str, Any]:
        """The unsynced sums as host arrays of their device dtypes (a host sync: only when checkpointing)."""
        to_host = self.backend.to_numpy
        return {
            "loss_sum": None if self.loss_sum is None else to_host(self.loss_sum),  # host sync
            "correct": None if self.correct is None else to_host(self.correct),  # host sync
            "n": self.n,
            "batches": self.batches,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`: the next sums are bit-identical to never having stopped."""
        self.reset()
        if state.get("loss_sum") is not None:
            self.loss_sum = self.backend.asarray(np.asarray(state["loss_sum"]))
            self.correct = self.backend.asarray(np.asarray(state["correct"]))
        self.n, self.batches = int(state["n"]), int(state["batches"])


def confusion_update(cm: Array | None, outputs: Array, y: Array, num_classes: int) -> Array:
    """``cm[i, j] += #(true i, predicted j)``, on the device, as a one-hot product.

    The array API has no ``bincount``/``add.at``; ``onehot(y)^T @ onehot(pred)`` is
    the same count with one small matmul.
    """
    xp = array_namespace(outputs)
    classes = xp.arange(num_classes, dtype=y.dtype, device=y.device)
    pred = xp.astype(xp.argmax(outputs, axis=-1), y.dtype)
    # float32 counts are exact up to 2**24 per cell, far more than any test set here
    true_oh = xp.astype(y[:, None] == classes[None, :], xp.float32)  # (N, C)
    pred_oh = xp.astype(pred[:, None] == classes[None, :], true_oh.dtype)  # (N, C)
    counts = xp.matmul(xp.permute_dims(true_oh, (1, 0)), pred_oh)  # (C, C)
    return counts if cm is None else cm + counts


def evaluate(model: Any, criterion: Any, batches: Iterable[tuple[Array, Array]], backend: Backend, *,
             num_classes: int | None = None, accumulator: Accumulator | None = None,
             reduce_counts: Any = None) -> dict[str, Any]:
    """Mean loss and accuracy of ``model`` over ``batches`` in eval mode (one host sync at the end).

    Across processes, ``accumulator`` reduces the sums and counts over the ranks' slices and
    ``reduce_counts`` sums the confusion matrix (:meth:`mlpframe.distributed.DataParallel.evaluate`).

    Returns ``{"loss", "acc", "n"}`` and, with ``num_classes``, ``"confusion"``: a
    ``(C, C)`` int64 host array of counts (rows: true class, columns: predicted).
    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    acc = Accumulator(backend) if accumulator is None else accumulator
    cm = None
    try:
        for xb, yb in batches:
            out = model(xb)
            acc.update(criterion(out, yb), out, yb)
            if num_classes is not None:
                cm = confusion_update(cm, out, yb, num_classes)
    finally:
        model.train(was_training)
    loss_sum, correct, n = acc.sync()
    result: dict[str, Any] = {
        "loss": loss_sum / n if n else float("nan"),
        "acc": correct / n if n else float("nan"),
        "n": n,
    }
    if num_classes is not None:
        counts = (np.rint(backend.to_numpy(cm)).astype(np.int64) if cm is not None  # host sync
                  else np.zeros((num_classes, num_classes), dtype=np.int64))
        result["confusion"] = counts if reduce_counts is None else reduce_counts(counts)
    return result


def finite_check(params: Sequence[Any]) -> Any:
    """A 0-d device array: 0 when every parameter is finite, NaN otherwise (``0 * inf`` is NaN).

    Checking the weights after the update catches a non-finite gradient at the
    step it happened, even when that step's loss was still finite.
    """
    total = None
    for p in params:
        xp = array_namespace(p.data)
        t = xp.astype(xp.sum(p.data * 0.0), xp.float64)
        total = t if total is None else total + t
    return total
