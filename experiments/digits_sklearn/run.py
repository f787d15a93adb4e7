"""mlpframe's digits presets against scikit-learn's MLPClassifier on the same split.

``experiment=digits_mlp`` and ``experiment=digits_cnn`` run through mlpframe's CLI;
``sklearn.neural_network.MLPClassifier`` (one hidden layer of 128 ReLU units, Adam,
its defaults otherwise, early stopping off) is fitted on the very arrays mlpframe
trains on (``load_dataset("digits", seed=42)``: 1,294 train / 143 val / 360 test,
standardised with the training statistics). Test accuracy and wall time (mlpframe:
the whole ``train`` command, including a validation pass per epoch and checkpoints;
scikit-learn: ``fit`` plus ``score``) go to ``results.md`` next to this file.

    python experiments/digits_sklearn/run.py [--seeds 42 43 44]
"""

from __future__ import annotations

import os

# one BLAS/OpenMP thread for every contender (set before NumPy starts its thread pools)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def mlpframe_run(preset: str, seed: int, workdir: Path) -> tuple[float, float]:
    run_dir = workdir / f"{preset}-{seed}"
    cmd = [sys.executable, "-m", "mlpframe", "train", f"experiment={preset}", f"seed={seed}", "logger=none",
           "trainer.progress_bar=false", f"hydra.run.dir={run_dir}"]
    subprocess.run(cmd, check=True, capture_output=True)
    m = json.loads((run_dir / "metrics.json").read_text())
    return 100 * m["test/acc"], m["wall_time_s"]


def sklearn_run(seed: int) -> tuple[float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from mlpframe.data import load_dataset

    ds = load_dataset("digits", seed=seed)
    started = time.perf_counter()
    clf = MLPClassifier(hidden_layer_sizes=(128,), random_state=seed, max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(*ds.train)
    acc = 100 * clf.score(*ds.test)
    return acc, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()

    rows: dict[str, list[tuple[float, float]]] = {"mlpframe MLP (`experiment=digits_mlp`)": [],
                                                    "mlpframe CNN (`experiment=digits_cnn`)": [],
                                                    "scikit-learn `MLPClassifier((128,))`": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            names = list(rows)
            rows[names[0]].append(mlpframe_run("digits_mlp", seed, Path(tmp)))
            rows[names[1]].append(mlpframe_run("digits_cnn", seed, Path(tmp)))
            rows[names[2]].append(sklearn_run(seed))
    lines = [
        "# Digits: mlpframe against scikit-learn",
        "",
        f"scikit-learn's 8x8 digits, the same split for all three (fixed 360-image test set; seeds "
        f"{', '.join(map(str, args.seeds))} draw the validation split and the initial weights). Test accuracy "
        "(mlpframe: of the best-validation weights), mean ± std over the seeds, and wall time per run on a shared "
        "2-core machine, one BLAS thread.",
        "",
        "| model | test acc | wall time per run |",
        "|---|---|---|",
    ]
    for name, results in rows.items():
        acc, wall = np.array(results).T
        lines.append(f"| {name} | {acc.mean():.1f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.1f} % | "
                     f"{wall.mean():.1f} s |")
    lines += ["", "Command: `python experiments/digits_sklearn/run.py`", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
