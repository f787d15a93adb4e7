"""Interrupts mid-epoch, resumes from them, and the checks a loaded training state must pass."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlpframe import nn
from mlpframe.data import load_dataset
from mlpframe.engine import ModelCheckpoint, TensorBoardLogger, load_checkpoint, save_checkpoint
from mlpframe.engine.metrics import Accumulator

from .test_trainer import comparable, make


@pytest.fixture(scope="module")
def spirals():
    return load_dataset("synthetic", n_samples=800, num_classes=3, noise=0.05, seed=0)


class InterruptAt(nn.CrossEntropyLoss):
    """Cross-entropy that asks its trainer to stop during training step ``k`` (counting from 1)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k, self.calls, self.trainer = k, 0, None

    def forward(self, inputs, targets):
        loss = super().forward(inputs, targets)
        if inputs.shape[0] == 32:  # training batches only
            self.calls += 1
            if self.calls == self.k:
                self.trainer.request_interrupt()
        return loss


def interrupted(spirals, k, tmp_path, **kwargs):
    crit = InterruptAt(k)
    trainer, loaders = make(spirals, criterion=crit, **kwargs)
    crit.trainer = trainer
    result = trainer.fit(*loaders, num_classes=3)
    path = save_checkpoint(tmp_path / f"at{k}.npz", trainer.checkpoint_state())
    return trainer, result, load_checkpoint(path)


@pytest.mark.parametrize("k", [1, 4, 6, 16, 17, 23, 25, 40], ids=lambda k: f"step{k}")
@pytest.mark.parametrize("setup", [
    {"dropout": 0.2},
    {"dropout": 0.5, "grad_clip": 0.5, "scheduler": "none"},
], ids=["dropout-step", "clip-constant"])
def test_resume_after_an_interrupt_mid_epoch_is_bit_identical(spirals, tmp_path, k, setup):
    # 17 steps per epoch, syncs every 4: k covers the first step, a sync step, mid-interval steps,
    # the second and third epochs
    straight, loaders = make(spirals, max_epochs=3, **setup)
    r_straight = straight.fit(*loaders, num_classes=3)
    steps = len(loaders[0])
    trainer, result, ckpt = interrupted(spirals, k, tmp_path, max_epochs=3, **setup)
    assert result.status == "interrupted" and trainer.state.global_step == k
    epoch, step = divmod(k, steps)
    assert ckpt["trainer"]["epoch"] == epoch and ckpt["trainer"]["step_in_epoch"] == step
    assert (f"after step {step}" if step else f"after epoch {epoch}") in result.message

    resumed, loaders = make(spirals, max_epochs=3, **setup)
    resumed.restore(ckpt)
    r_resumed = resumed.fit(*loaders, num_classes=3)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(np.array_equal(a[name], b[name]) for name in a)
    assert comparable(r_straight.history) == comparable(r_resumed.history)
    for key in ("val/acc_best", "test/acc", "test/loss", "train/loss", "global_step", "epochs"):
        assert r_straight.metrics[key] == r_resumed.metrics[key], key
    assert resumed.state.step_in_epoch == 0 and resumed.state.epoch_progress is None


def test_an_interrupt_mid_epoch_is_checkpointed_by_model_checkpoint(spirals, tmp_path):
    crit = InterruptAt(30)
    trainer, loaders = make(spirals, max_epochs=3, criterion=crit, callbacks=[ModelCheckpoint(tmp_path)])
    crit.trainer = trainer
    trainer.fit(*loaders)
    last, best = load_checkpoint(tmp_path / "last.npz"), load_checkpoint(tmp_path / "best.npz")
    assert (last["trainer"]["epoch"], last["trainer"]["step_in_epoch"]) == (1, 30 - len(loaders[0]))
    assert (best["trainer"]["epoch"], best["trainer"]["step_in_epoch"]) == (1, 0)  # best: epochs only
    assert last["trainer"]["epoch_progress"]["rng"]["bit_generator"] == "PCG64"


def test_an_interrupt_before_fit_stops_before_the_first_step(spirals, tmp_path):
    trainer, loaders = make(spirals, callbacks=[ModelCheckpoint(tmp_path)])
    trainer.request_interrupt()  # e.g. SIGTERM while the data loaded
    result = trainer.fit(*loaders)
    assert result.status == "interrupted" and trainer.state.global_step == 0
    assert not list(tmp_path.iterdir())
    again = trainer.fit(*loaders)  # the request was used up
    assert again.status == "completed"


