"""Grid sweeps with Hydra's basic sweeper: readable run dirs, no leaks between jobs, bad jobs survived."""

from __future__ import annotations

import math

from tests.sweeps.conftest import FAST, job_pid, mlpframe, overrides, read_metrics, run_dirs

COMPARED = ("val/acc_best", "test/acc", "test/loss", "train/loss", "val/loss", "epochs")


def test_a_grid_of_four_jobs_gets_four_readable_run_dirs(grid_sweep):
    dirs = run_dirs(grid_sweep)
    assert [d.name.split("_", 1)[0] for d in dirs] == ["0", "1", "2", "3"]
    combos = set()
    for d in dirs:
        ov = dict(o.split("=", 1) for o in overrides(d))
        combos.add((ov["optimizer.lr"], ov["model.hidden"]))
        # the folder is named after the job's overrides, not only its number
        assert f"optimizer.lr={ov['optimizer.lr']}" in d.name and "model.hidden=" in d.name
        m = read_metrics(d)
        assert m["status"] == "completed" and 0.0 <= m["val/acc_best"] <= 1.0
        assert (d / "checkpoints").is_dir() and (d / "train.log").is_file()
        # one writer per run: exactly one event file in each run's tensorboard/
        assert len(list((d / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert combos == {(lr, h) for lr in ("0.1", "0.01") for h in ("[16]", "[32,16]")}
    # the basic launcher: all four in the sweep's own process
    assert {job_pid(d) for d in dirs} == {int((grid_sweep / "sweep_pid").read_text())}


def test_jobs_in_one_process_do_not_leak_state(grid_sweep, tmp_path, data_cache):
    """The last job ran after three others in the same process: it matches the same run on its own."""
    last = run_dirs(grid_sweep)[-1]
    alone = tmp_path / "alone"
    proc = mlpframe("train", *FAST, *overrides(last), f"hydra.run.dir={alone}", cwd=tmp_path, data_dir=data_cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    in_sweep, on_its_own = read_metrics(last), read_metrics(alone)
    for key in COMPARED:
        assert in_sweep[key] == on_its_own[key], key


def test_diverging_and_failing_jobs_do_not_stop_the_sweep(tmp_path, data_cache):
    sweep = tmp_path / "sweep"
    # lr=1e6 diverges; a batch larger than the training set is refused by the job
    proc = mlpframe("train", "-m", *FAST, "optimizer.lr=0.1,1e6", "data.batch_size=32,5000",
                    f"hydra.sweep.dir={sweep}", cwd=tmp_path, data_dir=data_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = {}
    for d in run_dirs(sweep):
        ov = dict(o.split("=", 1) for o in overrides(d))
        status[float(ov["optimizer.lr"]), int(ov["data.batch_size"])] = read_metrics(d)
    assert len(status) == 4
    assert status[0.1, 32]["status"] == "completed"
    assert status[1e6, 32]["status"] == "diverged"
    assert status[0.1, 5000]["status"] == status[1e6, 5000]["status"] == "failed"
    assert "batch_size" in status[0.1, 5000]["error"]

    rep = mlpframe("report", str(sweep), cwd=tmp_path, data_dir=data_cache)
    assert rep.returncode == 0, rep.stderr
    lines = rep.stdout.splitlines()
    assert lines[2].split()[:4] == ["1", "0", "0.1", "32"] and lines[2].split()[-1] == "completed"
    bad = {(float(ln.split()[2]), int(ln.split()[3])): ln.split()[-1] for ln in lines[3:6]}
    assert bad == {(1e6, 32): "diverged", (0.1, 5000): "failed", (1e6, 5000): "failed"}
    assert all(ln.split()[0] == "-" for ln in lines[3:6])  # not ranked
    assert "3 of 4 runs did not complete" in rep.stdout
    assert (sweep / "report.md").is_file() and (sweep / "report.csv").is_file() and (sweep / "report.png").is_file()
    assert math.isfinite(status[0.1, 32]["val/acc_best"])
