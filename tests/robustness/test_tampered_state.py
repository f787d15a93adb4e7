"""A checkpoint whose fields were tampered with (hand-edited, another version, crafted) is refused
by ``Trainer.restore`` with an error the CLI prints as one line, or trains normally; it never
crashes the run halfway."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpframe.data import load_dataset
from tests.engine.test_trainer import make
from tests.engine.test_trainer_resume import InterruptAt

# a deliberate refusal: a ValueError whose message starts with the field it names ("trainer.epoch: ...",
# "state_dict: ...", "gamma: ..."), which mlpframe.cli.train prints as "ckpt_path: ... does not fit
# this run's model/optimizer (...)"; anything else (an AttributeError, "could not convert string to
# float") is a crash that happened to be caught
DELIBERATE = re.compile(r"[A-Za-z_][\w.]*: \S")
BAD_VALUES = [None, "x", -1, 2**70, 1e308, math.nan, True, [], {}, [1, "a"], {"a": 1}, np.zeros(3),
              np.array("s"), np.zeros((2, 2), np.int64), np.float32(1.5)]


def draw_tampered(data, source, paths, depth):
    """A deep copy of ``source`` with one leaf replaced by a bad value.

    The leaf is drawn group by group (its first ``depth`` keys), so every field is
    equally likely however many leaves it holds. Returns ``(state, path, value)``.
    """
    groups = sorted({p[:depth] for p in paths}, key=repr)
    group = data.draw(st.sampled_from(groups), label="field")
    path = data.draw(st.sampled_from([p for p in paths if p[:depth] == group]), label="path")
    value = data.draw(st.sampled_from(BAD_VALUES), label="value")
    state = copy.deepcopy(source)
    parent = state
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return state, path, value


@pytest.fixture(scope="module")
def tiny():
    return load_dataset("synthetic", n_samples=300, num_classes=3, noise=0.05, seed=0)


@pytest.fixture(scope="module")
def saved_state(tiny):
    """Epoch 2 of 3 interrupted mid-way, learning nothing (lr 1e-12): the best weights stay those of
    epoch 1, so a tampered ``best_model`` is still there at test time."""
    crit = InterruptAt(2 * 6 + 3)  # 6 steps per epoch
    trainer, loaders = make(tiny, max_epochs=3, lr=1e-12, criterion=crit)
    crit.trainer = trainer
    assert trainer.fit(*loaders).status == "interrupted" and trainer.state.step_in_epoch == 3
    return trainer.checkpoint_state()


def leaf_paths(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaf_paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaf_paths(v, (*path, i))
    if path:
        yield path


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_tampered_field_is_refused_or_harmless(tiny, saved_state, data):
    # every field of the top two levels equally likely, however many leaves it holds
    state, path, value = draw_tampered(data, saved_state, sorted(leaf_paths(saved_state), key=repr), depth=2)
    trainer, loaders = make(tiny, max_epochs=3, lr=1e-12)
    try:
        trainer.restore(state)
    except ValueError as exc:  # any other exception fails the test
        assert DELIBERATE.match(str(exc)), f"{path} = {value!r:.60}: an accidental refusal: {exc!r}"
        return
    with np.errstate(all="ignore"):
        result = trainer.fit(*loaders, num_classes=3)  # must not raise
    assert result.status in ("completed", "diverged")


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory, data_cache):
    import os

    from mlpframe.engine import load_checkpoint

    from .inprocess import run_main

    cwd = tmp_path_factory.mktemp("trained")
    os.environ["MLPFRAME_DATA"] = str(data_cache)  # read at load time; the runs below set it again
    args = ["train", "data=synthetic", "data.n_samples=300", "model.hidden=[8]", "trainer.max_epochs=1",
            "logger=none", "trainer.progress_bar=false", f"hydra.run.dir={cwd}/run"]
    assert run_main(args, cwd) == 0
    return load_checkpoint(cwd / "run/checkpoints/best.npz").state


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_evaluate_checks_a_tampered_checkpoint_config_like_a_command_line(trained_checkpoint, tmp_path_factory,
                                                                          capsys, monkeypatch, data_cache, data):
    from mlpframe.engine import save_checkpoint

    from .inprocess import run_main

    monkeypatch.setenv("MLPFRAME_DATA", str(data_cache))
    paths = sorted((p for p in leaf_paths(trained_checkpoint) if p[0] in ("config", "model", "trainer")), key=repr)
    state, path, value = draw_tampered(data, trained_checkpoint, paths, depth=3)
    cwd = tmp_path_factory.mktemp("tampered")
    save_checkpoint(cwd / "t.npz", state, allow_non_finite=True)
    capsys.readouterr()
    status = run_main(["evaluate", f"ckpt_path={cwd}/t.npz"], cwd)  # raises if anything else goes wrong
    out, err = capsys.readouterr()
    assert status in (0, 2), (path, value, status)
    if status == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
