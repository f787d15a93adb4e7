"""The training step of each framework, built on the same MLP, data and device.

A *step* is what one iteration of a training loop does: zero the gradients,
forward, loss, backward, optimizer update. Every builder returns a
``Runner(step, sync, ...)``: ``step()`` runs one step on the next of its batches
(in turn, so runners that took the same number of steps saw the same data)
without reading anything back to the host, ``sync()`` waits for queued device
work (a no-op on the CPU) so that a timer read after it measures finished work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlpframe import get_backend, nn, optim


@dataclass(frozen=True)
class Shape:
    """One benchmarked network: ``in -> hidden... -> out`` with ``activation``, at ``batch``."""

    name: str
    in_features: int
    hidden: tuple[int, ...]
    out_features: int
    activation: str
    batch: int

    def layers(self) -> str:
        return "-".join(str(n) for n in (self.in_features, *self.hidden, self.out_features))

    def at_batch(self, batch: int) -> Shape:
        return Shape(self.name, self.in_features, self.hidden, self.out_features, self.activation, batch)


SHAPES = (
    Shape("homework", 3072, (128,), 10, "elu", 128),
    Shape("wide", 3072, (1024, 1024), 10, "relu", 256),
    Shape("mnist1d", 40, (256, 256), 10, "relu", 256),
)
LR, MOMENTUM = 0.01, 0.9


@dataclass
class Runner:
    step: Callable[[], None]
    sync: Callable[[], None]
    model: Any
    last_loss: Callable[[], float]  # host sync: only for the sanity check after timing


def make_data(shape: Shape, n_batches: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_batches`` host batches of standard-normal features and uniform labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_batches, shape.batch, shape.in_features), dtype=np.float32)
    y = rng.integers(0, shape.out_features, size=(n_batches, shape.batch), dtype=np.int64)
    return x, y


def mlpframe_model(shape: Shape, seed: int = 0) -> nn.MLP:
    return nn.MLP(shape.in_features, list(shape.hidden), shape.out_features,
                  activation=shape.activation, rng=seed, dtype="float32")


def build_mlpframe(shape: Shape, x: np.ndarray, y: np.ndarray, backend: str = "numpy",
                   seed: int = 0) -> Runner:
    be = get_backend(backend)
    model = mlpframe_model(shape, seed).to(be)
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    # the data lives on the device for the whole run, as the DataLoader keeps it
    xs = [be.asarray(b) for b in x]
    ys = [be.asarray(b) for b in y]
    n = len(xs)
    box: dict[str, Any] = {"k": 0}

    def step() -> None:
        k = box["k"] = box["k"] + 1
        xb, yb = xs[k % n], ys[k % n]
        opt.zero_grad()
        logits = model(xb)
        box["loss"] = crit(logits, yb)
        model.backward_params(crit.backward())  # the data needs no gradient
        opt.step()

    def last_loss() -> float:
        return float(be.to_numpy(box["loss"]))  # host sync

    return Runner(step, be.synchronize, model, last_loss)


def build_torch(shape: Shape, x: np.ndarray, y: np.ndarray, device: str = "cpu", seed: int = 0) -> Runner:
    """PyTorch eager: ``nn.Sequential`` of the same layers, initialised with mlpframe's weights."""
    import torch
    import torch.nn.functional as F

    act = {"relu": torch.nn.ReLU, "elu": torch.nn.ELU}[shape.activation]
    layers: list[torch.nn.Module] = []
    width = shape.in_features
    for h in shape.hidden:
        layers += [torch.nn.Linear(width, h), act()]
        width = h
    layers.append(torch.nn.Linear(width, shape.out_features))
    model = torch.nn.Sequential(*layers)
    state = {k: torch.from_numpy(v.copy()) for k, v in mlpframe_model(shape, seed).state_dict().items()}
    model.load_state_dict(state)
    model = model.to(device=device, dtype=torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    xs = [torch.from_numpy(b.copy()).to(device) for b in x]
    ys = [torch.from_numpy(b.copy()).to(device) for b in y]
    n = len(xs)
    box: dict[str, Any] = {"k": 0}

    def step() -> None:
        k = box["k"] = box["k"] + 1
        xb, yb = xs[k % n], ys[k % n]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        box["loss"] = loss

    def sync() -> None:
        if device != "cpu":
            torch.cuda.synchronize()

    def last_loss() -> float:
        return float(box["loss"].item())  # host sync

    return Runner(step, sync, model, last_loss)


def run_trainer(shape: Shape, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                epochs: int, run_dir: str, backend: str = "numpy", seed: int = 0) -> dict[str, float]:
    """``Trainer.fit`` with the training CLI's default logging; seconds spent, per part.

    Default logging is what ``python -m mlpframe train`` sets up: a progress bar,
    ``last``/``best`` checkpoints every epoch, TensorBoard scalars every
    ``log_every_n_steps=50`` steps and at each epoch end, histograms every 10 epochs.
    Returns ``{"steps", "loop_s", "fit_s"}``: ``loop_s`` is the trainer's own
    (synchronised) time in its training loops — data loading, steps, device-side
    metrics, host syncs and per-interval logging; ``fit_s`` adds validation,
    checkpoints and epoch-end logging.
    """
    from pathlib import Path

    from mlpframe.data.loader import DataLoader
    from mlpframe.engine import ModelCheckpoint, ProgressBar, TensorBoardLogger, Trainer

    be = get_backend(backend)
    model = mlpframe_model(shape, seed).to(be)
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    train = DataLoader(x, y, shape.batch, be, shuffle=True, drop_last=True, seed=seed)
    val = DataLoader(x_val, y_val, 1000, be)
    run = Path(run_dir)
    callbacks = [ProgressBar(enabled=True), ModelCheckpoint(run / "checkpoints"),
                 TensorBoardLogger(run / "tensorboard", histogram_every_n_epochs=10)]
    trainer = Trainer(model, crit, opt, be, max_epochs=epochs, log_every_n_steps=50, seed=seed,
                      callbacks=callbacks)
    result = trainer.fit(train, val)
    if result.status != "completed":
        raise RuntimeError(f"the trainer stopped early: {result.status} {result.message}")
    return {"steps": float(result.metrics["global_step"]), "loop_s": float(result.metrics["train_time_s"]),
            "fit_s": float(result.metrics["wall_time_s"])}
