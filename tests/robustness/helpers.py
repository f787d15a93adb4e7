"""Shared by the robustness tests: a run long enough to be killed, and exact comparison of two runs."""

from __future__ import annotations

import json
import math
import pickle
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.backend.event_processing import event_accumulator

from mlpframe.engine import load_checkpoint

# 8 epochs of ~0.15 s (1050 steps of 8 samples), dropout, a step schedule, a log interval that
# does not divide the epoch: every piece of state a resume has to get right
LONG = ["data=synthetic", "data.n_samples=12000", "data.batch_size=8", "model.hidden=[64,64]", "model.dropout=0.2",
        "trainer.max_epochs=8", "trainer.log_every_n_steps=7", "trainer.progress_bar=false",
        "trainer.histogram_every_n_epochs=0", "scheduler=step", "scheduler.step_size=2", "trainer.resume=auto"]

# what differs between two runs of the same config: clocks, and the sums of clocks
TIMING = {"throughput/samples_per_s", "epoch_time_s", "wall_time_s", "train_time_s", "samples_per_s", "wall_time"}
RESULT_KEYS = ("val/acc_best", "val/loss_best", "best_epoch", "test/acc", "test/loss", "epochs", "global_step",
               "train/loss", "train/acc", "val/loss", "val/acc", "lr", "status")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def train_cmd(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "mlpframe", "train", *overrides]


def assert_same_tree(a: Any, b: Any, path: str = "") -> None:
    """Equal nested data, arrays bit for bit, NaN equal to NaN; keys in ``TIMING`` are skipped."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) - TIMING == set(b) - TIMING, (path, sorted(set(a) ^ set(b)))
        for k in a:
            if k not in TIMING:
                assert_same_tree(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tree(x, y, f"{path}/{i}")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), path
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, (path, a, b)


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def assert_same_run(reference: Path, run: Path, *, tensorboard: bool = True) -> None:
    """``run`` ended exactly like ``reference``: metrics, checkpoints (weights, optimizer, history), curves."""
    ma, mb = read_json(reference / "metrics.json"), read_json(run / "metrics.json")
    for key in RESULT_KEYS:
        assert ma[key] == mb[key] or (ma[key] != ma[key] and mb[key] != mb[key]), (key, ma[key], mb[key])
    for name in ("last.npz", "best.npz"):
        a, b = load_checkpoint(reference / "checkpoints" / name), load_checkpoint(run / "checkpoints" / name)
        for part in ("model", "optimizer", "scheduler", "best_model", "trainer", "callbacks", "rng"):
            assert_same_tree(a[part], b[part], f"{name}:{part}")
    if tensorboard:
        for tag in ("val/acc", "train/loss", "test/acc", "lr"):
            assert scalars(reference, tag) == scalars(run, tag), tag


def resume_command(stderr: str) -> list[str]:
    """The command in the one-line 'resume with: ...' hint, runnable here."""
    (line,) = stderr.strip().splitlines()
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[:4] == ["python", "-m", "mlpframe", "train"], command
    return [sys.executable, *command[1:]]


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


class Payload:
    """Unpickling this creates the file ``marker``: proof that a file ran code when opened."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_bytes(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker))
