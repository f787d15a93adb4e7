"""The objective against each swept hyperparameter, one panel per axis (matplotlib Agg, PNG bytes).

Plain data in (the swept values of each run as strings, the objective, the status),
so this module knows nothing of how a sweep folder is read.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

# hyperparameters people sweep on a log scale: always a log axis when their values are positive
LOG_SPACED = ("lr", "weight_decay", "eps", "eta_min", "label_smoothing")


def _numbers(values: list[str]) -> list[float] | None:
    """The values as floats when every one parses as a number, else None (a categorical axis)."""
    try:
        out = [float(v) for v in values]
    except ValueError:
        return None
    return out if all(math.isfinite(v) for v in out) else None


def log_axis(key: str, xs: Sequence[float]) -> bool:
    """Whether the values of ``key`` belong on a log axis: a log-spaced hyperparameter, or a range
    over more than a factor of 20."""
    if not xs or min(xs) <= 0:
        return False
    return key.rsplit(".", 1)[-1] in LOG_SPACED or max(xs) / min(xs) > 20


def plot_objective(axes: Mapping[str, Sequence[str]], ys: Sequence[float], statuses: Sequence[str],
                   best: int | None, objective: str) -> bytes:
    """A PNG: one scatter panel per swept key of ``axes`` (run values as strings); pruned runs hollow,
    runs without a finite objective as red crosses at the bottom, the run ``best`` as a star."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    axes_keys = list(axes)
    n = len(axes_keys)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows + 0.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    finite = [y for y in ys if math.isfinite(y)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = 0.08 * (hi - lo) if hi > lo else 0.05
    bottom = lo - 2 * pad
    for i, key in enumerate(axes_keys):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        raw = list(axes[key])
        nums = _numbers(raw)
        if nums is None:
            cats = list(dict.fromkeys(raw))
            xs = [float(cats.index(v)) for v in raw]
            ax.set_xticks(range(len(cats)), labels=[c or "(unset)" for c in cats],
                          rotation=30 if sum(map(len, cats)) > 24 else 0, fontsize=8)
            ax.set_xlim(-0.5, len(cats) - 0.5)
        else:
            xs = nums
            if log_axis(key, xs):
                ax.set_xscale("log")
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
            ax.scatter([xs[best]], [ys[best]], marker="*", s=160, color="tab:orange", zorder=3, label="best")
        ax.set_ylim(bottom - pad, hi + pad)
        ax.set_xlabel(key)
        ax.set_ylabel(objective)
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{objective} vs swept hyperparameters ({len(ys)} runs)", fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
