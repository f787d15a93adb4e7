"""1 process x 2 BLAS threads against 2 processes x 1 thread (distributed=mpi's step), alternating trials.

    python experiments/scaling/bench.py [--trials 7] [--model wide_mlp] [--batch 256]

Each trial starts fresh processes (``worker.py``); the three kinds run one after
another in every round, so a slow spell of a shared machine hits them alike.
Prints medians, the ratio of 2x1 to 1x2 samples/s, the share of a 2x1 step spent
in the gradient reduction, the time ``Allreduce`` of that buffer takes alone, the
CPU and the BLAS kernel.
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
    args = ap.parse_args()
    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
    worker = [sys.executable, str(HERE / "worker.py"), "--model", args.model, "--batch", str(args.batch),
              "--steps", str(args.steps)]
    kinds = {
        "1x2": (worker, 2),
        "2x1": ([mpiexec, "-n", "2", *worker, "--mpi"], 1),
        "allreduce alone": ([mpiexec, "-n", "2", *worker, "--comm-only"], 1),
    }
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    for trial in range(args.trials):
        for name, (cmd, threads) in kinds.items():
            results[name].append(run(cmd, threads))
        print(f"trial {trial + 1}/{args.trials}: " + ", ".join(
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
    print(f"| 2 processes x 1 thread | {two:,.0f} | {med('2x1', 'step_s') * 1e3:.1f} ms | "
          f"{med('2x1', 'reduce_s') * 1e3:.1f} ms ({100 * med('2x1', 'reduce_share'):.1f} % of a step) |")
    print(f"| Allreduce of the gradient alone (2 processes) | - | - | {med('allreduce alone', 'allreduce_s') * 1e3:.1f} ms |")
    print(f"2x1 / 1x2 samples/s: {two / one:.2f} (median of per-round ratios {statistics.median(ratios):.2f}, "
          f"range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
