"""TensorBoard logging through tensorboardX (no PyTorch or TensorFlow needed).

One writer per run directory. Scalars use the global step as x axis, so the
per-interval training curves and the per-epoch validation points line up.
Hyperparameters are attached to the run itself (not to a sub-run, which is what
``SummaryWriter.add_hparams`` would do), so TensorBoard's HParams tab shows one
row per run of a sweep, with the run's scalars (``val/acc_best``, ``test/acc``, …)
as its metrics.

A resumed run writes into the same folder, and its curves end up exactly those of
an uninterrupted run: the writer is flushed at every epoch end and at an interrupt,
before the checkpoint callback (which runs last) writes, so every point up to a
checkpoint's step is on disk when the checkpoint is; the resumed writer's file
starts with a ``SessionLog.START`` at the checkpoint's step + 1, and TensorBoard
drops the older events at or after a START's step, that is everything an earlier
attempt logged after the checkpoint. The logger therefore keeps no state in the
checkpoint, whose size stays bounded however long the run. Resuming from another
run's checkpoint into a new folder starts the curves at the checkpoint's step.

Events are written by :class:`EventWriter` in the calling thread, not through
tensorboardX's ``SummaryWriter``: that one queues events for a background thread,
and its ``flush()`` returns with events still in the queue, so a process killed
right after the checkpoint that followed a flush could lose the epoch's last points
for good (the resumed writer does not log them again).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlpframe.engine.callback import Callback, Run, TrainResult

log = logging.getLogger("mlpframe")

HPARAM_METRICS = ("val/acc_best", "test/acc", "val/loss_best")
EPOCH_SCALARS = ("val/loss", "val/acc", "val/acc_best", "val/loss_best", "lr", "throughput/samples_per_s")
HEADER_TAGS = ("config/text_summary", "_hparams_/session_start_info")  # written once, at step 0


def _tensorflow_bins() -> list[float]:
    """The histogram bucket edges TensorBoard's own writers use (``bins="tensorflow"`` in tensorboardX)."""
    edges, v = [], 1e-12
    while v < 1e20:
        edges.append(v)
        v *= 1.1
    return [-e for e in reversed(edges)] + [0.0] + edges


