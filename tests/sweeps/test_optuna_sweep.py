"""``hparams_search=mnist1d_optuna``: a seeded TPE study in sqlite that resumes where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from mlpframe.sweep import study as S
from tests.conftest import cli_env
from tests.sweeps.conftest import FAST, mlpframe, overrides, read_metrics, run_dirs

optuna.logging.set_verbosity(optuna.logging.WARNING)

STUDY = "mnist1d_mlp"


def sweep_args(sweep, n_trials, *extra):
    return ["train", "hparams_search=mnist1d_optuna", *FAST, f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweep.dir={sweep}", *extra]


def load(sweep):
    return optuna.load_study(study_name=STUDY, storage=S.make_storage(f"sqlite:///{sweep}/optuna.db"))


def snapshot(sweep):
    """Every run dir's metrics.json as bytes (a rerun trial would rewrite one)."""
    return {d.name: (d / "metrics.json").read_bytes() for d in run_dirs(sweep) if (d / "metrics.json").is_file()}


def ov(run_dir):
    return dict(o.split("=", 1) for o in overrides(run_dir))


def test_optuna_sweep_of_three_trials_reports_the_best_and_resumes(tmp_path, data_cache):
    sweep = tmp_path / "sweep"
    proc = mlpframe(*sweep_args(sweep, 3), cwd=tmp_path, data_dir=data_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = run_dirs(sweep)
    study = load(sweep)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2] and all(t.state == TrialState.COMPLETE for t in trials)
    for t, d in zip(trials, dirs):
        assert d.name.startswith(f"{t.number}_")  # run dirs numbered by trial
        m = read_metrics(d)
        assert t.value == m["val/acc_best"] and m["status"] == "completed"
        o = ov(d)
        assert o["optimizer"] == t.params["optimizer"] and int(o["model.width"]) == t.params["model.width"]
        assert float(o["optimizer.lr"]) == pytest.approx(t.params["optimizer.lr"], rel=1e-3)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = max(trials, key=lambda t: t.value)
    assert results["best_value"] == best.value and results["best_params"] == best.params
    assert results["best_run_dir"] == str(dirs[best.number]) and results["n_trials"] == 3
    assert f"Best trial #{best.number} of 3" in proc.stdout + proc.stderr

    # the same command again: the study is complete, nothing runs, nothing is rewritten
    before = snapshot(sweep)
    again = mlpframe(*sweep_args(sweep, 3), cwd=tmp_path, data_dir=data_cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 of 3 trials done, 0 to run" in again.stdout + again.stderr
    assert snapshot(sweep) == before

    # a larger budget continues the study: one new trial, new parameters, old runs untouched
    more = mlpframe(*sweep_args(sweep, 4), cwd=tmp_path, data_dir=data_cache)
    assert more.returncode == 0, more.stderr[-3000:]
    trials = load(sweep).get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in trials)
    assert {k: v for k, v in snapshot(sweep).items() if k in before} == before
    assert len(run_dirs(sweep)) == 4 and run_dirs(sweep)[3].name.startswith("3_")
    assert all(trials[3].params != t.params for t in trials[:3])


def test_killed_sweep_resumes_without_repeating_finished_trials(tmp_path, data_cache):
    sweep = tmp_path / "sweep"
    # slower trials, so that the kill lands inside trial 1
    args = sweep_args(sweep, 3, "data.n_samples=1500", "trainer.max_epochs=3")
    proc = subprocess.Popen([sys.executable, "-m", "mlpframe", *args], cwd=tmp_path, env=cli_env(data_cache),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    # the job logs its first line once its data is loaded: from then on it is training
    while not any(p.stat().st_size for p in sweep.glob("1_*/train.log")):
        assert proc.poll() is None, "the sweep ended before its second trial started"
        assert time.monotonic() < deadline, "the second trial did not start"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # as a crash or an OOM kill would: no clean-up at all
    proc.wait(timeout=30)
    first = snapshot(sweep)
    assert list(first) == [run_dirs(sweep)[0].name]  # trial 0 finished, trial 1 did not
    killed = {t.number: t.state for t in load(sweep).get_trials()}
    assert killed[0] == TrialState.COMPLETE and killed[1] == TrialState.RUNNING

    again = mlpframe(*args, cwd=tmp_path, data_dir=data_cache)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = load(sweep).get_trials()
    interrupted = [t for t in trials if t.user_attrs.get(S.ATTR_INTERRUPTED)]
    counted = [t for t in trials if t not in interrupted]
    assert len(counted) == 3 and all(t.state == TrialState.COMPLETE for t in counted)
    assert [t.number for t in interrupted] == [1] and interrupted[0].state == TrialState.FAIL
    # the interrupted trial's parameters are run again, as trial 2; trial 3 is new
    assert [t.number for t in counted] == [0, 2, 3] and counted[1].params == interrupted[0].params
    # trial 0 was not run again: its folder is the only one numbered 0 and is unchanged
    assert [d.name for d in run_dirs(sweep) if d.name.startswith("0_")] == list(first)
    assert snapshot(sweep)[next(iter(first))] == first[next(iter(first))]
    for t in counted:
        (d,) = [d for d in run_dirs(sweep) if d.name.startswith(f"{t.number}_")]
        assert read_metrics(d)["val/acc_best"] == t.value
    assert "1 trial(s) (#1) were running when the previous sweep stopped" in again.stdout + again.stderr
    # the report lists the killed run as such
    rep = mlpframe("report", str(sweep), cwd=tmp_path, data_dir=data_cache)
    assert rep.returncode == 0 and "1 (no metrics)" in rep.stdout


def test_pruning_stops_trials_that_fall_below_the_median(tmp_path, data_cache):
    """lr=1e-7 cannot learn in an epoch: once a good trial completed, such trials are pruned."""
    sweep = tmp_path / "sweep"
    proc = mlpframe(*sweep_args(sweep, 4, "trainer.max_epochs=3", "hydra.sweeper.pruner=median",
                                "hydra.sweeper.pruner_kwargs.n_startup_trials=1",
                                "hydra.sweeper.pruner_kwargs.n_warmup_steps=0",
                                "optimizer.lr=choice(0.05,0.0000001)", "optimizer=sgd", "model.width=32",
                                "model.depth=1", "optimizer.weight_decay=0.0"), cwd=tmp_path, data_dir=data_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load(sweep).get_trials()
    dirs = {int(d.name.split("_", 1)[0]): d for d in run_dirs(sweep)}
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.params, t.state) for t in trials]
    for t in trials:
        m = read_metrics(dirs[t.number])
        assert sorted(t.intermediate_values) == list(range(1, m["epochs"] + 1))  # val/acc after every epoch
        if t.state == TrialState.PRUNED:
            assert t.params["optimizer.lr"] == 1e-7
            assert m["status"] == "pruned" and m["epochs"] < 3
            assert t.value == t.intermediate_values[m["epochs"]]
        else:
            assert t.state == TrialState.COMPLETE and m["status"] == "completed" and m["epochs"] == 3
    assert any(t.params["optimizer.lr"] == 0.05 and t.state == TrialState.COMPLETE for t in trials)
    rep = mlpframe("report", str(sweep), cwd=tmp_path, data_dir=data_cache)
    assert f"{pruned[0].number} (pruned)" in rep.stdout
