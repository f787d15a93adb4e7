"""What a demanding user runs into (issue 14): each test names the item it keeps fixed."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpframe import get_backend, nn
from mlpframe.cli.common import hydra_quote
from mlpframe.cli.config import _safe_dirname
from tests.cli.helpers import FAST, assert_one_line_error

ROOT = Path(__file__).resolve().parents[2]


def cli(cwd: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mlpframe", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, **kw)


# 1: the resume line's folder parses back under Hydra's grammar, whatever the folder's name
@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s and "${" not in s))
def test_resume_hint_folder_round_trips_through_hydra_and_the_shell(folder):
    line = shlex.split(shlex.quote(f"hydra.run.dir={hydra_quote(folder)}"))[0]
    assert OverridesParser.create().parse_overrides([line])[0].value() == folder


# 4, 5, 16, 20: overrides that would do nothing, or harm, are one line and status 2, and leave nothing
@pytest.mark.parametrize("override, needle", [
    ("+trainer.max_epoch=1", "did you mean trainer.max_epochs"),
    ("+foo=1", "foo"),
    ("~seed", "~seed"),
    ("~optimizer", "~optimizer"),
    ("~data", "~data"),
    ("data.batch_size=1 model.norm=batch", "data.batch_size"),
])
def test_overrides_that_do_nothing_are_refused(tmp_path, override, needle):
    proc = cli(tmp_path, "train", *FAST, *override.split(), "hydra.run.dir=run")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "run").exists()


def test_unknown_key_on_mnist1d_is_an_error(tmp_path):
    assert_one_line_error(cli(tmp_path, "train", "data.n_samples=100", "hydra.run.dir=run"), "data.n_samples")
    assert not (tmp_path / "run").exists()


# 5
def test_evaluate_data_keys_without_a_data_set_are_one_line(tmp_path):
    for override in ("data.batch_size=7", "data.root=/tmp"):
        assert_one_line_error(cli(tmp_path, "evaluate", "ckpt_path=x.npz", override), "data=<name>")


# 6, 17, 11, 2, 3, 13: a run folder holds one run; resuming keeps both checkpoints and applies the new values
def test_resume_extend_and_reuse(tmp_path):
    first = cli(tmp_path, "train", *FAST, "scheduler=cosine", "hydra.run.dir=a")
    assert first.returncode == 0, first.stderr
    again = cli(tmp_path, "train", *FAST, "hydra.run.dir=a")
    assert_one_line_error(again, "trainer.resume=auto")
    too_few = cli(tmp_path, "train", *FAST, "trainer.max_epochs=1", "ckpt_path=a/checkpoints/last.npz",
                  "hydra.run.dir=c")
    assert too_few.returncode == 2 and "trainer.max_epochs" in too_few.stderr.strip().splitlines()[-1]
    longer = cli(tmp_path, "train", *FAST, "scheduler=cosine", "trainer.max_epochs=4", "optimizer.lr=0.02",
                 "ckpt_path=a/checkpoints/last.npz", "hydra.run.dir=b")
    assert longer.returncode == 0, longer.stderr
    out = longer.stdout + longer.stderr
    assert "optimizer.lr 0.05 -> 0.02" in out and "trainer.max_epochs 2 -> 4" in out
    # both checkpoints in the new folder, and evaluate takes its best
    assert (tmp_path / "b/checkpoints/best.npz").is_file() and (tmp_path / "b/checkpoints/last.npz").is_file()
    assert cli(tmp_path, "evaluate", "ckpt_path=b/checkpoints/best.npz").returncode == 0
    from mlpframe.engine import load_checkpoint
    lrs = [h["lr"] for h in load_checkpoint(tmp_path / "b/checkpoints/last.npz")["trainer"]["history"]]
    # epochs 3-4 follow a cosine over 4 epochs from lr 0.02, continuing at epoch 2
    assert lrs[2:] == pytest.approx([0.02 * (1 + np.cos(np.pi * e / 4)) / 2 for e in (2, 3)])
    assert json.loads((tmp_path / "b/metrics.json").read_text(), parse_constant=pytest.fail)


# 13
def test_metrics_json_is_strict_json_without_validation(tmp_path):
    proc = cli(tmp_path, "train", *FAST, "data.val_size=0", "hydra.run.dir=r")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "r/metrics.json").read_text(), parse_constant=pytest.fail)
    assert metrics["val/acc_best"] is None
    # 14: the summary says which weights were tested
    assert "last-epoch weights" in proc.stdout + proc.stderr


# 14
def test_early_stopping_without_validation_is_refused(tmp_path):
    proc = cli(tmp_path, "train", *FAST, "data.val_size=0", "trainer.early_stopping_patience=2", "hydra.run.dir=r")
    assert_one_line_error(proc, "trainer.early_stopping_patience")
    assert not (tmp_path / "r").exists()


# 15
def test_chdir_keeps_user_paths_relative_to_the_launch_folder(tmp_path):
    assert cli(tmp_path, "train", *FAST, "hydra.run.dir=a").returncode == 0
    proc = cli(tmp_path, "train", *FAST, "trainer.max_epochs=3", "hydra.job.chdir=true",
               "ckpt_path=a/checkpoints/last.npz", "hydra.run.dir=b")
    assert proc.returncode == 0, proc.stderr
    bad = cli(tmp_path, "train", *FAST, "hydra.job.chdir=true", "ckpt_path=nope.npz", "hydra.run.dir=c")
    assert bad.returncode == 2 and not (tmp_path / "c").exists()


# 16
def test_help_lists_only_real_choices_and_bare_command_is_a_usage_error(tmp_path):
    help_text = cli(tmp_path, "train", "--help").stdout
    assert "base_" not in help_text and "optimizer: adam, adamw, sgd" in help_text
    assert "optimizer:" not in cli(tmp_path, "evaluate", "--help").stdout
    assert "data:" not in cli(tmp_path, "gradcheck", "--help").stdout
    bare = cli(tmp_path)
    assert bare.returncode == 2 and bare.stdout == "" and "usage" in bare.stderr


# 18
@given(st.lists(st.tuples(st.from_regex(r"[a-z]{1,12}\.[a-z_]{1,15}", fullmatch=True),
                          st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True)), min_size=1, max_size=12))
def test_long_sweep_folder_names_keep_whole_values(items):
    text = ",".join(f"{k}={v}" for k, v in items)
    name = _safe_dirname(text)
    assert len(name) <= 120
    kept = name.rsplit("+", 1)[0].split(",") if name != text else text.split(",")
    assert all(item in text.split(",") for item in kept if item)


# 7
def test_cross_entropy_ignores_minus_100_and_poisons_out_of_range_labels():
    torch = pytest.importorskip("torch")
    be = get_backend("numpy")
    z = np.random.default_rng(0).standard_normal((5, 4))
    y = np.array([0, -100, 3, 1, -100])
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    loss = float(crit(be.asarray(z), be.asarray(y)))
    grad = be.to_numpy(crit.backward())
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(y), label_smoothing=0.1)
    ref.backward()
    assert loss == pytest.approx(ref.item()) and np.allclose(grad, zt.grad.numpy())
    for bad in (7, -1):
        assert np.isnan(float(crit(be.asarray(z), be.asarray(np.array([0, bad, 3, 1, 2])))))


# 8, 9
def test_report_bogus_metric_and_stale_plot(tmp_path):
    sweep = cli(tmp_path, "train", "-m", *FAST, "optimizer.lr=0.1,0.01", "hydra.sweep.dir=s")
    assert sweep.returncode == 0, sweep.stderr
    before = (tmp_path / "s/report.md").exists()
    assert_one_line_error(cli(tmp_path, "report", "s", "--metric", "bogus"), "bogus")
    assert (tmp_path / "s/report.md").exists() == before
    assert cli(tmp_path, "report", "s").returncode == 0 and (tmp_path / "s/report.png").is_file()
    assert cli(tmp_path, "report", "s", "--no-plot").returncode == 0
    assert not (tmp_path / "s/report.png").exists()


# 9
def test_report_prints_the_table_when_it_cannot_write(tmp_path, monkeypatch, capsys):
    from mlpframe.cli import report as report_cli

    sweep = cli(tmp_path, "train", "-m", *FAST, "optimizer.lr=0.1,0.01", "hydra.sweep.dir=s")
    assert sweep.returncode == 0, sweep.stderr

    def refuse(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(report_cli, "write_report", refuse)
    assert report_cli.run([str(tmp_path / "s")]) == 2
    out, err = capsys.readouterr()
    assert "optimizer.lr" in out and "could not be written" in err and len(err.strip().splitlines()) == 1


# 12, 19: files honour the umask; no progress bar when stderr is not a terminal
def test_files_honour_the_umask_and_no_bar_off_a_terminal(tmp_path):
    fast = [a for a in FAST if not a.startswith("trainer.progress_bar")]
    proc = cli(tmp_path, "train", *fast, "hydra.run.dir=r", preexec_fn=lambda: os.umask(0o022))
    assert proc.returncode == 0, proc.stderr
    assert "%|" not in proc.stderr
    files = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert any(p.suffix == ".npz" for p in files) and any(p.name == "metrics.json" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) & 0o044 == 0o044, p
