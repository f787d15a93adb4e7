"""A sweep's runs side by side: a ranked table, ``report.md``, ``report.csv`` and a plot.

A run is any folder under the sweep dir that holds ``.hydra/`` (Hydra writes it,
with the job's ``overrides.yaml``, for every job). Its numbers come from the
``metrics.json`` the train command writes at the end; a run without one (the job
was killed) is listed with status ``no metrics`` rather than dropped, and so are
failed, diverged and pruned runs. The table keeps only the overrides that differ
between runs: the sweep's axes.

No Hydra here: the folders are plain files, read with PyYAML and json.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlpframe.atomic import write_atomic

DEFAULT_OBJECTIVE = "val/acc_best"
METRIC_COLUMNS = ("val/acc_best", "test/acc", "epochs", "wall_time_s", "status")
NO_METRICS = "no metrics"


class ReportError(ValueError):
    """The sweep dir cannot be reported on (missing, or no runs in it): a one-line message."""


@dataclass
class Run:
    """One job of a sweep: its folder, its overrides (``key -> value`` as typed) and metrics."""

    path: Path
    name: str
    num: int | None
    overrides: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = NO_METRICS

    def value(self, key: str) -> float:
        """``metrics[key]`` as a float; NaN when missing or not a number."""
        v = self.metrics.get(key)
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan


@dataclass
class Report:
    sweep_dir: Path
    objective: str
    maximize: bool
    runs: list[Run]  # ranked: best first, runs without a finite objective last
    axes: list[str]  # the override keys whose values differ between runs

    def best(self) -> Run | None:
        return self.runs[0] if self.runs and math.isfinite(self.runs[0].value(self.objective)) else None


# -------------------------------------------------------------------- reading
def _override_key(item: str) -> tuple[str, str] | None:
    if "=" not in item:
        return None
    key, value = item.split("=", 1)
    return key.lstrip("+~"), value


def read_run(run_dir: Path, sweep_dir: Path) -> Run:
    """One run folder; never raises for a broken ``metrics.json`` (it shows as the run's status)."""
    try:
        items = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        items = []
    overrides = dict(kv for kv in map(_override_key, map(str, items)) if kv is not None)
    name = run_dir.relative_to(sweep_dir).as_posix() if run_dir != sweep_dir else run_dir.name
    m = re.match(r"(\d+)(?:_|$)", run_dir.name)
    run = Run(path=run_dir, name=name, num=int(m.group(1)) if m else None, overrides=overrides)
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
        except (OSError, ValueError):
            run.status = "unreadable metrics.json"
            return run
        if isinstance(metrics, dict):
            run.metrics = metrics
            run.status = str(metrics.get("status", "completed"))
        else:
            run.status = "unreadable metrics.json"
    return run


def find_run_dirs(sweep_dir: Path) -> list[Path]:
    """Folders holding a ``.hydra/`` folder (the sweep dir itself when it is one run).

    Not only those with ``.hydra/overrides.yaml``: a job killed while Hydra was
    still writing its configs has none, and is a run to list all the same.
    """
    return sorted({p.parent for p in sweep_dir.rglob(".hydra") if p.is_dir()})


def sweep_settings(sweep_dir: Path) -> tuple[str, bool]:
    """The sweep's objective and direction from ``multirun.yaml`` (defaults: ``val/acc_best``, maximize)."""
    objective, maximize = DEFAULT_OBJECTIVE, True
    try:
        cfg = yaml.safe_load((sweep_dir / "multirun.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return objective, maximize
    if isinstance(cfg.get("optimized_metric"), str):
        objective = cfg["optimized_metric"]
    direction = (((cfg.get("hydra") or {}).get("sweeper") or {}).get("direction"))
    if isinstance(direction, str):
        maximize = direction != "minimize"
    return objective, maximize


def _natural(run: Run) -> tuple:
    return (run.num if run.num is not None else math.inf, run.name)


def collect(sweep_dir: str | os.PathLike, objective: str | None = None, maximize: bool | None = None) -> Report:
    """Read every run under ``sweep_dir`` and rank them by ``objective``.

    Raises:
        ReportError: the folder does not exist or holds no runs.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: no such directory (pass a sweep dir such as multirun/<date>/<time>)")
    dirs = find_run_dirs(root)
    if not dirs:
        raise ReportError(f"{root}: no runs in it (no */.hydra/ folder); is this a sweep dir?")
    default_obj, default_max = sweep_settings(root)
    objective = objective or default_obj
    maximize = default_max if maximize is None else maximize
    runs = sorted((read_run(d, root) for d in dirs), key=_natural)
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.overrides if k not in keys]
    axes = [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]
    if not axes and len(runs) == 1:
        axes = keys

    def rank_key(run: Run) -> tuple:
        v = run.value(objective)
        if not math.isfinite(v):
            return (1, 0.0, _natural(run))
        return (0, -v if maximize else v, _natural(run))

    return Report(sweep_dir=root, objective=objective, maximize=maximize, runs=sorted(runs, key=rank_key), axes=axes)


# -------------------------------------------------------------------- writing
def _fmt(key: str, run: Run) -> str:
    if key == "status":
        return run.status
    v = run.value(key)
    if not math.isfinite(v):
        return "-"
    if key == "epochs":
        return str(int(v))
    if key == "wall_time_s":
        return f"{v:.1f}"
    return f"{v:.4f}"


def rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table: rank, run, the sweep's axes, metrics, status."""
    metric_cols = list(dict.fromkeys([report.objective, *METRIC_COLUMNS]))
    header = ["rank", "run", *report.axes, *metric_cols]
    table = []
    for i, run in enumerate(report.runs, start=1):
        rank = str(i) if math.isfinite(run.value(report.objective)) else "-"
        num = str(run.num) if run.num is not None else run.name
        table.append([rank, num, *(run.overrides.get(k, "") for k in report.axes),
                      *(_fmt(c, run) for c in metric_cols)])
    return header, table


def format_table(header: Sequence[str], table: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in table)])


def format_markdown(report: Report, header: Sequence[str], table: Sequence[Sequence[str]]) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    direction = "higher" if report.maximize else "lower"
    out = [f"# Sweep report: {report.sweep_dir}", "",
           f"{len(report.runs)} runs ranked by `{report.objective}` ({direction} is better).", ""]
    best = report.best()
    if best is not None:
        params = ", ".join(f"`{k}={best.overrides.get(k, '')}`" for k in report.axes) or "(no swept values)"
        out += [f"Best: run `{best.name}` with {params}: {report.objective} = "
                f"{best.value(report.objective):.4f}", ""]
    out.append("| " + " | ".join(esc(h) for h in header) + " |")
    out.append("|" + "|".join("---" for _ in header) + "|")
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in table]
    return "\n".join(out) + "\n"


