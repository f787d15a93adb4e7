"""The README's training loop against PyTorch eager on the wide 3072-1024-1024-10 MLP.

Two mlpframe loops differ in one call: ``model.backward(g)`` (also computes the gradient
of the input, which training never needs) and ``model.backward_params(g)`` (what the
Trainer calls; PyTorch skips an input's gradient unless it requires one). Prints the
median samples/s of alternating trials and each loop's ratio to torch eager.

    python experiments/readme_loop/bench.py [--batch 256] [--trials 7] [--steps 10]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info

from mlpframe import get_backend, nn, optim

SHAPE = (3072, 1024, 1024, 10)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def mlpframe_step(fast: bool, x: np.ndarray, y: np.ndarray):
    be = get_backend("numpy")
    model = nn.MLP(SHAPE[0], hidden=list(SHAPE[1:-1]), out_features=SHAPE[-1], activation="relu",
                   rng=np.random.default_rng(0)).to(be)
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = crit(model(x), y)
        opt.zero_grad()
        (model.backward_params if fast else model.backward)(crit.backward())
        opt.step()
        del loss
    return step


def torch_step(x: np.ndarray, y: np.ndarray):
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(SHAPE[:-1], SHAPE[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(SHAPE) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> None:
        loss = crit(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--trials", type=int, default=7)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, SHAPE[0]), dtype=np.float32)
    y = rng.integers(0, SHAPE[-1], args.batch)
    steps = {"torch eager": torch_step(x, y), "README backward()": mlpframe_step(False, x, y),
             "backward_params()": mlpframe_step(True, x, y)}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for step in steps.values():
        step()  # warm-up
    for _ in range(args.trials):  # alternate, so drifting machine load hits every loop alike
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append(args.batch * args.steps / (time.perf_counter() - t0))
    blas = ", ".join(f"{i.get('internal_api')} {i.get('architecture', '')}".strip() for i in threadpool_info()
                     if i.get("user_api") == "blas")
    print(f"CPU: {cpu_name()}; BLAS: {blas}; torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"shape {'-'.join(map(str, SHAPE))}, batch {args.batch}, float32, median of {args.trials} "
          f"alternating trials of {args.steps} steps")
    ref = statistics.median(times["torch eager"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:>20}: {med:9,.0f} samples/s  {med / ref:5.2f}x torch eager")


if __name__ == "__main__":
    main()
