"""1 process x 2 BLAS threads against 2 processes x 1 thread (distributed=mpi's step), alternating trials.

    python experiments/scaling/bench.py [--trials 7] [--model wide_mlp|mnist1d_cnn] [--batch 256]
        [--wait-idle 1.0 --wait-max 120]

Each trial starts fresh processes (``worker.py``); the kinds run one after another
in every round, so a slow spell of a shared machine hits them alike. Prints
medians (1 process x 1 thread as the control), the ratio of 2x1 to 1x2 samples/s,
the share of a 2x1 step spent in the gradient reduction, the time ``Allreduce`` of
that buffer takes alone, the CPU and the BLAS kernel, and the machine's load
average before each round: on a shared machine ``--wait-idle L`` waits (at most
``--wait-max`` s) for the 1-minute load to fall below ``L`` before a round, and the
load it started at is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def run(cmd: list[str], threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_and_blas() -> str:
    cpu = platform.processor() or ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import numpy  # noqa: F401  (loads the BLAS that threadpoolctl reports)
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{p['internal_api']} {p.get('version')} ({p.get('architecture')})"
                         for p in threadpool_info() if p["user_api"] == "blas")
    except ImportError:
        blas = "unknown (threadpoolctl missing)"
    return f"CPU {cpu}, {os.cpu_count()} cores; BLAS {blas}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=7)
    ap.add_argument("--model", default="wide_mlp")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--wait-idle", type=float, default=None, metavar="LOAD",
                    help="before each round wait for the 1-minute load average to fall below LOAD")
    ap.add_argument("--wait-max", type=float, default=120.0, help="seconds to wait for that at most")
    args = ap.parse_args()
    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
    worker = [sys.executable, str(HERE / "worker.py"), "--model", args.model, "--batch", str(args.batch),
              "--steps", str(args.steps)]
    kinds = {
        "1x2": (worker, 2),
        # the control: one process, one thread (a 1x2 slower than this is BLAS threads waiting on a busy machine)
        "1x1": (worker, 1),
        "2x1": ([mpiexec, "-n", "2", *worker, "--mpi"], 1),
        "allreduce alone": ([mpiexec, "-n", "2", *worker, "--comm-only"], 1),
    }
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    loads: list[float] = []
    for trial in range(args.trials):
        loads.append(wait_for_load(args.wait_idle, args.wait_max))
        for name, (cmd, threads) in kinds.items():
            results[name].append(run(cmd, threads))
        print(f"trial {trial + 1}/{args.trials} (load {loads[-1]:.2f}): " + ", ".join(
            f"{k} {v[-1].get('samples_per_s', v[-1].get('allreduce_s', 0) * 1e3):.1f}" for k, v in results.items()),
            file=sys.stderr)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    one, two = med("1x2", "samples_per_s"), med("2x1", "samples_per_s")
    ratios = [b["samples_per_s"] / a["samples_per_s"] for a, b in zip(results["1x2"], results["2x1"])]
    print(cpu_and_blas())
    print(f"model {args.model} ({results['1x2'][0]['params']:,} parameters), global batch {args.batch}, "
          f"{args.steps} timed steps per trial, {args.trials} alternating trials, medians")
    print(f"| run | samples/s | step | gradient reduction |")
    print(f"|---|---|---|---|")
    print(f"| 1 process x 2 threads | {one:,.0f} | {med('1x2', 'step_s') * 1e3:.1f} ms | - |")
    print(f"| 1 process x 1 thread | {med('1x1', 'samples_per_s'):,.0f} | {med('1x1', 'step_s') * 1e3:.1f} ms | - |")
    print(f"| 2 processes x 1 thread | {two:,.0f} | {med('2x1', 'step_s') * 1e3:.1f} ms | "
          f"{med('2x1', 'reduce_s') * 1e3:.1f} ms ({100 * med('2x1', 'reduce_share'):.1f} % of a step) |")
    print(f"| Allreduce of the gradient alone (2 processes) | - | - | {med('allreduce alone', 'allreduce_s') * 1e3:.1f} ms |")
    print(f"2x1 / 1x2 samples/s: {two / one:.2f} (median of per-round ratios {statistics.median(ratios):.2f}, "
          f"range {min(ratios):.2f}-{max(ratios):.2f})")
    print(f"1-minute load average before the rounds: min {min(loads):.2f}, median {statistics.median(loads):.2f}, "
          f"max {max(loads):.2f} on {os.cpu_count()} cores" + (f" (waited for < {args.wait_idle} at most "
          f"{args.wait_max:.0f} s a round)" if args.wait_idle is not None else ""))


def wait_for_load(below: float | None, at_most: float) -> float:
    """The 1-minute load average, after waiting (up to ``at_most`` s) for it to fall below ``below``."""
    deadline = time.monotonic() + at_most
    while below is not None and os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(2.0)
    return os.getloadavg()[0]


if __name__ == "__main__":
    main()