def test_a_mid_epoch_checkpoint_with_another_batch_size_restarts_that_epoch(spirals, tmp_path, caplog):
    _, _, ckpt = interrupted(spirals, 5, tmp_path, max_epochs=2)
    trainer, _ = make(spirals, max_epochs=2)
    trainer.restore(ckpt)
    from mlpframe.data import DataLoader

    be = trainer.backend
    other = DataLoader(*spirals.train, 16, be, shuffle=True, drop_last=True, seed=0)  # 35 steps, not 17
    result = trainer.fit(other)
    assert result.status == "completed" and result.metrics["epochs"] == 2
    assert "starts over with the current weights" in caplog.text
    assert trainer.state.global_step == 5 + 2 * len(other)


@pytest.mark.parametrize("field, value", [("epoch", -1), ("global_step", "3"), ("step_in_epoch", 2.5),
                                          ("history", {"a": 1}), ("step_in_epoch", 3)])
def test_restore_refuses_a_malformed_training_state(spirals, tmp_path, field, value):
    trainer, _ = make(spirals)
    state = trainer.checkpoint_state()
    state["trainer"][field] = value  # step_in_epoch=3 without the partial epoch's sums
    named = "epoch_progress" if (field, value) == ("step_in_epoch", 3) else field
    with pytest.raises(ValueError, match=f"trainer.{named}"):
        trainer.restore(state)


def test_the_weights_check_and_the_sums_share_one_transfer():
    from mlpframe import get_backend

    be = get_backend("numpy")
    acc = Accumulator(be)
    out = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    acc.update(np.float32(0.5) * np.ones((), np.float32), out, np.array([1, 1]))
    acc.watch(np.array(np.nan))
    assert acc.sync() == (1.0, 1, 2) and math.isnan(acc.watched)
    acc.update(np.ones((), np.float32), out, np.array([1, 0]))
    state = acc.state_dict()
    again = Accumulator(be)
    again.load_state_dict(state)
    acc.update(np.float32(0.25) * np.ones((), np.float32), out, np.array([0, 0]))
    again.update(np.float32(0.25) * np.ones((), np.float32), out, np.array([0, 0]))
    assert acc.sync() == again.sync() == (2.5, 3, 4) and again.watched is None


def test_tensorboard_curves_after_a_kill_equal_the_uninterrupted_run(spirals, tmp_path):
    """The writer is flushed before each checkpoint, so a kill loses nothing a resume needs: what the
    checkpoint's step covers is on disk, and the resumed writer continues the curves exactly."""
    from tensorboard.backend.event_processing import event_accumulator

    from mlpframe.engine.tensorboard import visible_points

    def curves(folder):
        acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]
                if tag != "throughput/samples_per_s"}  # a clock

    straight, loaders = make(spirals, max_epochs=3, callbacks=[TensorBoardLogger(tmp_path / "a", hparams={"x": 1})])
    straight.fit(*loaders, num_classes=3)

    crit = InterruptAt(2 * len(loaders[0]))  # the last step of epoch 2: the epoch finishes, then it stops
    first, loaders = make(spirals, max_epochs=3, criterion=crit,
                          callbacks=[TensorBoardLogger(tmp_path / "b", hparams={"x": 1}), ModelCheckpoint(tmp_path)])
    crit.trainer = first
    assert first.fit(*loaders, num_classes=3).status == "interrupted"
    step = load_checkpoint(tmp_path / "last.npz")["trainer"]["global_step"]
    straight_points = {p for p in visible_points(tmp_path / "a") if p[1] <= step and p[0].startswith(("val/", "lr"))}
    assert straight_points and straight_points <= visible_points(tmp_path / "b")  # on disk before any kill

    resumed, loaders = make(spirals, max_epochs=3,
                            callbacks=[TensorBoardLogger(tmp_path / "b", hparams={"x": 1}), ModelCheckpoint(tmp_path)])
    resumed.restore(load_checkpoint(tmp_path / "last.npz"))
    resumed.fit(*loaders, num_classes=3)
    a, b = curves(tmp_path / "a"), curves(tmp_path / "b")
    assert set(a) == set(b) and a == b
