#!/usr/bin/env python
"""Training-step time of mlpframe's GRU and LSTM against PyTorch eager's nn.GRU / nn.LSTM.

    python experiments/throughput/recurrent.py                   # both shapes, 11 trials each
    python experiments/throughput/recurrent.py --quick           # smoke test: a few steps
    python experiments/throughput/recurrent.py --shapes paper_gru --trials 21

One step: zero the gradients, forward (recurrent layer -> head -> Linear), softmax
cross-entropy from logits, backward (the data needs no gradient: ``backward_params``
in mlpframe, an input without ``requires_grad`` in torch) and an Adam update
(lr 1e-2, the MNIST-1D paper's), float32, both frameworks starting from the same
weights and on the same thread count. Trials of N steps alternate between the two
(the order flips every trial, see ``bench.time_trials``); the script prints the
median milliseconds per step of each and the ratio of the medians, with the CPU
and the BLAS libraries. The runners follow ``steps.Runner``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
try:
    import mlpframe  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from bench import calibrate, set_threads, time_trials  # noqa: E402
from mlpframe import get_backend, nn, optim  # noqa: E402
from report import machine  # noqa: E402
from steps import Runner  # noqa: E402

LR = 1e-2
N_BATCHES = 4


@dataclass(frozen=True)
class RecurrentShape:
    """``kind(input, hidden, bidirectional)`` on (batch, steps, input) -> head -> Linear(classes)."""

    name: str
    kind: str  # "GRU" or "LSTM"
    input_size: int
    hidden: int
    bidirectional: bool
    steps: int
    batch: int
    head: str  # "flatten": all steps' outputs (the paper's GRU); "last": the last step's
    classes: int = 10

    @property
    def features(self) -> int:
        width = (2 if self.bidirectional else 1) * self.hidden
        return width * self.steps if self.head == "flatten" else width

    def describe(self) -> str:
        bi = "bidirectional " if self.bidirectional else ""
        head = "all steps flattened" if self.head == "flatten" else "last step"
        return (f"{bi}{self.kind} hidden {self.hidden}, T {self.steps}, input {self.input_size}, batch "
                f"{self.batch}, {head} -> Linear({self.features}, {self.classes})")


SHAPES = (
    RecurrentShape("paper_gru", "GRU", 1, 6, True, 40, 100, "flatten"),
    RecurrentShape("lstm64", "LSTM", 1, 64, False, 40, 100, "last"),
)


class _FlattenSteps(nn.Module):
    """(N, T, F) -> (N, T*F): the paper's GRU feeds every step's output to its classifier."""

    def forward(self, x):
        self.cache["shape"] = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_y):
        return grad_y.reshape(self.cache["shape"])


def make_data(shape: RecurrentShape, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N_BATCHES, shape.batch, shape.steps, shape.input_size), dtype=np.float32)
    y = rng.integers(0, shape.classes, size=(N_BATCHES, shape.batch), dtype=np.int64)
    return x, y


def mlpframe_model(shape: RecurrentShape, seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    rnn = getattr(nn, shape.kind)(shape.input_size, shape.hidden, bidirectional=shape.bidirectional, rng=rng)
    head = _FlattenSteps() if shape.head == "flatten" else nn.LastStep()
    return nn.Sequential(rnn, head, nn.Linear(shape.features, shape.classes, rng=rng, init="torch"))


def _run(step_fn, xs, ys) -> tuple[Any, Any]:
    box: dict[str, Any] = {"k": 0}

    def step() -> None:
        k = box["k"] = box["k"] + 1
        box["loss"] = step_fn(xs[k % len(xs)], ys[k % len(ys)])

    return step, box


def build_mlpframe(shape: RecurrentShape, x: np.ndarray, y: np.ndarray, backend: str = "numpy") -> Runner:
    be = get_backend(backend)
    model = mlpframe_model(shape).to(be)
    crit = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=LR)
    xs, ys = [be.asarray(b) for b in x], [be.asarray(b) for b in y]

    def one(xb, yb):
        opt.zero_grad()
        loss = crit(model(xb), yb)
        model.backward_params(crit.backward())  # the data needs no gradient
        opt.step()
        return loss

    step, box = _run(one, xs, ys)
    return Runner(step, be.synchronize, model, lambda: float(be.to_numpy(box["loss"])))  # host sync


def build_torch(shape: RecurrentShape, x: np.ndarray, y: np.ndarray, device: str = "cpu") -> Runner:
    """PyTorch eager: ``nn.GRU``/``nn.LSTM`` (batch_first) and ``nn.Linear``, with mlpframe's weights."""
    import torch
    import torch.nn.functional as F

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = getattr(torch.nn, shape.kind)(shape.input_size, shape.hidden, batch_first=True,
                                                     bidirectional=shape.bidirectional)
            self.fc = torch.nn.Linear(shape.features, shape.classes)

        def forward(self, xb):
            out, _ = self.rnn(xb)
            return self.fc(out.flatten(1) if shape.head == "flatten" else out[:, -1])

    net = Net()
    state = {}
    for name, value in mlpframe_model(shape).state_dict().items():
        layer, _, pname = name.partition(".")
        if layer == "0":
            base, rev = (pname[: -len("_reverse")], "_reverse") if pname.endswith("_reverse") else (pname, "")
            state[f"rnn.{base}_l0{rev}"] = torch.from_numpy(value.copy())
        else:
            state[f"fc.{pname}"] = torch.from_numpy(value.copy())
    net.load_state_dict(state)
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    xs = [torch.from_numpy(b.copy()).to(device) for b in x]
    ys = [torch.from_numpy(b.copy()).to(device) for b in y]

    def one(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        return loss

    step, box = _run(one, xs, ys)

    def sync() -> None:
        if device != "cpu":
            torch.cuda.synchronize()

    return Runner(step, sync, net, lambda: float(box["loss"].item()))  # host sync


def bench_shape(shape: RecurrentShape, args: argparse.Namespace, frameworks: list[str]) -> dict[str, Any]:
    x, y = make_data(shape)
    device = "cuda" if args.backend == "cupy" else "cpu"
    runners = {"mlpframe": build_mlpframe(shape, x, y, args.backend)}
    if "torch" in frameworks:
        runners["torch"] = build_torch(shape, x, y, device)
    if args.steps:
        for r in runners.values():
            for i in range(args.warmup):
                r.step()
        steps = args.steps
    else:
        steps = calibrate(runners, args.warmup, args.trial_seconds)
    sps, load, dropped = time_trials(runners, steps, args.trials, shape.batch, 0.0, args.settle)
    ms = {fw: [shape.batch / v * 1e3 for v in values] for fw, values in sps.items()}
    row: dict[str, Any] = {"shape": shape.name, "describe": shape.describe(), "steps": steps, "trials": args.trials,
                           "ms": ms, "median_ms": {fw: statistics.median(v) for fw, v in ms.items()},
                           "loss": {fw: r.last_loss() for fw, r in runners.items()}}
    if "torch" in runners:
        row["speedup"] = row["median_ms"]["torch"] / row["median_ms"]["mlpframe"]
        row["speedup_trials"] = [t / m for m, t in zip(ms["mlpframe"], ms["torch"])]
    return row


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--quick", action="store_true", help="a few steps per shape: a smoke test, not a measurement")
    p.add_argument("--trials", type=int, default=None, help="alternating trials per framework (default 11)")
    p.add_argument("--steps", type=int, default=None, help="steps per trial (default: ~--trial-seconds)")
    p.add_argument("--trial-seconds", type=float, default=1.0)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--settle", type=float, default=None, metavar="SECONDS")
    p.add_argument("--threads", type=int, default=None, help="BLAS/torch threads (default: NumPy's BLAS count)")
    p.add_argument("--shapes", nargs="+", choices=[s.name for s in SHAPES], default=[s.name for s in SHAPES])
    p.add_argument("--no-torch", action="store_true", help="mlpframe alone")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.steps = args.trials or 3, args.steps or 2
        args.warmup = 1 if args.warmup is None else args.warmup
    args.trials = args.trials or 11
    args.warmup = 3 if args.warmup is None else args.warmup
    args.settle = (0.0 if args.quick else 0.3) if args.settle is None else args.settle
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        get_backend(args.backend)
    except Exception as exc:  # BackendUnavailableError: no GPU
        print(f"recurrent: {exc}", file=sys.stderr)
        return 2
    frameworks = ["mlpframe"]
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            frameworks.append("torch")
        except ImportError:
            print("recurrent: PyTorch is not installed; reporting mlpframe alone", file=sys.stderr)
    threads, how = set_threads(args.threads)
    info = machine(args, threads, how)
    blas = "; ".join(f"{b['internal_api']} {b['version']} {b['architecture']} ({b['num_threads']} threads)"
                     for b in info["blas"]) if isinstance(info["blas"], list) else info["blas"]
    print(f"CPU: {info['cpu']} ({info['logical_cpus']} logical), {threads} threads ({how})")
    print(f"NumPy {info['numpy']} BLAS: {blas}")
    if info.get("torch"):
        print(f"torch {info['torch']} ({info['torch_blas']}), {info['torch_threads']} threads")
    for shape in SHAPES:
        if shape.name not in args.shapes:
            continue
        row = bench_shape(shape, args, frameworks)
        med = row["median_ms"]
        line = f"{shape.name}: {row['describe']}\n  " + "  ".join(
            f"{fw} {m:.2f} ms/step (min {min(row['ms'][fw]):.2f}, max {max(row['ms'][fw]):.2f})"
            for fw, m in med.items())
        if "speedup" in row:
            line += (f"\n  torch/mlpframe time ratio {row['speedup']:.2f}x (per-trial "
                     f"{min(row['speedup_trials']):.2f}-{max(row['speedup_trials']):.2f}); "
                     f"final losses " + " / ".join(f"{v:.4f}" for v in row["loss"].values()))
        print(line, flush=True)
    # other processes' load shows in the min-max spread; the load average says how busy the machine was
    print(f"load average at start {info['loadavg_start'][0]:.2f}, at end {os.getloadavg()[0]:.2f} "
          f"on {info['logical_cpus']} logical CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
