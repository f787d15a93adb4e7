"""``mlpframe.sweep.report`` on hand-made sweep dirs: ranking, axes, bad runs, files, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import yaml

from mlpframe.cli.report import run as report_main
from mlpframe.sweep.report import NO_METRICS, ReportError, collect, write_report


def make_run(sweep, name, overrides, metrics=None, raw_metrics=None):
    d = sweep / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (d / "metrics.json").write_text(json.dumps(metrics))
    if raw_metrics is not None:
        (d / "metrics.json").write_text(raw_metrics)
    return d


def ok(val, test=None, status="completed"):
    return {"val/acc_best": val, "test/acc": val - 0.01 if test is None else test, "test/loss": 1.0,
            "epochs": 3, "wall_time_s": 2.5, "status": status}


@pytest.fixture
def sweep(tmp_path):
    s = tmp_path / "sweep"
    make_run(s, "0_lr=0.1", ["optimizer.lr=0.1", "model.hidden=[16]", "seed=1"], ok(0.70))
    make_run(s, "1_lr=1e6", ["optimizer.lr=1e6", "model.hidden=[16]", "seed=1"],
             {**ok(math.nan), "status": "diverged"})
    make_run(s, "2_lr=0.01", ["optimizer.lr=0.01", "model.hidden=[32,16]", "seed=1"], ok(0.90))
    make_run(s, "3_lr=0.05", ["optimizer.lr=0.05", "model.hidden=[32,16]", "seed=1"])  # killed: no metrics
    make_run(s, "4_lr=0.2", ["optimizer.lr=0.2", "model.hidden=[16]", "seed=1"], raw_metrics="{trunc")
    make_run(s, "10_lr=0.02", ["optimizer.lr=0.02", "+model.norm=batch", "model.hidden=[16]", "seed=1"],
             {"status": "failed", "error": "ConfigError: boom"})
    return s


def test_runs_are_ranked_by_the_objective_and_bad_runs_kept(sweep):
    report = collect(sweep)
    assert report.objective == "val/acc_best" and report.maximize
    assert [r.num for r in report.runs] == [2, 0, 1, 3, 4, 10]
    assert [r.status for r in report.runs] == ["completed", "completed", "diverged", NO_METRICS,
                                               "unreadable metrics.json", "failed"]
    # only what varies is a column; the "+" of an appended key is not part of its name
    assert report.axes == ["optimizer.lr", "model.hidden", "model.norm"]
    assert report.best().num == 2


def test_direction_and_objective_come_from_the_sweep_config(sweep):
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(
        {"optimized_metric": "test/loss", "hydra": {"sweeper": {"direction": "minimize"}}}))
    for run, loss in zip(sorted(sweep.glob("[02]_*")), (0.3, 0.2)):
        m = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**m, "test/loss": loss}))
    report = collect(sweep)
    assert report.objective == "test/loss" and not report.maximize
    assert [r.num for r in report.runs][:2] == [2, 0]
    assert [r.num for r in collect(sweep, objective="val/acc_best", maximize=False).runs][:2] == [0, 2]


def test_files_written_into_the_sweep_dir(sweep):
    paths = write_report(collect(sweep))
    assert set(paths) == {"md", "csv", "png"}
    md = paths["md"].read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert table[0].split(" | ")[:5] == ["| rank", "run", "optimizer.lr", "model.hidden", "model.norm"]
    assert table[1].startswith("| 1 | 2 | 0.01 | [32,16] |")
    assert "| diverged |" in table[3] and "| no metrics |" in table[4] and "| failed |" in table[6]
    assert "Best: run `2_lr=0.01`" in md
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert [r["run"] for r in rows] == ["2", "0", "1", "3", "4", "10"]
    assert float(rows[0]["val/acc_best"]) == 0.9 and rows[0]["rank"] == "1" and rows[2]["rank"] == ""
    assert rows[5]["error"] == "ConfigError: boom" and rows[0]["path"].endswith("2_lr=0.01")
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert not list(sweep.glob(".report.*"))  # no temp files left behind


def test_cli_prints_the_table_and_marks_bad_runs(sweep, capsys):
    assert report_main([str(sweep)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "run", "optimizer.lr", "model.hidden", "model.norm", "val/acc_best",
                                "test/acc", "epochs", "wall_time_s", "status"]
    assert lines[2].split()[:4] == ["1", "2", "0.01", "[32,16]"]
    assert "best: run 2_lr=0.01" in out
    assert "4 of 6 runs did not complete: 1 (diverged), 3 (no metrics), 4 (unreadable metrics.json), 10 (failed)" \
        in out


@pytest.mark.parametrize("make, needle", [
    (lambda p: p / "missing", "no such directory"),
    (lambda p: p, "no runs in it"),
])
def test_bad_sweep_dir_is_one_line_and_status_2(tmp_path, capsys, make, needle):
    (tmp_path / "stray.txt").write_text("x")
    assert report_main([str(make(tmp_path))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]
    assert not (tmp_path / "report.md").exists()
    with pytest.raises(ReportError):
        collect(make(tmp_path))


def test_python_m_mlpframe_report_exits_with_the_status(tmp_path, run_cli):
    proc = run_cli("report", str(tmp_path / "missing"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no such directory" in proc.stderr
    assert proc.stdout == ""


def test_bad_arguments_are_one_line_and_status_2(capsys):
    with pytest.raises(SystemExit) as exc:
        report_main([])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sweep_dir" in err[0]


def test_a_job_killed_before_hydra_wrote_its_overrides_is_listed(sweep):
    (sweep / "11_killed" / ".hydra").mkdir(parents=True)
    report = collect(sweep)
    assert report.runs[-1].name == "11_killed" and report.runs[-1].status == NO_METRICS
    assert report.runs[-1].overrides == {}


def test_a_single_run_dir_reports_its_overrides(tmp_path):
    run = make_run(tmp_path, "run", ["optimizer.lr=0.1"], ok(0.5))
    report = collect(run)
    assert len(report.runs) == 1 and report.axes == ["optimizer.lr"]


def test_log_spaced_hyperparameters_get_a_log_axis():
    from mlpframe.sweep.plot import log_axis

    assert log_axis("optimizer.lr", [0.01, 0.05, 0.2])  # a factor of 20 only, but lr is log-spaced
    assert log_axis("optimizer.weight_decay", [1e-4, 1e-3])
    assert not log_axis("model.width", [32, 64, 128])
    assert log_axis("model.width", [8, 1024])
    assert not log_axis("optimizer.lr", [0.0, 0.1])  # zero has no place on a log axis
