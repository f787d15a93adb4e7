"""Bad command lines: every one is refused with one line naming the problem, exit status 2.

Property-based: hypothesis draws a bad override of some kind (wrong type, out of range,
unknown key, empty ``hidden``, unknown option of a config group, unknown choice, junk
syntax) and mixes it with good ones. The CLI runs in-process (a subprocess per example
would cost seconds); a few subprocess runs check the same end to end.
"""

from __future__ import annotations

import math
import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlpframe.cli.common import config_dir, hydra_quote
from tests.cli.helpers import FAST, assert_one_line_error

from .inprocess import run_main

CONF = Path(config_dir())
OPTIONS = {g: {p.stem for p in (CONF / g).glob("*.yaml")} for g in
           ("data", "backend", "model", "optimizer", "scheduler", "trainer", "logger")}
SPECIAL = {"null", "none", "true", "false", "nan", "inf", "yes", "no", "on", "off"}

NAME = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(lambda s: s.lower() not in SPECIAL)
POSITIVE_INTS = ["data.batch_size", "trainer.max_epochs", "trainer.log_every_n_steps", "trainer.eval_batch_size",
                 "model.width", "model.depth", "trainer.early_stopping_patience", "logger.flush_secs"]
NON_NEGATIVE_INTS = ["seed", "scheduler.warmup_epochs", "trainer.histogram_every_n_epochs", "data.val_size"]
POSITIVE_FLOATS = ["optimizer.lr", "trainer.grad_clip"]
UNIT_FLOATS = ["model.dropout", "optimizer.momentum", "model.label_smoothing"]  # [0, 1)
NUMBERS = POSITIVE_INTS + NON_NEGATIVE_INTS + POSITIVE_FLOATS + UNIT_FLOATS + ["optimizer.weight_decay"]
CHOICES = {"model.activation": None, "model.norm": None, "trainer.resume": None, "optimized_metric": None,
           "dtype": None, "logger.name": None}


def fmt(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return repr(x) if math.isfinite(x) else ("inf" if x > 0 else "-inf")


@st.composite
def wrong_type(draw):
    key = draw(st.sampled_from(NUMBERS))
    value = draw(st.one_of(NAME, st.just("[1,2]"), st.just("{a:1}"), st.just("'12 monkeys'")))
    return f"{key}={value}", key


@st.composite
def out_of_range(draw):
    kind = draw(st.sampled_from(["pos_int", "nonneg_int", "pos_float", "unit_float", "weight_decay"]))
    if kind == "pos_int":
        key, value = draw(st.sampled_from(POSITIVE_INTS)), str(draw(st.integers(max_value=0)))
    elif kind == "nonneg_int":
        key, value = draw(st.sampled_from(NON_NEGATIVE_INTS)), str(draw(st.integers(max_value=-1)))
    elif kind == "pos_float":
        bad = st.one_of(st.floats(max_value=0.0), st.sampled_from([math.nan, math.inf]))
        key, value = draw(st.sampled_from(POSITIVE_FLOATS)), fmt(draw(bad))
    elif kind == "unit_float":
        bad = st.one_of(st.floats(min_value=1.0), st.floats(max_value=-1e-9), st.just(math.nan))
        key, value = draw(st.sampled_from(UNIT_FLOATS)), fmt(draw(bad))
    else:
        key, value = "optimizer.weight_decay", fmt(draw(st.one_of(st.floats(max_value=-1e-12), st.just(math.inf))))
    return f"{key}={value}", key


@st.composite
def unknown_key(draw):
    group = draw(st.sampled_from(["trainer.", "model.", "data.", "optimizer.", "scheduler.", "logger.", ""]))
    key = f"{group}zz_{draw(NAME)}"  # the prefix keeps it clear of every real key
    return f"{key}={draw(st.sampled_from(['1', 'x', '[1]']))}", key


@st.composite
def unknown_option(draw):
    group = draw(st.sampled_from(sorted(OPTIONS)))
    name = draw(NAME.filter(lambda n: n not in OPTIONS[group]))
    return f"{group}={name}", f"{group}/{name}"


@st.composite
def unknown_choice(draw):
    key = draw(st.sampled_from(sorted(CHOICES)))
    name = draw(NAME.filter(lambda n: n not in {"relu", "gelu", "elu", "never", "auto", "batch", "layer",
                                                 "float32", "float64", "tensorboard", "identity", "tanh",
                                                 "sigmoid", "silu", "leaky_relu"}))
    return f"{key}={name}", key


@st.composite
def junk(draw):
    # anything at all after `optimizer.lr=`, but not a number Hydra could read as a valid lr
    value = draw(st.text(alphabet=string.ascii_letters + string.digits + string.punctuation, min_size=1, max_size=8))
    assume(not re.fullmatch(r"[+]?[\d_.]*\d[\d_.]*([eE][-+]?\d+)?", value))
    return f"optimizer.lr={value}", ("optimizer.lr", "cannot parse the override")


EMPTY_HIDDEN = st.sampled_from([("model.hidden=[]", "model.hidden")])

GOOD = ["data=synthetic", "trainer.max_epochs=1", "logger=none", "model.hidden=[8]", "optimizer=adam",
        "scheduler=none", "data.n_samples=300", "seed=3"]


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bad=st.one_of(wrong_type(), out_of_range(), unknown_key(), unknown_option(), unknown_choice(), junk(),
                     EMPTY_HIDDEN),
       good=st.lists(st.sampled_from(GOOD), max_size=3, unique=True), data=st.data())
