"""``trainer.resume=auto``: the same command continues the run in its folder, or starts fresh and says so."""

from __future__ import annotations

import os
import signal

import pytest

from mlpframe.engine import load_checkpoint
from tests.cli.helpers import FAST

from .helpers import RESULT_KEYS, read_json
from .inprocess import run_main

COMMON = [*FAST, "scheduler=none", "logger=none", "trainer.resume=auto"]


@pytest.fixture(autouse=True)
def data_env(data_cache, monkeypatch):
    monkeypatch.setenv("MLPFRAME_DATA", str(data_cache))


def test_rerunning_a_finished_run_trains_nothing_more(tmp_path, capsys):
    args = ["train", *COMMON, f"hydra.run.dir={tmp_path}/run"]
    assert run_main(args, tmp_path) == 0
    first = capsys.readouterr().out
    assert "starting fresh" in first
    before = read_json(tmp_path / "run/metrics.json")
    assert run_main(args, tmp_path) == 0
    again = capsys.readouterr().out
    assert f"resuming from {tmp_path}/run/checkpoints/last.npz (epoch 2)" in again and "epoch   1/2" not in again
    after = read_json(tmp_path / "run/metrics.json")
    for key in RESULT_KEYS:
        assert before[key] == after[key], key


def test_the_run_dirs_own_checkpoint_comes_before_ckpt_path(tmp_path, capsys):
    assert run_main(["train", *COMMON, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}/a"], tmp_path) == 0
    source = tmp_path / "a/checkpoints/last.npz"
    capsys.readouterr()
    # nothing in b yet: continue from ckpt_path
    args = ["train", *COMMON, f"ckpt_path={source}", f"hydra.run.dir={tmp_path}/b"]
    assert run_main([*args, "trainer.max_epochs=2"], tmp_path) == 0
    assert f"resuming from {source} (epoch 1)" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "b/checkpoints/last.npz")["trainer"]["epoch"] == 2
    # the re-queued job: b's own checkpoint is further along than ckpt_path's
    assert run_main([*args, "trainer.max_epochs=3"], tmp_path) == 0
    assert f"resuming from {tmp_path}/b/checkpoints/last.npz (epoch 2)" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "b/checkpoints/last.npz")["trainer"]["epoch"] == 3


def test_a_signal_before_training_exits_at_once_and_leaves_no_run_dir(tmp_path, capsys, monkeypatch):
    from mlpframe.cli import build

    real = build.load_data

    def sigterm_while_loading(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises here
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "load_data", sigterm_while_loading)
    status = run_main(["train", *COMMON, f"hydra.run.dir={tmp_path}/run"], tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 128 + signal.SIGTERM
    assert err == ["interrupted before training started: no checkpoint was written, so there is nothing to resume"]
    assert not (tmp_path / "run").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers were put back


def test_a_signal_before_training_of_a_requeued_run_points_at_its_checkpoint(tmp_path, capsys, monkeypatch):
    from mlpframe.cli import build

    args = ["train", *COMMON, f"hydra.run.dir={tmp_path}/run"]
    assert run_main([*args, "trainer.max_epochs=1"], tmp_path) == 0
    capsys.readouterr()
    real = build.load_data

    def sigint_while_loading(*a, **kw):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **kw)

    monkeypatch.setattr(build, "load_data", sigint_while_loading)
    assert run_main(args, tmp_path) == 128 + signal.SIGINT
    (line,) = capsys.readouterr().err.strip().splitlines()
    last = tmp_path / "run/checkpoints/last.npz"
    assert line.startswith(f"interrupted before training started: checkpoint {last} (epoch 1); resume with: ")
    assert last.is_file() and read_json(tmp_path / "run/metrics.json")["status"] == "completed"
