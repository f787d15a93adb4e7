"""NaN/inf in the loss or only in a gradient: caught within one log interval, good checkpoints kept."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlpframe import nn
from mlpframe.data import load_dataset
from mlpframe.engine import Callback, ModelCheckpoint, load_checkpoint
from tests.cli.helpers import FAST, read_json
from tests.engine.test_trainer import make

from .inprocess import run_main

EVERY = 4


@pytest.fixture(scope="module")
def spirals():
    return load_dataset("synthetic", n_samples=800, num_classes=3, noise=0.05, seed=0)


class FaultAt(nn.CrossEntropyLoss):
    """Cross-entropy with a fault injected at training step ``k`` (from 1): a non-finite ``loss``
    (``where="loss"``) or a non-finite gradient under a finite loss (``where="grad"``)."""

    def __init__(self, k: int, where: str = "grad", value: float = math.nan) -> None:
        super().__init__()
        self.k, self.where, self.value, self.calls = k, where, value, 0

    def forward(self, inputs, targets):
        loss = super().forward(inputs, targets)
        self.training_call = inputs.shape[0] in (32, 64)  # training batches (spirals here, FAST in the CLI)
        if self.training_call:
            self.calls += 1
        if self.training_call and self.calls == self.k and self.where == "loss":
            return loss * self.value
        return loss

    def backward(self):
        grad = super().backward()
        if self.training_call and self.calls == self.k and self.where == "grad":
            grad = grad * self.value  # only element 0 would do; the whole batch is simpler
        return grad


class WeightsAtEpochEnd(Callback):
    """The checkpoint file as it was right after each epoch's write."""

    order = 200  # after ModelCheckpoint

    def __init__(self, path):
        self.path, self.files = path, {}

    def on_epoch_end(self, trainer, metrics):
        self.files[metrics["epoch"]] = self.path.read_bytes()


def first_sync_at_or_after(k: int, steps_per_epoch: int) -> int:
    epoch, i = divmod(k - 1, steps_per_epoch)
    i += 1
    sync = min(-(-i // EVERY) * EVERY, steps_per_epoch)
    return epoch * steps_per_epoch + sync


@pytest.mark.parametrize("where, value", [("grad", math.nan), ("grad", math.inf), ("loss", math.nan),
                                          ("loss", math.inf)])
@pytest.mark.parametrize("offset", [4, 5, 0], ids=["at-a-sync", "mid-interval", "last-step"])
def test_a_fault_is_caught_within_one_log_interval_and_the_good_checkpoint_stays(spirals, tmp_path, where, value,
                                                                                 offset):
    steps = len(spirals.train[1]) // 32  # 17
    k = steps + (offset or steps)  # in epoch 2
    snapshot = WeightsAtEpochEnd(tmp_path / "last.npz")
    trainer, loaders = make(spirals, max_epochs=4, criterion=FaultAt(k, where, value), log_every=EVERY,
                            callbacks=[ModelCheckpoint(tmp_path), snapshot])
    result = trainer.fit(*loaders, num_classes=3)
    assert result.status == "diverged", result.message
    # a bad gradient with a finite loss is caught at the very sync that ends its interval
    assert trainer.state.global_step == first_sync_at_or_after(k, steps), (trainer.state.global_step, k)
    if where == "grad" and trainer.state.global_step == k:
        # the loss of step k was finite and no later step ran: only the weights' check can see it
        assert "weights became non-finite" in result.message
    else:  # later steps' losses went non-finite too; the loss is named first
        assert "training loss became" in result.message
    assert "optimizer.lr" in result.message
    assert result.metrics["epochs"] == 1 and len(result.history) == 1
    # the last good checkpoint is the one epoch 1 wrote, byte for byte; nothing non-finite was written
    assert (tmp_path / "last.npz").read_bytes() == snapshot.files[1]
    saved = load_checkpoint(tmp_path / "last.npz")
    assert saved["trainer"]["epoch"] == 1
    assert all(np.all(np.isfinite(w)) for w in saved["model"].values())
    assert math.isfinite(result.metrics["test/acc"])  # tested with the best (finite) weights


def test_the_cli_reports_a_bad_gradient_as_diverged_and_keeps_its_checkpoint(tmp_path, capsys, data_cache,
                                                                             monkeypatch):
    from mlpframe.cli import build

    monkeypatch.setenv("MLPFRAME_DATA", str(data_cache))
    steps = 420 // 64  # FAST: 600 samples, 70 % train, batches of 64
    monkeypatch.setattr(build, "build_criterion", lambda model: FaultAt(steps + 2, "grad"))
    status = run_main(["train", *FAST, "trainer.max_epochs=3", "trainer.log_every_n_steps=2", "logger=none",
                       f"hydra.run.dir={tmp_path}/run"], tmp_path)
    out = capsys.readouterr().out
    assert status == 0  # a diverged run is a result, not an error
    m = read_json(tmp_path / "run/metrics.json")
    assert m["status"] == "diverged" and m["epochs"] == 1 and m["global_step"] == steps + 2
    assert "weights became non-finite" in m["message"] and "diverged" in out
    last = load_checkpoint(tmp_path / "run/checkpoints/last.npz")
    assert last["trainer"]["epoch"] == 1 and all(np.all(np.isfinite(w)) for w in last["model"].values())
