"""The benchmark's report: machine and versions, and the Markdown tables of results.md."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

import steps as S
from machine_load import MAX_OTHER_LOAD

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_pools() -> list[dict[str, Any]] | None:
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl.threadpool_info()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


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
             "are asleep). The ratio is of the medians; in brackets the min–max of the per-pair ratios.", "",
             f"Measured on: {where(m)}.", ""]
    head = "| shape | layers | batch | N | mlpframe samples/s |"
    rule = "|---|---|---|---|---|"
    if has_torch:
        head += " torch eager samples/s | ratio mlpframe/torch (per-trial min–max) |"
        rule += "---|---|"
    head += " GEMMs alone: samples/s (GFLOP/s) | step time in GEMMs: mlpframe"
    head += (" / torch" if has_torch else "") + " |"
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
        g = r.get("gemms")
        if g:
            cells += [f"{_rate(summary(g['sps']))} ({g['gflops']:.0f})",
                      " / ".join(f"{100 * v:.0f} %" for v in g["share"].values())]
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
    lines += ["*GEMMs alone*: the matrix products of one mlpframe step (forward, and the backward without the "
              "first layer's input gradient) with the layers' operand shapes and layouts, run back to back on "
              "NumPy's BLAS (experiments/throughput/gemms.py), timed in the same alternating trials. *Step time in "
              "GEMMs* is that time over the step's: 100 % is the limit of a GEMM-bound step on this BLAS, and the "
              "figure compares across machines where samples/s do not. torch's step runs its own kernels (MKL, "
              "oneDNN convolutions), so its share is against the same reference, not its own GEMMs.", ""]
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


def where(m: dict[str, Any]) -> str:
    """The CPU, and the BLAS and kernel of each framework: every figure above is from these."""
    blas = m.get("blas")
    if isinstance(blas, list) and blas:
        b = blas[0]
        numpy_blas = f"{b.get('internal_api')} {b.get('version')}, kernel {b.get('architecture')}, " \
                     f"{b.get('num_threads')} threads"
    else:
        numpy_blas = str(blas)
    env = ", ".join(f"{k}={v}" for k, v in (m.get("openblas_env") or {}).items() if v) or "no OPENBLAS_* variables"
    text = f"{m.get('cpu')} ({m.get('logical_cpus')} logical CPUs); NumPy {m.get('numpy')} on {numpy_blas} ({env})"
    if m.get("torch"):
        text += f"; torch {m['torch']} on {m.get('torch_blas')}, {m.get('torch_threads')} threads"
    if m.get("gpu"):
        text += f"; GPU {m['gpu']}"
    return text


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
