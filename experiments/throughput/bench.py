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
import datetime as dt
import json
import math
import os
import platform
import resource
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

import steps as S  # noqa: E402
from mlpframe import get_backend  # noqa: E402
from mlpframe.backend import BackendUnavailableError  # noqa: E402

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
GPU_BATCHES = (1024, 4096)
N_BATCHES = 4  # distinct batches cycled through, so no step reuses the previous step's input
MIB = 2**20


# ------------------------------------------------------------------ threads
def blas_pools() -> list[dict[str, Any]] | None:
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl.threadpool_info()


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
class OtherLoad:
    """CPU time that other processes take while we measure, from /proc/stat (Linux; else None).

    On a shared machine a trial that overlapped someone else's job is not a
    measurement of either framework; the report shows this load, and
    ``--wait-idle`` delays each trial until the machine has been idle briefly.
    """

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.ok = self._busy() is not None

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [float(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        return sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0.0)  # all but idle and iowait

    def snapshot(self) -> tuple[float, float, float] | None:
        if not self.ok:
            return None
        t = os.times()
        return time.perf_counter(), self._busy() / self.hz, t.user + t.system

    def cores_used(self, start: tuple[float, float, float] | None) -> float | None:
        """Cores that other processes kept busy, on average, since ``start``."""
        end = self.snapshot()
        if start is None or end is None or end[0] <= start[0]:
            return None
        other = (end[1] - start[1]) - (end[2] - start[2])
        return max(0.0, other / (end[0] - start[0]))

    def wait_idle(self, max_wait: float, threshold: float = 0.15, window: float = 0.2) -> None:
        """Return once other processes used under ``threshold`` cores for ``window`` s (or after ``max_wait``)."""
        deadline = time.perf_counter() + max_wait
        while self.ok and time.perf_counter() < deadline:
            start = self.snapshot()
            time.sleep(window)
            used = self.cores_used(start)
            if used is None or used < threshold:
                return


LOAD = OtherLoad()
MAX_OTHER_LOAD = 0.1  # cores: what --wait-idle still counts as an idle machine


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


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


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


def peak_rss_kib() -> int:
    """This process's peak resident set, KiB.

    /proc's VmHWM where there is one: ru_maxrss survives exec on Linux, so a child
    started from this (large) process would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


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
    row: dict[str, Any] = {"shape": shape.name, "layers": shape.layers(), "activation": shape.activation,
                           "batch": shape.batch, "steps": steps, "trials": args.trials, "sps": sps,
                           "other_load": load, "dropped_trials": dropped,
                           # same init, data and step count: the losses must agree to float32 rounding
                           "loss": {fw: r.last_loss() for fw, r in runners.items()}}
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


# -------------------------------------------------------------------- report
def machine(args: argparse.Namespace, threads: int, threads_how: str) -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "platform": platform.platform(), "cpu": cpu, "logical_cpus": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__,
        "threads": threads, "threads_how": threads_how,
        "openblas_env": {v: os.environ.get(v) for v in OPENBLAS_VARS},
        "loadavg_start": os.getloadavg(),
    }
    import mlpframe
    info["mlpframe"] = mlpframe.__version__
    pools = blas_pools()
    info["blas"] = [
        {k: p.get(k) for k in ("internal_api", "version", "architecture", "threading_layer", "num_threads",
                               "prefix")}
        for p in pools or [] if p["user_api"] == "blas"
    ] if pools is not None else "threadpoolctl not installed"
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_blas"] = ", ".join(
            name for name, on in (("MKL", torch.backends.mkl.is_available()),
                                  ("oneDNN", torch.backends.mkldnn.is_available())) if on) or "other"
        info["torch_threads"] = torch.get_num_threads()
        if args.backend == "cupy":
            info["torch_tf32"] = torch.backends.cuda.matmul.allow_tf32
    except ImportError:
        info["torch"] = None
    if args.backend == "cupy":
        import cupy
        info["cupy"] = cupy.__version__
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["cupy_tf32"] = os.environ.get("CUPY_TF32", "0")
    return info


def _rate(s: dict[str, float]) -> str:
    return f"{s['median']:,.0f} ({s['min']:,.0f}–{s['max']:,.0f})"


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    has_torch = any("ratio" in r for r in res["rows"])
    dev = "GPU (CuPy vs torch CUDA)" if res["backend"] == "cupy" else "CPU (NumPy vs torch CPU)"
    lines = [f"# Training-step throughput: mlpframe vs PyTorch eager, {dev}", "",
             f"`{m['command']}` — {m['date']}", "",
             "Samples/s of one training step (forward, softmax cross-entropy from logits, backward, "
             f"SGD lr {S.LR} momentum {S.MOMENTUM}), float32; median (min–max) over "
             f"{res['rows'][0]['trials'] if res['rows'] else 0} alternating trials of N steps each (order flipped "
             f"every trial, {res['settle']} s pause before each so that the other framework's spinning threads "
             "are asleep). The ratio is of the medians; in brackets the min–max of the per-pair ratios.", ""]
    head = "| shape | layers | batch | N | mlpframe samples/s |"
    rule = "|---|---|---|---|---|"
    if has_torch:
        head += " torch eager samples/s | ratio mlpframe/torch (per-trial min–max) |"
        rule += "---|---|"
    head += " final loss mlpframe / torch | memory | other load |"
    rule += "---|---|---|"
    lines += [head, rule]
    for r in res["rows"]:
        sm = summary(r["sps"]["mlpframe"])
        cells = [r["shape"], f"{r['layers']} ({r['activation']})", str(r["batch"]), str(r["steps"]), _rate(sm)]
        if has_torch:
            if "ratio" in r:
                st = summary(r["sps"]["torch"])
                cells += [_rate(st), f"**{r['ratio']:.2f}x** ({min(r['ratio_trials']):.2f}–"
                                     f"{max(r['ratio_trials']):.2f})"]
            else:
                cells += ["–", "–"]
        cells.append(" / ".join(f"{v:.4f}" for v in r["loss"].values()))
        cells.append(_memory_cell(r))
        cells.append(_load_cell(r.get("other_load"), r.get("dropped_trials", 0)))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if has_torch:
        lines += ["Per-pair ratios, in trial order (a drift shows up here, not in the medians):", ""]
        lines += [f"- {r['shape']}: " + " ".join(f"{v:.2f}" for v in r["ratio_trials"])
                  for r in res["rows"] if "ratio_trials" in r]
        lines.append("")
    lines += _memory_notes(res)
    lines += ["*Other load*: CPU cores that other processes kept busy during the trials (median, max), from "
              "/proc/stat; trials that share the CPUs with other jobs measure the sharing, not the frameworks. "
              f"With `--wait-idle` each trial pair waits for an idle machine and a pair that saw more than "
              f"{MAX_OTHER_LOAD} cores of other load is run again.", ""]
    if res.get("trainer"):
        t = res["trainer"]
        lines += ["## Trainer on top of the raw step", "",
                  f"`Trainer.fit` on the {t['shape']} shape ({t['layers']}, batch {t['batch']}, random data, "
                  f"{t['steps_per_epoch']} steps per epoch, {t['epochs']} epoch(s), default logging: progress bar, "
                  "TensorBoard scalars every 50 steps, checkpoints and validation (500 samples) every epoch), "
                  f"against the raw step of the table; ms per step, median of {t['trials']} alternating trials.", "",
                  "| raw step | trainer loop | loop overhead (per-trial min–max) | whole fit incl. validation + "
                  "checkpoints |", "|---|---|---|---|",
                  f"| {t['raw_ms']:.3f} ms | {t['loop_ms']:.3f} ms | **{t['loop_overhead_pct']:+.1f} %** "
                  f"({min(t['loop_overhead_trials_pct']):+.1f}–{max(t['loop_overhead_trials_pct']):+.1f} %) | "
                  f"{t['fit_ms']:.3f} ms ({t['fit_overhead_pct']:+.1f} %) |", "",
                  f"Other load during these trials: {_load_cell(t.get('other_load'), t.get('dropped_trials', 0))} "
                  "cores.", "",
                  "The trainer loop is the Trainer's own synchronised epoch time: batch gathering, the step, "
                  "device-side loss/accuracy sums, a host sync and logging every 50 steps.", ""]
    if res.get("without_openblas_env"):
        o = res["without_openblas_env"]
        lines += ["## Same run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset", "",
                  f"OpenBLAS kernel then: {o['blas']}.", "",
                  "| shape | mlpframe samples/s | torch samples/s | ratio |", "|---|---|---|---|"]
        for r in o["rows"]:
            cells = [r["shape"], _rate(summary(r["sps"]["mlpframe"]))]
            cells += ([_rate(summary(r["sps"]["torch"])), f"{r['ratio']:.2f}x"] if "ratio" in r else ["–", "–"])
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Machine", ""]
    for k in ("platform", "cpu", "logical_cpus", "gpu", "cuda_runtime", "python", "mlpframe", "numpy", "blas",
              "openblas_env", "torch", "torch_blas", "threads", "threads_how", "torch_threads", "torch_tf32", "cupy",
              "cupy_tf32", "loadavg_start", "loadavg_end"):
        if k in m:
            lines.append(f"- {k}: {m[k]}")
    return "\n".join(lines) + "\n"


def _load_cell(load: list[float] | None, dropped: int = 0) -> str:
    load = [v for v in load or [] if v == v]  # NaN: not measurable here
    cell = f"{statistics.median(load):.2f} (max {max(load):.2f})" if load else "n/a"
    return cell + (f"; {dropped} busy pair(s) rerun" if dropped else "")


def _memory_cell(r: dict[str, Any]) -> str:
    if "device_mib" in r:
        return " / ".join(f"{fw} {v:.0f} MiB" for fw, v in r["device_mib"].items())
    cell = f"step alloc {r['step_alloc_mib']:.1f} MiB"
    rss = r.get("rss_mib")
    if rss:
        cell += "; RSS +" + " / ".join(f"{fw} {v:.0f} MiB" if v is not None else f"{fw} n/a" for fw, v in rss.items())
    return cell


def _memory_notes(res: dict[str, Any]) -> list[str]:
    if res["backend"] == "cupy":
        return ["Memory: CuPy's memory pool size after a few steps (it keeps freed blocks, so this is its peak) / "
                "torch.cuda.max_memory_allocated over a few steps.", ""]
    return ["Memory: *step alloc* is the peak NumPy allocation during one mlpframe step above what it held before "
            "(tracemalloc); *RSS +* is the peak resident set a fresh process gains from building the model, its "
            "data (4 batches) and training 10 steps, after importing the framework (VmHWM). "
            f"Peak RSS of this benchmark process: {res['maxrss_mib']:.0f} MiB.", ""]


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
    shapes = [s for s in S.SHAPES if s.name in args.shapes]
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
