#!/usr/bin/env python
"""Training-step throughput of mlpframe against PyTorch eager on the same MLPs.

    python experiments/throughput/bench.py                  # NumPy vs torch CPU -> results.md
    python experiments/throughput/bench.py --backend cupy   # CuPy vs torch CUDA (+ batches 1024, 4096)
    python experiments/throughput/bench.py --quick --out /tmp/r.md   # smoke test: a few steps

One step is forward, loss (softmax cross-entropy from logits), backward and an
SGD update (lr 0.01, momentum 0.9), float32, on the same device with the same
thread count. Trials of N steps alternate between the frameworks (the order
flips every trial) so that a slow moment of a shared machine hits both; the
table gives medians, min–max, and the ratio of the medians with the min–max of
the per-trial ratios. It also times the Trainer on top of the raw step and
records peak memory. Without PyTorch it reports mlpframe alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
try:
    import mlpframe  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import gemms as G  # noqa: E402
import steps as S  # noqa: E402
from machine_load import LOAD, MAX_OTHER_LOAD, peak_rss_kib  # noqa: E402
from mlpframe import get_backend  # noqa: E402
from mlpframe.backend import BackendUnavailableError  # noqa: E402
from report import OPENBLAS_VARS, blas_pools, machine, render  # noqa: E402

GPU_BATCHES = (1024, 4096)
N_BATCHES = 4  # distinct batches cycled through, so no step reuses the previous step's input
MIB = 2**20


# ------------------------------------------------------------------ threads
def set_threads(requested: int | None) -> tuple[int, str]:
    """Give NumPy's BLAS and torch the same thread count; returns it and how it was found."""
    if requested is not None:
        try:
            import threadpoolctl
            # keep the limiter alive for the whole run
            set_threads.limiter = threadpoolctl.threadpool_limits(limits=requested, user_api="blas")
            how = "set with threadpoolctl"
        except ImportError:
            how = "requested; threadpoolctl is not installed, so NumPy's BLAS keeps its own count"
        n = requested
    else:
        pools = [p for p in (blas_pools() or []) if p["user_api"] == "blas" and "numpy" in p["filepath"]]
        if pools:
            n, how = pools[0]["num_threads"], "NumPy's BLAS pool (threadpoolctl)"
        else:
            n = os.cpu_count() or 1
            how = "os.cpu_count(): install threadpoolctl to read NumPy's BLAS thread count"
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass
    return n, how


# ------------------------------------------------------------------- timing
def time_trials(runners: dict[str, S.Runner], steps: int, trials: int, batch: int,
                wait_idle: float = 0.0, settle: float = 0.3) -> tuple[dict[str, list[float]], list[float], int]:
    """Samples/s of each runner over ``trials`` alternating trials of ``steps`` steps.

    Also returns the cores other processes used during each kept trial pair and
    the number of pairs dropped: with ``wait_idle``, a pair during which other
    processes used more than ``MAX_OTHER_LOAD`` cores is run again (at most
    ``3 * trials`` extra times; after that the busy pairs are kept, and the load
    column shows it).
    """
    out: dict[str, list[float]] = {name: [] for name in runners}
    load: list[float] = []
    names = list(runners)
    dropped = 0
    while len(load) < trials:
        if wait_idle:
            LOAD.wait_idle(wait_idle)
        start = LOAD.snapshot()
        pair = {}
        for name in (names if len(load) % 2 == 0 else names[::-1]):
            r = runners[name]
            r.sync()
            # let the other framework's idle BLAS/OpenMP workers stop spinning first: OpenBLAS
            # threads spin ~0.1 s after a call, and would slow whatever runs next by a core
            time.sleep(settle)
            t0 = time.perf_counter()
            for i in range(steps):
                r.step()
            r.sync()  # device work finished before the timer is read
            pair[name] = steps * batch / (time.perf_counter() - t0)
        used = LOAD.cores_used(start)
        if wait_idle and used is not None and used > MAX_OTHER_LOAD and dropped < 3 * trials:
            dropped += 1
            continue
        for name, v in pair.items():
            out[name].append(v)
        load.append(used if used is not None else float("nan"))
    return out, load, dropped


