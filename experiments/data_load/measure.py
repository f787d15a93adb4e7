"""Load time and peak memory of CIFAR-10 at full size, on a generated stand-in.

Writes a stand-in ``cifar-10-python.tar.gz`` of the official shape (5 x 10000
training and 10000 test images, uint8 3072 each, Python 2 pickles) into a
temporary folder, then loads it with ``load_dataset("cifar10", download=False)``
in fresh processes:

* cold: verify the archive's md5, extract it, hash and unpickle the batches,
  split 45000/5000, normalise to float32 and write the cache;
* warm: read the float32 cache back (every run after the first);
* loader: warm load plus a NumPy ``DataLoader`` over the training split.

Each case runs ``--repeat`` times for wall time (median shown), then once under ``tracemalloc`` for the peak
of traced allocations (NumPy reports its buffers to tracemalloc). The peak is
compared with the size of the preprocessed float32 training set.

    python experiments/data_load/measure.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MiB = 2**20


def peak_rss() -> int:
    """This process's peak resident set in bytes (VmHWM, which exec resets; else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def write_standin(archive: str) -> None:
    from mlpframe.data.testing import random_cifar10, write_cifar10_archive

    write_cifar10_archive(archive, *random_cifar10(50_000, 10_000, seed=0), compresslevel=1)


def child(mode: str, root: str, md5: str, trace: bool) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    import tracemalloc

    import numpy as np

    from mlpframe.backend import get_backend
    from mlpframe.data import DataLoader, load_dataset

    rss_before = peak_rss()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    ds = load_dataset("cifar10", root=root, md5=md5, download=False, progress=False)
    if mode == "loader":
        loader = DataLoader(*ds.train, 128, get_backend("numpy"), shuffle=True, drop_last=True)
        n = sum(len(yb) for _, yb in loader)
        assert n == len(ds.train[1]) // 128 * 128
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    x_train = ds.train[0]
    print(json.dumps({
        "mode": mode, "seconds": seconds, "peak_traced": peak,
        "rss_before": rss_before, "rss_max": peak_rss(),
        "train_bytes": x_train.nbytes,
        "all_bytes": sum(x.nbytes for x, _ in (ds.train, ds.val, ds.test)),
        "shapes": [list(x.shape) for x, _ in (ds.train, ds.val, ds.test)],
        "dtype": str(x_train.dtype), "checksum": float(np.float64(x_train[::997].sum())),
    }))


def run_child(mode: str, root: Path, md5: str, trace: bool) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(root), md5] + (["--trace"] if trace else []),
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def reset(root: Path, keep_cache: bool) -> None:
    shutil.rmtree(root / "cifar-10-batches-py", ignore_errors=True)
    if not keep_cache:
        for cache in root.glob("cifar10-preprocessed-*.npz"):
            cache.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="folder for the stand-in (kept); default a temporary one")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (the median is shown)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "ROOT", "MD5"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "write":
            write_standin(args.child[1])
        else:
            child(*args.child, trace=args.trace)
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="mlpframe-cifar-standin-"))
    root = folder / "root"
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    try:
        t0 = time.perf_counter()
        if not archive.exists():
            # in its own process, so this one stays small for the measurements' children
            subprocess.run([sys.executable, __file__, "--child", "write", str(archive), "-"], check=True)
        md5 = hashlib.md5(archive.read_bytes()).hexdigest()
        print(f"stand-in archive: {archive.stat().st_size / MiB:.0f} MiB, written in {time.perf_counter() - t0:.1f} s",
              flush=True)

        results = {}
        for mode in ("cold", "warm", "loader"):
            times, rss = [], []
            for _ in range(args.repeat):
                reset(root, keep_cache=mode != "cold")
                r = run_child(mode, root, md5, trace=False)
                times.append(r["seconds"])
                rss.append(r["rss_max"])
            reset(root, keep_cache=mode != "cold")
            results[mode] = run_child(mode, root, md5, trace=True)
            results[mode]["seconds"] = sorted(times)[len(times) // 2]  # median
            results[mode]["rss_max_untraced"] = max(rss)
        train = results["warm"]["train_bytes"]
        all_bytes = results["warm"]["all_bytes"]
        print(f"\nsplits {results['warm']['shapes']} {results['warm']['dtype']}; "
              f"preprocessed training set {train / MiB:.0f} MiB, all splits {all_bytes / MiB:.0f} MiB")
        print("| case | wall time (median) | peak traced memory | peak / training set | max RSS (process) |")
        print("|---|---|---|---|---|")
        names = {"cold": "first load (verify, extract, unpickle, preprocess, cache)",
                 "warm": "later loads (float32 cache)",
                 "loader": "later load + NumPy DataLoader epoch"}
        for mode, r in results.items():
            print(f"| {names[mode]} | {r['seconds']:.2f} s | {r['peak_traced'] / MiB:.0f} MiB | "
                  f"{r['peak_traced'] / train:.2f}x | {r['rss_max_untraced'] / MiB:.0f} MiB |")
        print(f"\n(max RSS includes the interpreter and libraries: {results['warm']['rss_before'] / MiB:.0f} MiB "
              f"before loading; {os.cpu_count()} CPUs)")
        assert max(r["peak_traced"] for r in results.values()) <= 2 * train, "more than twice the training set"
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