def format_csv(report: Report) -> str:
    """Full precision, every metric a run has, and its folder (for scripts)."""
    metric_keys = list(dict.fromkeys([report.objective, *METRIC_COLUMNS[:-1]]))
    extra = sorted({k for r in report.runs for k in r.metrics} - set(metric_keys) - {"status"})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "run", *report.axes, *metric_keys, "status", *extra, "path"])
    for i, run in enumerate(report.runs, start=1):
        finite = math.isfinite(run.value(report.objective))
        w.writerow([i if finite else "", run.num if run.num is not None else run.name,
                    *(run.overrides.get(k, "") for k in report.axes),
                    *(run.metrics.get(k, "") for k in metric_keys), run.status,
                    *(run.metrics.get(k, "") for k in extra), str(run.path)])
    return buf.getvalue()


def write_report(report: Report, plot: bool = True) -> dict[str, Path]:
    """``report.md``, ``report.csv`` and (with ``plot``) ``report.png`` in the sweep dir."""
    header, table = rows(report)
    paths = {"md": report.sweep_dir / "report.md", "csv": report.sweep_dir / "report.csv"}
    write_atomic(paths["md"], format_markdown(report, header, table))
    write_atomic(paths["csv"], format_csv(report))
    if plot and report.axes:
        from mlpframe.sweep.plot import plot_objective

        best = report.best()
        png = plot_objective({k: [run.overrides.get(k, "") for run in report.runs] for k in report.axes},
                             [run.value(report.objective) for run in report.runs],
                             [run.status for run in report.runs],
                             None if best is None else report.runs.index(best), report.objective)
        paths["png"] = report.sweep_dir / "report.png"
        write_atomic(paths["png"], png)
    return paths
