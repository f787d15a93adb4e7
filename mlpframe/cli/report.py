"""``python -m mlpframe report <sweep dir>``: rank a sweep's runs, write report.md/.csv/.png there."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from mlpframe.sweep.report import ReportError, collect, format_table, rows, write_report

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        print(f"error: {message} (see python -m mlpframe report --help)", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m mlpframe report",
        description="One row per run of a sweep (the overrides that vary, val/acc_best, test/acc, epochs, "
                    "wall time, status), ranked by the objective; writes report.md, report.csv and report.png "
                    "(objective vs each swept hyperparameter) into the sweep dir.",
        epilog="Example: python -m mlpframe report multirun/2024-05-01/12-00-00-000000",
    )
    p.add_argument("sweep_dir", help="a sweep dir (the folder that holds the runs' folders)")
    p.add_argument("--metric", default=None,
                   help="rank by this metrics.json key (default: the sweep's optimized_metric, else val/acc_best)")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--minimize", dest="maximize", action="store_false", default=None,
                           help="lower is better (default: the sweep's direction, else higher is better)")
    direction.add_argument("--maximize", dest="maximize", action="store_true", default=None,
                           help="higher is better")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="skip report.png")
    return p


def run(argv: Sequence[str] | None = None) -> int:
    """The command; returns its exit status (0, or 2 for a bad sweep dir)."""
    args = parser().parse_args(argv)
    try:
        report = collect(args.sweep_dir, objective=args.metric, maximize=args.maximize)
        paths = write_report(report, plot=args.plot)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: cannot write the report into {args.sweep_dir}: {exc.strerror or exc}", file=sys.stderr,
              flush=True)
        return EXIT_USAGE
    header, table = rows(report)
    print(format_table(header, table))
    best = report.best()
    if best is not None:
        params = " ".join(f"{k}={best.overrides.get(k, '')}" for k in report.axes)
        print(f"\nbest: run {best.name}  {report.objective}={best.value(report.objective):.4f}  {params}".rstrip())
    bad = [r for r in report.runs if r.status != "completed"]
    if bad:
        print(f"{len(bad)} of {len(report.runs)} runs did not complete: "
              + ", ".join(f"{r.num if r.num is not None else r.name} ({r.status})" for r in bad))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