def test_every_bad_override_is_one_line_and_status_2(tmp_path_factory, capsys, bad, good, data):
    override, needles = bad
    needles = (needles,) if isinstance(needles, str) else needles
    key = override.split("=", 1)[0]
    good = [g for g in good if g.split("=", 1)[0] != key and not g.startswith(key.split(".")[0] + "=")]
    if "data=synthetic" not in good:  # only the synthetic data set takes n_samples; elsewhere it is refused
        good = [g for g in good if not g.startswith("data.n_samples=")]
    args = data.draw(st.permutations([*good, override]))
    cwd = tmp_path_factory.mktemp("bad")
    capsys.readouterr()
    status = run_main(["train", *args, "trainer.progress_bar=false", "hydra.run.dir=run"], cwd)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, (args, status, err[-500:], out[-500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    assert any(n in lines[0] for n in needles), (args, lines[0])
    assert "Traceback" not in out + err
    assert not (cwd / "run").exists(), "a refused run left its folder behind"


@pytest.mark.parametrize("override, needles", [
    ("optimizer.lr=${oops}", ("optimizer.lr", "oops")),  # composes fine, fails when resolved
    ("trainer.resume=sometimes", ("trainer.resume", "never, auto")),
    ("model.zz_size=3", ("model.zz_size",)),
    ("model.hidden=[]", ("model.hidden", "model.width and model.depth")),
    ("data.batch_size=100000", ("data.batch_size", "larger than the training set")),  # found after loading
    ("data.n_samples=100000000000000", ("out of memory", "smaller data set")),
    ("model.depth=100000000000", ("model.depth", "at most 1000")),
])
def test_bad_overrides_end_to_end(run_cli, tmp_path, override, needles):
    proc = run_cli("train", *FAST, override, "hydra.run.dir=run")
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run").exists()


def test_empty_hidden_with_width_and_depth_is_a_valid_mlp(tmp_path, capsys, data_cache, monkeypatch):
    """``hidden=[]`` is refused only when nothing else sets the hidden layers."""
    monkeypatch.setenv("MLPFRAME_DATA", str(data_cache))
    args = ["train", *FAST, "model.hidden=[]", "model.width=16", "model.depth=2", "trainer.max_epochs=1",
            "logger=none", "hydra.run.dir=run"]
    assert run_main(args, tmp_path) == 0, capsys.readouterr().err
    assert (tmp_path / "run/checkpoints/last.npz").is_file()


# --- issue 14: keys added with +, deletions with ~, resume-time overrides, paths with spaces and non-ASCII

@st.composite
def added_key(draw):
    """``+key=value`` for a key mlpframe does not have: a fresh name, or a typo of a real key."""
    typo = st.sampled_from([("+trainer.max_epoch=1", "did you mean trainer.max_epochs"),
                            ("+optimizer.learning_rate=0.1", "optimizer.learning_rate"), ("+foo=1", "foo")])
    group = draw(st.sampled_from(["trainer.", "model.", "data.", "optimizer.", "scheduler.", "logger.", ""]))
    fresh = f"{group}zz_{draw(NAME)}"
    plus = draw(st.sampled_from(["+", "++"]))
    value = draw(st.sampled_from(["1", "x", "[1]", "0.5"]))
    return draw(st.one_of(st.just((f"{plus}{fresh}={value}", fresh)), typo))


DELETABLE = sorted({*OPTIONS, "seed", "dtype", "optimized_metric", *NUMBERS, *CHOICES, "model.hidden"})


@st.composite
def deletion(draw):
    """``~group`` or ``~key`` (with or without its value) for one of mlpframe's own settings."""
    key = draw(st.sampled_from(DELETABLE))
    return draw(st.sampled_from([f"~{key}", f"~{key}="])), f"~{key}"


PATH_CHARS = string.ascii_letters + string.digits + " _-.,='ü中éß"
COMPONENT = st.text(alphabet=PATH_CHARS, min_size=1, max_size=8).filter(lambda s: s not in {".", ".."})
# a folder name with a space and a non-ASCII character (one level: a refused run with a nested
# hydra.run.dir still leaves the empty parent folders Hydra made)
PATH = COMPONENT.map(lambda p: f"{p} ü")


def _one_line_and_nothing_left(args, cwd, capsys, needles, before=()):
    capsys.readouterr()
    status = run_main(["train", *args], cwd)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, (args, status, err[-500:], out[-500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    assert all(n in lines[0] for n in needles), (args, lines[0])
    assert "Traceback" not in out + err
    left = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
    assert left == sorted(before), f"a refused run left {sorted(set(left) - set(before))} behind"


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bad=st.one_of(added_key(), deletion()), run_dir=PATH,
       good=st.lists(st.sampled_from(GOOD), max_size=2, unique=True), data=st.data())
def test_added_and_deleted_keys_are_one_line_and_status_2(tmp_path_factory, capsys, bad, run_dir, good, data):
    override, needle = bad
    key = override.lstrip("+~").split("=", 1)[0]
    good = [g for g in good if not g.startswith((key + "=", key.split(".")[0] + "="))]
    if "data=synthetic" not in good:
        good = [g for g in good if not g.startswith("data.n_samples=")]
    args = data.draw(st.permutations([*good, override]))
    cwd = tmp_path_factory.mktemp("plus_tilde")
    _one_line_and_nothing_left([*args, "trainer.progress_bar=false", f"hydra.run.dir={hydra_quote(run_dir)}"],
                               cwd, capsys, (needle,))


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(run_dir=PATH, where=PATH, kind=st.sampled_from(["ckpt_path", "data.root"]))
def test_missing_paths_with_spaces_and_non_ascii_are_one_line(tmp_path_factory, capsys, run_dir, where, kind):
    """A ``ckpt_path`` or ``data.root`` (absolute or relative) that names nothing: the line names the
    path as given, and neither the run folder nor the data folder is created."""
    cwd = tmp_path_factory.mktemp("paths")
    if kind == "ckpt_path":
        value, args, needles = f"{where}/last.npz", ["data=synthetic"], ("ckpt_path", f"{where}/last.npz")
    else:
        value, args, needles = where, ["data=mnist", "data.download=false"], (where, "download is off")
    _one_line_and_nothing_left([*args, f"{kind}={hydra_quote(value)}", "trainer.progress_bar=false",
                                f"hydra.run.dir={hydra_quote(run_dir)}"], cwd, capsys, needles)


RESUME_GOOD = ["data=synthetic", "data.n_samples=300", "model.hidden=[8]", "logger=none", "trainer.progress_bar=false"]
TRAINED_EPOCHS = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished run of ``TRAINED_EPOCHS`` epochs in a folder named with a space and non-ASCII."""
    cwd = tmp_path_factory.mktemp("trained")
    status = run_main(["train", *RESUME_GOOD, f"trainer.max_epochs={TRAINED_EPOCHS}", "hydra.run.dir='old run ü'"],
                      cwd)
    assert status == 0 and (cwd / "old run ü/checkpoints/last.npz").is_file()
    return cwd


@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(epochs=st.integers(1, TRAINED_EPOCHS - 1), how=st.sampled_from(["ckpt_path", "auto"]), run_dir=PATH,
       extra=st.lists(st.sampled_from(["optimizer.lr=0.02", "seed=7"]), max_size=2, unique=True))
def test_resume_below_the_checkpoints_epoch_is_one_line(trained, capsys, epochs, how, run_dir, extra):
    """``trainer.max_epochs`` below the checkpoint's epoch, by ``ckpt_path`` into a new folder or by
    ``trainer.resume=auto`` in the old one: refused, the new folder never made, the old one untouched."""
    before = sorted(str(p.relative_to(trained)) for p in trained.rglob("*"))
    if how == "ckpt_path":
        where = [f"ckpt_path={hydra_quote(str(trained / 'old run ü/checkpoints/last.npz'))}",
                 f"hydra.run.dir={hydra_quote(run_dir)}"]
    else:
        where = ["trainer.resume=auto", "hydra.run.dir='old run ü'"]
    _one_line_and_nothing_left([*RESUME_GOOD, *extra, f"trainer.max_epochs={epochs}", *where], trained, capsys,
                               ("trainer.max_epochs", f"trained {TRAINED_EPOCHS} epochs"), before)