def calibrate(runners: dict[str, S.Runner], warmup: int, target_s: float) -> int:
    """Warm every runner up; the step count that makes one trial take about ``target_s``.

    Each runner's step time is the fastest of three short timings, so that a busy
    moment of a shared machine does not make every trial short.
    """
    per_step, taken = [], []
    for r in runners.values():
        for i in range(warmup):
            r.step()
        r.sync()
        best, total = math.inf, warmup
        for _ in range(3):
            n, t0 = 0, time.perf_counter()
            while n < 3 or time.perf_counter() - t0 < min(0.05, target_s / 4):
                r.step()
                n += 1
            r.sync()
            best, total = min(best, (time.perf_counter() - t0) / n), total + n
        per_step.append(best)
        taken.append(total)
    # the same number of steps on every side, so that the final losses can be compared
    for r, n in zip(runners.values(), taken):
        for i in range(max(taken) - n):
            r.step()
    return max(3, round(target_s / statistics.mean(per_step)))


def step_peak_bytes(r: S.Runner) -> int:
    """Bytes NumPy allocates at the peak of one step above what it holds before (tracemalloc)."""
    r.step()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    r.step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def rss_child(framework: str, shape: S.Shape, backend: str) -> float | None:
    """MiB a fresh process gains (peak RSS) from building and training ``shape`` for 10 steps."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--rss-child", framework, shape.name,
           str(shape.batch), "--backend", backend]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
        before, after = (int(v) for v in out.split())
    except (subprocess.SubprocessError, ValueError):
        return None
    return (after - before) / 1024


def _rss_child_main(framework: str, name: str, batch: int, backend: str) -> None:
    shape = next(s for s in S.SHAPES if s.name == name).at_batch(batch)
    if framework == "torch":
        import torch  # noqa: F401  (counted before the model, like mlpframe's import)
    before = peak_rss_kib()
    x, y = S.make_data(shape, N_BATCHES)
    r = build(framework, shape, x, y, backend)
    for i in range(10):
        r.step()
    r.sync()
    print(before, peak_rss_kib())


def build(framework: str, shape: S.Shape, x: np.ndarray, y: np.ndarray, backend: str) -> S.Runner:
    if framework == "mlpframe":
        return S.build_mlpframe(shape, x, y, backend)
    return S.build_torch(shape, x, y, "cuda" if backend == "cupy" else "cpu")


# ------------------------------------------------------------------- shapes
def bench_shape(shape: S.Shape, args: argparse.Namespace, frameworks: list[str]) -> dict[str, Any]:
    x, y = S.make_data(shape, N_BATCHES)
    runners = {fw: build(fw, shape, x, y, args.backend) for fw in frameworks}
    # the step's own GEMMs alone, timed in the same alternation: the limit no step can pass on this BLAS
    gemms = G.step_gemms(S.mlpframe_model(shape), shape.input_shape, shape.batch)
    runners["gemms"] = S.Runner(*G.gemm_runner(gemms, args.backend), model=None, last_loss=lambda: math.nan)
    if args.steps:
        for r in runners.values():
            for i in range(args.warmup):
                r.step()
        steps = args.steps
    else:
        if args.wait_idle:
            LOAD.wait_idle(args.wait_idle)
        steps = calibrate(runners, args.warmup, args.trial_seconds)
    sps, load, dropped = time_trials(runners, steps, args.trials, shape.batch, args.wait_idle, args.settle)
    gemm_sps = sps.pop("gemms")
    row: dict[str, Any] = {"shape": shape.name, "layers": shape.layers(), "activation": shape.activation,
                           "batch": shape.batch, "steps": steps, "trials": args.trials, "sps": sps,
                           "other_load": load, "dropped_trials": dropped,
                           # same init, data and step count: the losses must agree to float32 rounding
                           "loss": {fw: runners[fw].last_loss() for fw in frameworks}}
    gflop = sum(g.flops for g in gemms) / 1e9
    row["gemms"] = {"count": len(gemms), "gflop_per_step": gflop, "sps": gemm_sps,
                    "gflops": gflop * statistics.median(gemm_sps) / shape.batch,
                    # the share of each step's time its GEMMs alone take: 100 % is the limit
                    "share": {fw: statistics.median(v) / statistics.median(gemm_sps) for fw, v in sps.items()}}
    if "torch" in runners:
        pairs = [m / t for m, t in zip(sps["mlpframe"], sps["torch"])]
        row["ratio"] = statistics.median(sps["mlpframe"]) / statistics.median(sps["torch"])
        row["ratio_trials"] = pairs
    if args.backend == "numpy":
        row["step_alloc_mib"] = step_peak_bytes(runners["mlpframe"]) / MIB
        if args.rss:
            row["rss_mib"] = {fw: rss_child(fw, shape, args.backend) for fw in frameworks}
    else:
        row["device_mib"] = device_memory(runners, args.backend)
    return row


def device_memory(runners: dict[str, S.Runner], backend: str) -> dict[str, float]:
    """Device memory after a few more steps: CuPy's pool size, torch's peak allocation."""
    out = {}
    be = get_backend(backend)
    be.free_memory()
    for i in range(3):
        runners["mlpframe"].step()
    be.synchronize()
    out["mlpframe"] = be.memory_info().get("total_bytes", 0) / MIB
    if "torch" in runners:
        import torch
        torch.cuda.reset_peak_memory_stats()
        for i in range(3):
            runners["torch"].step()
        torch.cuda.synchronize()
        out["torch"] = torch.cuda.max_memory_allocated() / MIB
    return out


def bench_trainer(args: argparse.Namespace) -> dict[str, Any]:
    """The Trainer on the MNIST-1D shape against the raw step, alternating, per step."""
    shape = S.SHAPES[2]
    batches = 4 if args.quick else 100  # an epoch of 100 steps: two log intervals of 50
    epochs = 1 if args.quick else 2
    rng = np.random.default_rng(1)
    n = batches * shape.batch
    x = rng.standard_normal((n, shape.in_features), dtype=np.float32)
    y = rng.integers(0, shape.out_features, size=n, dtype=np.int64)
    x_val, y_val = x[:500], y[:500]
    raw = S.build_mlpframe(shape, x[: N_BATCHES * shape.batch].reshape(N_BATCHES, shape.batch, -1),
                           y[: N_BATCHES * shape.batch].reshape(N_BATCHES, shape.batch), args.backend)
    for i in range(args.warmup):
        raw.step()
    raw_s, loop_s, fit_s, load = [], [], [], []
    dropped = 0
    with tempfile.TemporaryDirectory(prefix="mlpframe-bench-") as tmp:
        while len(load) < args.trials:
            t = len(load) + dropped
            if args.wait_idle:
                LOAD.wait_idle(args.wait_idle)
            start = LOAD.snapshot()
            kept = len(raw_s), len(loop_s), len(fit_s)
            def trainer_trial() -> None:
                r = S.run_trainer(shape, x, y, x_val, y_val, epochs, f"{tmp}/run{t}", args.backend)
                loop_s.append(r["loop_s"] / r["steps"])
                fit_s.append(r["fit_s"] / r["steps"])

            def raw_trial() -> None:
                k = batches * epochs
                raw.sync()
                t0 = time.perf_counter()
                for i in range(k):
                    raw.step()
                raw.sync()
                raw_s.append((time.perf_counter() - t0) / k)

            for trial in ((raw_trial, trainer_trial) if len(load) % 2 == 0 else (trainer_trial, raw_trial)):
                time.sleep(args.settle)
                trial()
            used = LOAD.cores_used(start)
            if args.wait_idle and used is not None and used > MAX_OTHER_LOAD and dropped < 3 * args.trials:
                dropped += 1  # a busy pair: measure it again (see time_trials)
                del raw_s[kept[0]:], loop_s[kept[1]:], fit_s[kept[2]:]
                continue
            load.append(used if used is not None else float("nan"))
    raw_m, loop_m, fit_m = (statistics.median(v) for v in (raw_s, loop_s, fit_s))
    return {"shape": shape.name, "layers": shape.layers(), "batch": shape.batch, "steps_per_epoch": batches,
            "epochs": epochs, "trials": args.trials, "raw_ms": raw_m * 1e3, "loop_ms": loop_m * 1e3,
            "fit_ms": fit_m * 1e3, "loop_overhead_pct": (loop_m / raw_m - 1) * 100,
            "fit_overhead_pct": (fit_m / raw_m - 1) * 100,
            "loop_overhead_trials_pct": [(lo / r - 1) * 100 for lo, r in zip(loop_s, raw_s)], "other_load": load,
            "dropped_trials": dropped}


# ---------------------------------------------------------------------- main
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--quick", action="store_true", help="a few steps per shape: a smoke test, not a measurement")
    p.add_argument("--trials", type=int, default=None, help="alternating trials per framework (default 11)")
    p.add_argument("--steps", type=int, default=None, help="steps per trial (default: ~--trial-seconds)")
    p.add_argument("--trial-seconds", type=float, default=0.5)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--shapes", nargs="+", choices=[s.name for s in S.SHAPES], default=[s.name for s in S.SHAPES])
    p.add_argument("--batch", type=int, default=None, help="run every shape at this batch size (default: each "
                                                           "shape's own)")
    p.add_argument("--threads", type=int, default=None, help="BLAS/torch threads (default: NumPy's BLAS count)")
    p.add_argument("--settle", type=float, default=None, metavar="SECONDS",
                   help="pause before each trial so the previous one's spinning BLAS threads sleep (default 0.3)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each trial, wait up to this long for other processes to leave the CPUs idle")
    p.add_argument("--no-torch", action="store_true", help="mlpframe alone")
    p.add_argument("--no-trainer", action="store_true")
    p.add_argument("--no-rss", dest="rss", action="store_false", help="skip the per-process RSS measurement")
    p.add_argument("--compare-openblas-env", action="store_true",
                   help=f"also run with {' and '.join(OPENBLAS_VARS)} unset (when set) and add that table")
    p.add_argument("--out", type=Path, default=None, help="Markdown report (default: results.md here; none with "
                                                          "--quick)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw numbers as JSON")
    p.add_argument("--rss-child", nargs=3, metavar=("FRAMEWORK", "SHAPE", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.trials = args.trials or 3
        args.steps = args.steps or 2
        args.warmup = 1 if args.warmup is None else args.warmup
        args.rss = False
    args.trials = args.trials or 11
    if args.settle is None:
        args.settle = 0.0 if args.quick else 0.3
    args.warmup = 5 if args.warmup is None else args.warmup
    if args.out is None and not args.quick:
        args.out = HERE / ("results.md" if args.backend == "numpy" else "results_cupy.md")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.rss_child:
        fw, name, batch = args.rss_child
        _rss_child_main(fw, name, int(batch), args.backend)
        return 0
    try:
        get_backend(args.backend)
    except BackendUnavailableError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    frameworks = ["mlpframe"]
    if not args.no_torch:
        try:
            import torch
            if args.backend == "cupy" and not torch.cuda.is_available():
                print("bench: torch has no CUDA here; reporting mlpframe alone", file=sys.stderr)
            else:
                frameworks.append("torch")
        except ImportError:
            print("bench: PyTorch is not installed (pip install 'mlpframe[torch]'); reporting mlpframe alone",
                  file=sys.stderr)
    threads, how = set_threads(args.threads)
    info = machine(args, threads, how)
    shapes = [s if args.batch is None else s.at_batch(args.batch) for s in S.SHAPES if s.name in args.shapes]
    if args.backend == "cupy":
        shapes += [s.at_batch(b) for s in shapes for b in GPU_BATCHES if b != s.batch]
    rows = []
    for shape in shapes:
        row = bench_shape(shape, args, frameworks)
        rows.append(row)
        ratio = f"  ratio {row['ratio']:.2f}x" if "ratio" in row else ""
        print(f"{shape.name:9s} batch {shape.batch:5d}: " + "  ".join(
            f"{fw} {statistics.median(v):,.0f}/s" for fw, v in row["sps"].items()) + ratio, flush=True)
    res: dict[str, Any] = {"backend": args.backend, "rows": rows, "machine": info, "settle": args.settle,
                           "wait_idle": args.wait_idle}
    if not args.no_trainer:
        res["trainer"] = bench_trainer(args)
        print(f"trainer loop overhead on the {res['trainer']['shape']} shape: "
              f"{res['trainer']['loop_overhead_pct']:+.1f} %", flush=True)
    if args.compare_openblas_env and any(os.environ.get(v) for v in OPENBLAS_VARS):
        res["without_openblas_env"] = _without_openblas_env(args)
    info["loadavg_end"] = os.getloadavg()
    res["maxrss_mib"] = peak_rss_kib() / 1024
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    if args.out:
        text = render(res)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)  # no half-written report
        print(f"wrote {args.out}")
    return 0


def _without_openblas_env(args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--backend", args.backend, "--trials",
               str(args.trials), "--trial-seconds", str(args.trial_seconds), "--shapes", *args.shapes,
               "--no-trainer", "--no-rss", "--out", str(Path(tmp) / "r.md"), "--json", str(out)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.wait_idle:
            cmd += ["--wait-idle", str(args.wait_idle)]
        cmd += ["--settle", str(args.settle)]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        subprocess.run(cmd, env=env, check=True)
        child = json.loads(out.read_text())
    return {"rows": child["rows"], "blas": child["machine"]["blas"]}


if __name__ == "__main__":
    sys.exit(main())
