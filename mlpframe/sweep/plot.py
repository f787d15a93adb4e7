"""The objective against each swept hyperparameter, one panel per axis (matplotlib Agg, PNG bytes)."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlpframe.report import Report


def _numbers(values: list[str]) -> list[float] | None:
    """The values as floats when every one parses as a number, else None (a categorical axis)."""
    try:
        out = [float(v) for v in values]
    except ValueError:
        return None
    return out if all(math.isfinite(v) for v in out) else None


def plot_objective(report: Report) -> bytes:
    """A PNG: one scatter panel per axis; pruned runs hollow, runs without a finite objective as red
    crosses at the bottom, the best run as a star."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    axes_keys = report.axes
    n = len(axes_keys)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows + 0.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    objective = report.objective
    ys = [run.value(objective) for run in report.runs]
    finite = [y for y in ys if math.isfinite(y)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = 0.08 * (hi - lo) if hi > lo else 0.05
    bottom = lo - 2 * pad
    best = report.best()
    for i, key in enumerate(axes_keys):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        raw = [run.overrides.get(key, "") for run in report.runs]
        nums = _numbers(raw)
        if nums is None:
            cats = list(dict.fromkeys(raw))
            xs = [float(cats.index(v)) for v in raw]
            ax.set_xticks(range(len(cats)), labels=[c or "(unset)" for c in cats],
                          rotation=30 if sum(map(len, cats)) > 24 else 0, fontsize=8)
            ax.set_xlim(-0.5, len(cats) - 0.5)
        else:
            xs = nums
            positive = [x for x in xs if x > 0]
            if len(positive) == len(xs) and max(xs) / min(xs) > 20:
                ax.set_xscale("log")
        statuses = [run.status for run in report.runs]
        ok = [(x, y) for x, y, st in zip(xs, ys, statuses) if math.isfinite(y) and st != "pruned"]
        pruned = [(x, y) for x, y, st in zip(xs, ys, statuses) if math.isfinite(y) and st == "pruned"]
        bad = [x for x, y in zip(xs, ys) if not math.isfinite(y)]
        if ok:
            ax.scatter([p[0] for p in ok], [p[1] for p in ok], s=28, color="tab:blue", alpha=0.8,
                       label="runs")
        if pruned:  # stopped early: their best is from fewer epochs
            ax.scatter([p[0] for p in pruned], [p[1] for p in pruned], s=28, facecolors="none",
                       edgecolors="tab:gray", label="pruned")
        if bad:
            ax.scatter(bad, [bottom] * len(bad), marker="x", s=40, color="tab:red",
                       label="diverged / failed / no metrics")
        if best is not None:
            j = report.runs.index(best)
            ax.scatter([xs[j]], [ys[j]], marker="*", s=160, color="tab:orange", zorder=3, label="best")
        ax.set_ylim(bottom - pad, hi + pad)
        ax.set_xlabel(key)
        ax.set_ylabel(objective)
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{objective} vs swept hyperparameters ({len(report.runs)} runs)", fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
