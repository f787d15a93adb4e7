"""`python -m mlpframe evaluate`: rebuild the model from a checkpoint, print JSON."""

from __future__ import annotations

import json
import pickle

import pytest

from .helpers import FAST, assert_one_line_error, read_json


@pytest.fixture
def trained(run_cli, tmp_path):
    proc = run_cli("train", *FAST, "model.norm=batch", "logger=none", "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "run"


def test_evaluate_prints_json_matching_the_run(run_cli, trained, tmp_path):
    proc = run_cli("evaluate", f"ckpt_path={trained}/checkpoints/best.npz", "batch_size=1000")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    m = read_json(trained / "metrics.json")
    # the test metrics of the run are those of its best checkpoint
    assert result["test/acc"] == pytest.approx(m["test/acc"], abs=1e-12)
    assert result["test/loss"] == pytest.approx(m["test/loss"], rel=1e-6)
    assert result["data"] == "synthetic" and result["epoch"] == m["best_epoch"]
    # evaluation writes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_evaluate_on_another_data_set_that_does_not_fit_is_refused(run_cli, trained):
    proc = run_cli("evaluate", f"ckpt_path={trained}/checkpoints/best.npz", "data=mnist1d")
    assert_one_line_error(proc, "ckpt_path", "mnist1d")


def test_evaluate_with_data_override_that_fits(run_cli, trained):
    proc = run_cli("evaluate", f"ckpt_path={trained}/checkpoints/last.npz", "data=synthetic", "data.n_samples=300")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n_samples"] == 60 and 0.0 <= result["test/acc"] <= 1.0


@pytest.mark.parametrize("problem", ["missing", "absent", "garbage", "pickle"])
def test_bad_checkpoints_are_one_line_status_2(run_cli, tmp_path, problem):
    marker = tmp_path / "payload-ran"
    args = []
    if problem == "missing":
        args = ["ckpt_path=nowhere/best.npz"]
    elif problem == "garbage":
        (tmp_path / "bad.npz").write_bytes(b"\x00" * 100)
        args = ["ckpt_path=bad.npz"]
    elif problem == "pickle":
        class Payload:
            def __reduce__(self):
                return (open, (str(marker), "w"))
        (tmp_path / "evil.npz").write_bytes(pickle.dumps(Payload()))
        args = ["ckpt_path=evil.npz"]
    proc = run_cli("evaluate", *args)
    assert_one_line_error(proc, "ckpt_path")
    assert not marker.exists()
