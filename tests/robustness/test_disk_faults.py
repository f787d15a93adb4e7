"""A checkpoint that cannot be written is reported, once per write, and training goes on unharmed."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from mlpframe.cli.train import resume_hint
from mlpframe.data import load_dataset
from mlpframe.engine import ModelCheckpoint, load_checkpoint
from mlpframe.engine import callbacks as callbacks_mod
from mlpframe.engine.checkpoint import save_checkpoint
from tests.cli.helpers import FAST
from tests.engine.test_trainer import comparable, make

from .helpers import RESULT_KEYS, assert_same_tree, read_json, run, train_cmd


def test_a_checkpoints_path_that_is_a_file_warns_per_write_and_the_run_completes(tmp_path, cli_environ):
    common = [*FAST, "trainer.max_epochs=3", "logger=none"]
    reference = run(train_cmd(*common, "hydra.run.dir=ref"), tmp_path, cli_environ)
    assert reference.returncode == 0, reference.stderr
    (tmp_path / "run").mkdir()
    (tmp_path / "run/checkpoints").write_text("not a folder")  # every mkdir and write under it fails
    proc = run(train_cmd(*common, "hydra.run.dir=run"), tmp_path, cli_environ)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    m, ref = read_json(tmp_path / "run/metrics.json"), read_json(tmp_path / "ref/metrics.json")
    assert m["status"] == "completed"
    for key in RESULT_KEYS:  # the failures changed nothing about the training
        assert m[key] == ref[key], key
    history = load_checkpoint(tmp_path / "ref/checkpoints/last.npz")["trainer"]["history"]
    attempts = len(history) + sum(1 for h in history if h["val/acc_best"] == h["val/acc"])  # last + best
    warnings = [ln for ln in proc.stdout.splitlines() if "could not write checkpoint" in ln]
    assert len(warnings) == attempts == m["checkpoint_failures"], (warnings, attempts)
    assert all("training continues" in w and "checkpoints" in w for w in warnings)
    assert f"{attempts} checkpoint write(s) failed" in proc.stdout
    assert (tmp_path / "run/checkpoints").read_text() == "not a folder"


@pytest.fixture(scope="module")
def spirals():
    return load_dataset("synthetic", n_samples=800, num_classes=3, noise=0.05, seed=0)


def test_a_full_disk_in_one_epoch_loses_nothing_and_the_next_write_works(spirals, tmp_path, monkeypatch, caplog):
    straight, loaders = make(spirals, max_epochs=3)
    expected = straight.fit(*loaders, num_classes=3)

    def flaky_save(path, state, **kwargs):
        if state["trainer"]["epoch"] == 2:
            raise OSError(28, "No space left on device", str(path))
        return save_checkpoint(path, state, **kwargs)

    monkeypatch.setattr(callbacks_mod, "save_checkpoint", flaky_save)
    ckpt = ModelCheckpoint(tmp_path)
    trainer, loaders = make(spirals, max_epochs=3, callbacks=[ckpt])
    with caplog.at_level(logging.WARNING, logger="mlpframe"):
        result = trainer.fit(*loaders, num_classes=3)
    improved_in_2 = expected.history[1]["val/acc"] > expected.history[0]["val/acc"]
    assert ckpt.failures == 1 + improved_in_2
    assert caplog.text.count("No space left on device") == ckpt.failures
    assert result.status == "completed"
    assert comparable(result.history) == comparable(expected.history)
    for key in ("val/acc_best", "test/acc", "test/loss", "global_step"):
        assert result.metrics[key] == expected.metrics[key], key
    # epoch 3's write went through and holds exactly the uninterrupted run's state
    last = load_checkpoint(tmp_path / "last.npz")
    assert last["trainer"]["epoch"] == 3
    assert_same_tree(last["model"], straight.model.state_dict())
    assert_same_tree(last["optimizer"], straight.optimizer.state_dict())


def test_the_interrupt_message_says_when_there_is_no_checkpoint(tmp_path):
    hc = SimpleNamespace(overrides=SimpleNamespace(task=["data=synthetic", "model.hidden=[8, 8]"]))
    assert "no checkpoint was written" in resume_hint(tmp_path, hc)
    save_checkpoint(tmp_path / "checkpoints/last.npz", {"trainer": {"epoch": 2, "step_in_epoch": 7}})
    hint = resume_hint(tmp_path, hc)
    assert f"checkpoint {tmp_path}/checkpoints/last.npz (epoch 2 + 7 steps of epoch 3)" in hint
    # the program name comes from sys.argv[0] ("python -m mlpframe train" when run as a user would)
    assert hint.endswith(f" data=synthetic 'model.hidden=[8, 8]' trainer.resume=auto hydra.run.dir={tmp_path}")
