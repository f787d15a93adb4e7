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
import math
import sys
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlpframe import get_backend, nn, optim


@dataclass(frozen=True)
class Shape:
    """One benchmarked MLP: ``in -> hidden... -> out`` with ``activation``, at ``batch``."""

    name: str
    in_features: int
    hidden: tuple[int, ...]
    out_features: int
    activation: str
    batch: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_features,)

    def layers(self) -> str:
        return "-".join(str(n) for n in (self.in_features, *self.hidden, self.out_features))

    def at_batch(self, batch: int) -> Shape:
        return replace(self, batch=batch)

    def mlpframe_model(self, seed: int = 0) -> nn.Module:
        return nn.MLP(self.in_features, list(self.hidden), self.out_features, activation=self.activation, rng=seed,
                      dtype="float32")

    def torch_layers(self) -> list:
        import torch

        act = {"relu": torch.nn.ReLU, "elu": torch.nn.ELU}[self.activation]
        layers, width = [], self.in_features
        for h in self.hidden:
            layers += [torch.nn.Linear(width, h), act()]
            width = h
        return layers + [torch.nn.Linear(width, self.out_features)]


@dataclass(frozen=True)
class CnnShape:
    """``[Conv(c, k, stride, padding) -> ReLU -> MaxPool(pool)?] * len(convs) -> Flatten -> Linear`` at ``batch``.

    ``input_shape`` is one example's (C, L) or (C, H, W); 1-D or 2-D layers follow it.
    """

    name: str
    input_shape: tuple[int, ...]
    convs: tuple[tuple[int, int, int, int], ...]  # (out_channels, kernel, stride, padding) per block
    pool: int | None
    out_features: int
    batch: int
    activation: str = "relu"

    @property
    def dims(self) -> int:
        return len(self.input_shape) - 1

    def _blocks(self) -> tuple[list[tuple[int, int, int, int, int]], int]:
        """(in, out, kernel, stride, padding) per conv and the flattened width after the last block."""
        blocks, c, spatial = [], self.input_shape[0], list(self.input_shape[1:])
        for out, k, s, p in self.convs:
            blocks.append((c, out, k, s, p))
            spatial = [(n + 2 * p - k) // s + 1 for n in spatial]
            if self.pool:
                spatial = [n // self.pool for n in spatial]
            c = out
        return blocks, c * math.prod(spatial)

    def layers(self) -> str:
        blocks, flat = self._blocks()
        pool = f" + pool {self.pool}" if self.pool else ""
        convs = ", ".join(f"{o}k{k}s{s}p{p}" for _, o, k, s, p in blocks)
        return f"{'x'.join(map(str, self.input_shape))} conv{self.dims}d [{convs}]{pool} -> {flat}-{self.out_features}"

    def at_batch(self, batch: int) -> CnnShape:
        return replace(self, batch=batch)

    def mlpframe_model(self, seed: int = 0) -> nn.Module:
        conv, pool = (nn.Conv1d, nn.MaxPool1d) if self.dims == 1 else (nn.Conv2d, nn.MaxPool2d)
        rng = np.random.default_rng(seed)
        blocks, flat = self._blocks()
        layers: list[nn.Module] = []
        for c_in, c_out, k, s, p in blocks:
            layers += [conv(c_in, c_out, k, s, p, rng=rng, init="torch"), nn.ReLU()]
            layers += [pool(self.pool)] if self.pool else []
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, self.out_features, rng=rng, init="torch"))

    def torch_layers(self) -> list:
        import torch

        T = torch.nn
        conv, pool = (T.Conv1d, T.MaxPool1d) if self.dims == 1 else (T.Conv2d, T.MaxPool2d)
        blocks, flat = self._blocks()
        layers: list = []
        for c_in, c_out, k, s, p in blocks:
            layers += [conv(c_in, c_out, k, s, p), T.ReLU()] + ([pool(self.pool)] if self.pool else [])
        return layers + [T.Flatten(), T.Linear(flat, self.out_features)]


SHAPES = (
    Shape("homework", 3072, (128,), 10, "elu", 128),
    Shape("wide", 3072, (1024, 1024), 10, "relu", 256),
    Shape("mnist1d", 40, (256, 256), 10, "relu", 256),
    # the MNIST-1D paper's CNN (mnist1d notebooks/models.py), at its batch size
    CnnShape("mnist1d_cnn", (1, 40), ((25, 5, 2, 1), (25, 3, 2, 1), (25, 3, 2, 1)), None, 10, 100),
    # a small CIFAR-10 CNN: three 3x3 conv blocks with 2x2 max pooling
    CnnShape("cifar_cnn", (3, 32, 32), ((32, 3, 1, 1), (64, 3, 1, 1), (128, 3, 1, 1)), 2, 10, 128),
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
    x = rng.standard_normal((n_batches, shape.batch, *shape.input_shape), dtype=np.float32)
    y = rng.integers(0, shape.out_features, size=(n_batches, shape.batch), dtype=np.int64)
    return x, y


def mlpframe_model(shape: Shape | CnnShape, seed: int = 0) -> nn.Module:
    return shape.mlpframe_model(seed)


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

    model = torch.nn.Sequential(*shape.torch_layers())
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

    Default logging is what ``python -m mlpframe train`` sets up: a progress bar (when stderr is a terminal),
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
    # the bar as a user sees it on a terminal; none into a redirected report
    callbacks = [ProgressBar(enabled=sys.stderr.isatty()), ModelCheckpoint(run / "checkpoints"),
                 TensorBoardLogger(run / "tensorboard", histogram_every_n_epochs=10)]
    trainer = Trainer(model, crit, opt, be, max_epochs=epochs, log_every_n_steps=50, seed=seed,
                      callbacks=callbacks)
    result = trainer.fit(train, val)
    if result.status != "completed":
        raise RuntimeError(f"the trainer stopped early: {result.status} {result.message}")
    return {"steps": float(result.metrics["global_step"]), "loop_s": float(result.metrics["train_time_s"]),
            "fit_s": float(result.metrics["wall_time_s"])}