class EventWriter:
    """One new event file in ``log_dir``, written synchronously: what :meth:`flush` returns from is on disk.

    Each record goes to the file in the calling thread (TFRecord framing: length,
    its masked CRC32C, the serialized ``Event``, its masked CRC32C), so ``flush()``
    (which also fsyncs) leaves every event added before it on disk, and a killed
    process loses only what it added after its last flush. Between explicit flushes
    the file is flushed at most every ``flush_secs`` seconds, so a long epoch shows
    up live. ``purge_step`` writes a ``SessionLog.START`` at that step right after
    the file version: TensorBoard then drops the points of earlier files at steps
    ``>= purge_step``.

    The name is ``events.out.tfevents.<seconds>.<host>.<nanoseconds>.<pid>`` from one
    clock reading, so name order is creation order (TensorBoard reads a folder's files
    in name order) also for two writers opened in the same second.
    """

    def __init__(self, log_dir: str | Path, *, purge_step: int | None = None, flush_secs: float = 30) -> None:
        from tensorboardX.proto.event_pb2 import Event, SessionLog

        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        now = time.time_ns()
        name = f"events.out.tfevents.{now // 10**9:010d}.{socket.gethostname()}.{now % 10**9:09d}.{os.getpid()}"
        self.path = log_dir / name
        self.flush_secs = flush_secs
        self._file = open(self.path, "xb")  # never into an earlier writer's file
        self._next_flush = time.monotonic() + flush_secs
        self._event(Event(wall_time=now / 1e9, file_version="brain.Event:2"))
        if purge_step is not None:
            self._event(Event(wall_time=now / 1e9, step=int(purge_step),
                              session_log=SessionLog(status=SessionLog.START)))
        self.flush()

    def _event(self, event: Any) -> None:
        from tensorboardX.record_writer import masked_crc32c

        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(b"".join((header, struct.pack("<I", masked_crc32c(header)), data,
                                   struct.pack("<I", masked_crc32c(data)))))

    def add_summary(self, summary: Any, step: int) -> None:
        """One ``Summary`` (see ``tensorboardX.summary``) at ``step``, stamped with the current time."""
        from tensorboardX.proto.event_pb2 import Event

        self._event(Event(wall_time=time.time(), step=int(step), summary=summary))
        if time.monotonic() >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        """Every event added so far is on disk (flushed and fsynced) when this returns."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._next_flush = time.monotonic() + self.flush_secs

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()


def read_events(path: Path) -> Iterator[Any]:
    """The ``Event`` records of one event file, stopping quietly at a truncated or damaged tail.

    Records are TFRecords: an 8-byte length, its 4-byte CRC, the serialized ``Event``,
    its 4-byte CRC (CRCs are not checked; a bad record fails to parse instead).
    """
    from google.protobuf.message import DecodeError
    from tensorboardX.proto.event_pb2 import Event

    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                return
            event = Event()
            try:
                event.ParseFromString(data)
            except DecodeError:
                return
            yield event


def visible_points(log_dir: Path) -> set[tuple[str, int]]:
    """``(tag, step)`` of every summary value TensorBoard shows from the event files in ``log_dir``.

    Files are read in name order (= creation order); a ``SessionLog.START`` at step ``s``
    hides what came before it at steps ``>= s``, as TensorBoard's reader does.
    """
    from tensorboardX.proto.event_pb2 import SessionLog

    seen: set[tuple[str, int]] = set()
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in read_events(path):
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                seen = {(tag, step) for tag, step in seen if step < event.step}
            elif event.HasField("summary"):
                seen.update((v.tag, int(event.step)) for v in event.summary.value)
    return seen


def flatten_hparams(config: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """``{"optimizer.lr": 0.1, "model.hidden": "[256, 256]", …}``: the leaves of a nested config.

    TensorBoard's HParams take only bool/int/float/str: lists become their string,
    ``None`` becomes ``"None"``.
    """
    flat: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_hparams(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is None:
            flat[name] = "None"
        elif isinstance(value, Sequence):
            flat[name] = str(list(value))
        else:
            flat[name] = str(value)
    return flat


def confusion_image(cm: np.ndarray, class_names: Sequence[str] | None = None) -> np.ndarray:
    """An RGB ``(H, W, 3)`` uint8 rendering of a confusion matrix (rows true, columns predicted).

    Drawn with matplotlib's Agg canvas directly, so no GUI backend and no pyplot state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    C = cm.shape[0]
    names = list(class_names) if class_names and len(class_names) == C else [str(i) for i in range(C)]
    size = max(4.0, 0.45 * C + 2.0)
    fig = Figure(figsize=(size, size), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(C), labels=names, rotation=90, fontsize=8)
    ax.set_yticks(range(C), labels=names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if C <= 20:
        for i in range(C):
            for j in range(C):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    acc = np.trace(cm) / max(int(cm.sum()), 1)
    ax.set_title(f"test confusion matrix (acc {100 * acc:.1f}%)")
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class TensorBoardLogger(Callback):
    """Scalars, histograms, the config, hparams and the test confusion matrix of one run.

    Args:
        log_dir: the writer's folder (``<run_dir>/tensorboard``); created at fit start.
        config_text: the resolved config (YAML), shown in the Text tab.
        hparams: the flattened config for the HParams tab (see :func:`flatten_hparams`).
        histogram_every_n_epochs: weight and gradient histograms every N epochs; 0 disables.
        class_names: tick labels of the confusion matrix.
        flush_secs: within an epoch, the first event logged this many seconds after the previous
            flush flushes the file (every epoch end, interrupt and fit end flushes it too).
    """

    name = "tensorboard"

    def __init__(self, log_dir: str | Path, *, config_text: str | None = None,
                 hparams: Mapping[str, Any] | None = None, histogram_every_n_epochs: int = 0,
                 class_names: Sequence[str] | None = None, flush_secs: int = 30) -> None:
        self.log_dir = Path(log_dir)
        self.config_text = config_text
        self.hparams = dict(hparams) if hparams else None
        self.histogram_every_n_epochs = histogram_every_n_epochs
        self.class_names = class_names
        self.flush_secs = flush_secs
        self.writer: EventWriter | None = None

    def _scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboardX.summary import scalar

        self.writer.add_summary(scalar(tag, value), step)

    def on_fit_start(self, trainer: Run) -> None:
        from tensorboardX.summary import hparams as hparams_summaries
        from tensorboardX.summary import text

        step = trainer.state.global_step
        on_disk = visible_points(self.log_dir) if self.log_dir.is_dir() else set()
        # a fresh start over the files of an attempt that never checkpointed hides them all; a resume
        # hides what the earlier attempt logged after its checkpoint (all before it was flushed)
        purge = (0 if on_disk else None) if step == 0 else step + 1
        self.writer = EventWriter(self.log_dir, purge_step=purge, flush_secs=self.flush_secs)
        if purge == 0 or not all(any(t == tag for t, _ in on_disk) for tag in HEADER_TAGS):
            if self.config_text:
                # four-space indent: a Markdown code block in the Text tab
                self.writer.add_summary(text("config", "\n".join("    " + ln for ln in self.config_text.splitlines())),
                                        0)
            if self.hparams:
                # the session's start and end only: without an experiment summary of its own in
                # any run, TensorBoard builds the experiment from all the runs under --logdir, so
                # the HParams tab of a sweep marks the swept keys as the ones that differ
                _, session_start, session_end = hparams_summaries(self.hparams, {m: 0.0 for m in HPARAM_METRICS})
                self.writer.add_summary(session_start, 0)
                self.writer.add_summary(session_end, 0)

    def on_train_sync(self, trainer: Run, metrics: dict[str, float], steps: int) -> None:
        step = trainer.state.global_step
        for tag in ("train/loss", "train/acc"):
            self._scalar(tag, metrics[tag], step)

    def on_epoch_end(self, trainer: Run, metrics: dict[str, Any]) -> None:
        step = trainer.state.global_step
        for tag in EPOCH_SCALARS:
            value = metrics.get(tag)
            if value is not None and math.isfinite(value):
                self._scalar(tag, value, step)
        every = self.histogram_every_n_epochs
        if every and metrics["epoch"] % every == 0:
            self._histograms(trainer, step)
        self.writer.flush()  # before the checkpoint of this epoch is written (see the module's docstring)

    def on_interrupt(self, trainer: Run) -> None:
        self.writer.flush()

    def _histograms(self, trainer: Run, step: int) -> None:
        from tensorboardX.summary import histogram

        be, bins = trainer.backend, _tensorflow_bins()
        for name, p in trainer.model.named_parameters():
            self.writer.add_summary(histogram(f"weights/{name}", be.to_numpy(p.data), bins), step)
            if p.grad is not None:
                self.writer.add_summary(histogram(f"grads/{name}", be.to_numpy(p.grad), bins), step)

    def on_fit_end(self, trainer: Run, result: TrainResult) -> None:
        from tensorboardX.summary import image as image_summary

        step = trainer.state.global_step
        for tag in ("test/acc", "test/loss"):
            value = result.metrics.get(tag)
            if value is not None and math.isfinite(value):
                self._scalar(tag, value, step)
        if result.confusion is not None:
            try:
                image = confusion_image(result.confusion, self.class_names)
            except Exception as exc:  # a plotting problem must not fail a finished run
                log.warning("could not draw the confusion matrix (%s)", exc)
            else:
                self.writer.add_summary(image_summary("test/confusion_matrix", image, dataformats="HWC"), step)
        self.writer.flush()

    def teardown(self, trainer: Run) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
