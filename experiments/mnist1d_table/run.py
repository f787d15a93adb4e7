"""The MNIST-1D paper's table (Greydanus 2020) reproduced with mlpframe's own CLI.

One Hydra multirun: logistic regression, MLP, CNN and GRU (the ``experiment=mnist1d_*``
presets, the paper's recipe) on MNIST-1D and on its position-shuffled version
(``data.shuffle_positions``), over three seeds, two jobs at a time (joblib launcher).
The runs land in one sweep folder (``tensorboard --logdir <sweep>`` shows them all);
then ``results.md``, ``results.json`` and ``results.png`` are written next to this file.

    python experiments/mnist1d_table/run.py                 # the whole table (~20-40 min on 2 cores)
    python experiments/mnist1d_table/run.py --summarize multirun/<date>/<time>   # tables from a finished sweep
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = ("logistic", "mlp", "cnn", "gru")  # table order
LABELS = {"logistic": "logistic", "mlp": "MLP", "cnn": "CNN", "gru": "GRU"}
RUN_ORDER = ("gru", "cnn", "mlp", "logistic")  # slowest first, so two workers finish together
# The paper's README table (test accuracy, %): regular and shuffled positions
PAPER = {"logistic": (32, 32), "mlp": (68, 68), "cnn": (94, 56), "gru": (91, 57)}


def sweep_command(sweep_dir: Path, seeds: list[int], jobs: int, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "mlpframe", "train", "-m",
        "experiment=" + ",".join(f"mnist1d_{m}" for m in RUN_ORDER),
        "data.shuffle_positions=false,true",
        "seed=" + ",".join(map(str, seeds)),
        "trainer.progress_bar=false",
        "hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
    ]


def read_runs(sweep_dir: Path) -> list[dict]:
    """One record per job folder: model, shuffled, seed, test acc, wall time (from its config and metrics)."""
    import yaml

    runs = []
    for cfg_path in sorted(sweep_dir.glob("*/.hydra/config.yaml")):
        job = cfg_path.parent.parent
        cfg = yaml.safe_load(cfg_path.read_text())
        metrics_path = job / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {"status": "missing"}
        runs.append({
            "job": job.name, "model": cfg["model"]["name"], "shuffled": bool(cfg["data"]["shuffle_positions"]),
            "seed": cfg["seed"], "status": metrics.get("status"), "test_acc": metrics.get("test/acc"),
            "val_acc_best": metrics.get("val/acc_best"), "wall_time_s": metrics.get("wall_time_s"),
            "epochs": metrics.get("epochs"),
        })
    return runs


def cell(runs: list[dict], model: str, shuffled: bool) -> dict:
    accs = [100 * r["test_acc"] for r in runs if r["model"] == model and r["shuffled"] == shuffled
            and r["status"] == "completed" and isinstance(r["test_acc"], float)]
    times = [r["wall_time_s"] for r in runs if r["model"] == model and r["shuffled"] == shuffled
             and r["status"] == "completed"]
    return {"n": len(accs), "mean": float(np.mean(accs)) if accs else math.nan,
            "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "wall_s": float(np.mean(times)) if times else math.nan}


def ordering_checks(table: dict) -> list[tuple[str, bool]]:
    reg = {m: table[m][False]["mean"] for m in MODELS}
    shf = {m: table[m][True]["mean"] for m in MODELS}
    return [
        ("CNN > GRU > MLP > logistic (regular positions)",
         reg["cnn"] > reg["gru"] > reg["mlp"] > reg["logistic"]),
        ("CNN and GRU below the MLP when shuffled", shf["cnn"] < shf["mlp"] and shf["gru"] < shf["mlp"]),
    ]


def write_results(sweep_dir: Path, runs: list[dict], out: Path, total_s: float | None, command: str) -> dict:
    table = {m: {s: cell(runs, m, s) for s in (False, True)} for m in MODELS}
    seeds = sorted({r["seed"] for r in runs})
    failed = [r for r in runs if r["status"] != "completed"]
    lines = [
        "# The MNIST-1D table, reproduced with mlpframe",
        "",
        f"Test accuracy of the best-validation weights, mean ± std over seeds {', '.join(map(str, seeds))} "
        "(4,000 training signals: 3,500 train / 500 validation; the standard 1,000 test signals). "
        "Each model is its `experiment=mnist1d_<model>` preset: the paper's models and recipe, Adam lr 1e-2, "
        "batch 100, 229 epochs of 35 steps (8,015 steps), no schedule, raw (unstandardised) signals; the CNN adds "
        "dropout 0.2 before its Linear layer, the MLP is two plain ReLU layers of 100 (the paper's has a residual "
        "second layer). *Shuffled*: `data.shuffle_positions=true`, one fixed "
        "permutation of the 40 positions for every split, model and seed. Paper: the `mnist1d` README's table.",
        "",
        "| model | test acc | paper | shuffled | paper (shuffled) | wall time per run |",
        "|---|---|---|---|---|---|",
    ]
    for m in MODELS:
        r, s = table[m][False], table[m][True]
        lines.append(f"| {LABELS[m]} | {r['mean']:.1f} ± {r['std']:.1f} % | {PAPER[m][0]} % | "
                     f"{s['mean']:.1f} ± {s['std']:.1f} % | {PAPER[m][1]} % | "
                     f"{(r['wall_s'] + s['wall_s']) / 2:.0f} s |")
    lines += ["", "Ordering, as in the paper:", ""]
    lines += [f"- {name}: {'holds' if ok else 'DOES NOT hold'}" for name, ok in ordering_checks(table)]
    lines += [
        "",
        f"Runs: {len(runs)} ({len(failed)} not completed). Wall time per run: the whole `train` command "
        "(data, 229 epochs with a validation pass each, test), two runs at a time on a shared 2-core machine "
        "(NumPy backend, one BLAS thread per run)" + (f"; the whole sweep took {total_s / 60:.1f} min." if total_s
                                                       else "."),
        "",
        f"Sweep folder: `{sweep_dir}` (`tensorboard --logdir {sweep_dir}` shows every run).",
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
        "![test accuracy per model](results.png)",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps({"table": {m: {str(k): v for k, v in t.items()}
                                                            for m, t in table.items()}, "runs": runs},
                                                 indent=1) + "\n")
    plot(table, out / "results.png")
    return table


def plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(MODELS))
    w = 0.38
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (shuffled, name, color) in enumerate(((False, "regular", "tab:blue"), (True, "shuffled", "tab:orange"))):
        means = [table[m][shuffled]["mean"] for m in MODELS]
        stds = [table[m][shuffled]["std"] for m in MODELS]
        pos = x + (i - 0.5) * w
        ax.bar(pos, means, w, yerr=stds, capsize=3, color=color, label=f"mlpframe, {name}")
        ax.scatter(pos, [PAPER[m][i] for m in MODELS], marker="D", s=28, facecolor="white", edgecolor="black",
                   zorder=3, label="paper" if i == 0 else None)
        for p, mval in zip(pos, means):
            ax.text(p, mval / 2, f"{mval:.1f}", ha="center", va="center", fontsize=8, color="white")
    ax.set_xticks(x, [LABELS[m] for m in MODELS])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("MNIST-1D: model families, regular and shuffled positions (3 seeds)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (joblib launcher)")
    parser.add_argument("--sweep-dir", type=Path, default=None, help="default: multirun/mnist1d_table/<time>")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.md/.json/.png go")
    parser.add_argument("--summarize", type=Path, default=None, help="only tabulate this finished sweep folder")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (e.g. trainer.max_epochs=5)")
    args = parser.parse_args()

    if args.summarize is not None:
        runs = read_runs(args.summarize)
        if not runs:
            sys.exit(f"error: no runs under {args.summarize}")
        write_results(args.summarize, runs, args.out, None, "(summarized from an earlier sweep)")
        print((args.out / "results.md").read_text())
        return

    sweep_dir = args.sweep_dir or Path("multirun") / "mnist1d_table" / time.strftime("%Y-%m-%d_%H-%M-%S")
    cmd = sweep_command(sweep_dir, args.seeds, args.jobs, args.overrides)
    shown = " ".join(["python", "-m", "mlpframe", *cmd[3:]])
    print(shown, flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # two jobs on two cores
    started = time.time()
    proc = subprocess.run(cmd, env=env)
    total = time.time() - started
    runs = read_runs(sweep_dir)
    if not runs:
        sys.exit(f"error: the sweep wrote no runs (exit status {proc.returncode})")
    write_results(sweep_dir, runs, args.out, total, shown)
    print((args.out / "results.md").read_text())
    sys.exit(0 if proc.returncode == 0 else proc.returncode)


if __name__ == "__main__":
    main()
