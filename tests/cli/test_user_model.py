"""A user's own model from a config, tried as a new user would: a package and a ``conf/`` folder in a fresh
folder outside the repository (``user_project/``), ``python -m mlpframe`` run from there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from mlpframe.engine import load_checkpoint, save_checkpoint
from mlpframe.gradcheck import check_module

from .helpers import assert_one_line_error, read_json

PROJECT = Path(__file__).parent / "user_project"
TARGET = "mynets.models.gain_net"
QUICK = ["data=synthetic", "data.n_samples=600", "trainer.max_epochs=2", "trainer.progress_bar=false"]
# appended to the copied package: an import leaves a file behind, so a test can tell that nothing was imported
IMPORT_MARKER = 'import os as _os\nopen(_os.path.join(_os.path.dirname(__file__), "..", "IMPORTED"), "a").close()\n'


def mlpframe(env, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlpframe", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory, cli_environ):
    """The user's project, trained once: ``run/`` is a ``model=gain_net`` run."""
    root = tmp_path_factory.mktemp("new-user") / "project"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns("__pycache__"))
    proc = mlpframe(cli_environ, root, "train", "--config-dir", "conf", "model=gain_net", "model.width=12", *QUICK,
                    "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr
    with open(root / "mynets" / "__init__.py", "a") as f:  # from now on, any import of mynets is seen
        f.write(IMPORT_MARKER)
    return root


def imported(root: Path) -> bool:
    return (root / "IMPORTED").exists()


def forget_imports(root: Path) -> None:
    (root / "IMPORTED").unlink(missing_ok=True)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_the_users_layer_passes_check_module_and_a_wrong_backward_fails_it(monkeypatch, backend):
    monkeypatch.syspath_prepend(str(PROJECT))
    from mynets.layers import Gain

    g = np.random.default_rng(0).normal(size=5)
    x = np.random.default_rng(1).normal(size=(4, 5))

    class ForgetsTheGain(Gain):
        def backward(self, grad_y):
            self.backward_params(grad_y)
            return grad_y  # grad_x without the factor g

    layer, wrong = Gain(5, dtype="float64"), ForgetsTheGain(5, dtype="float64")
    layer.gain.data, wrong.gain.data = g.copy(), g.copy()
    assert all(r.passed for r in check_module(layer, x, backend=backend))
    failed = [r.wrt for r in check_module(wrong, x, backend=backend) if not r.passed]
    assert failed == ["input"]


def test_a_target_model_trains_logs_and_checkpoints_like_a_built_in_one(project):
    run = project / "run"
    assert read_json(run / "metrics.json")["status"] == "completed"
    ckpt = load_checkpoint(run / "checkpoints" / "best.npz")
    assert ckpt["config"]["model"] == {"name": "target", "_target_": TARGET, "width": 12, "activation": "tanh"}
    # the user's layer is in the model: Linear, Gain, Tanh, Linear; its parameter trained away from one
    weights = ckpt["model"]
    assert weights["0.weight"].shape == (12, 2) and weights["1.gain"].shape == (12,)
    assert weights["0.weight"].dtype == np.float32 and not np.allclose(weights["1.gain"], 1.0)

    acc = event_accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    assert {"train/loss", "val/acc", "test/acc"} <= set(acc.Tags()["scalars"])
    assert len(acc.Scalars("val/acc")) == 2
    hp_acc = plugin_event_accumulator.EventAccumulator(str(run / "tensorboard"))
    hp_acc.Reload()
    content = hp_acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hp = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hp["model._target_"].string_value == TARGET
    assert hp["model.width"].number_value == 12 and hp["model.activation"].string_value == "tanh"


def test_a_sweep_over_the_target_models_own_key(project, cli_environ):
    proc = mlpframe(cli_environ, project, "train", "-m", "--config-dir", "conf", "model=gain_net",
                    "model.width=4,8", *QUICK, "hydra.sweep.dir=sweep")
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(p for p in (project / "sweep").iterdir() if p.is_dir())
    assert len(jobs) == 2 and "model.width=4" in jobs[0].name and "model.width=8" in jobs[1].name
    for job, width in zip(jobs, (4, 8)):
        assert read_json(job / "metrics.json")["status"] == "completed"
        ckpt = load_checkpoint(job / "checkpoints" / "last.npz")
        assert ckpt["config"]["model"]["width"] == width and ckpt["model"]["1.gain"].shape == (width,)
    forget_imports(project)


def test_evaluate_imports_the_target_only_once_the_user_names_it(project, cli_environ):
    best = "run/checkpoints/best.npz"
    proc = mlpframe(cli_environ, project, "evaluate", f"ckpt_path={best}")
    assert_one_line_error(proc, "checkpoint model._target_", TARGET, f"allow_targets=[{TARGET}]", "--config-dir")
    assert not imported(project)

    expected = read_json(project / "run" / "metrics.json")["test/acc"]
    for naming in ([f"allow_targets=[{TARGET}]"], ["--config-dir", "conf", "model=gain_net"]):
        proc = mlpframe(cli_environ, project, "evaluate", f"ckpt_path={best}", *naming)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.strip().splitlines()[-1])["test/acc"] == pytest.approx(expected, abs=1e-12)
        assert imported(project)
        forget_imports(project)


@pytest.mark.parametrize("naming", [[], ["allow_targets=[mynets.models.gain_net]"],
                                    ["--config-dir", "{project}/conf", "model=gain_net"]])
def test_a_checkpoint_edited_to_name_a_module_next_to_it_imports_nothing(project, cli_environ, tmp_path, naming):
    """``python -m`` puts the current folder on sys.path: ``evil.py`` beside the file would be importable."""
    ckpt = load_checkpoint(project / "run" / "checkpoints" / "best.npz")
    ckpt.state["config"]["model"]["_target_"] = "evil.build"
    save_checkpoint(tmp_path / "best.npz", ckpt.state)
    marker = tmp_path / "evil-ran"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef build(**kwargs):\n    pass\n")
    args = [a.format(project=project) for a in naming]
    proc = mlpframe(cli_environ, tmp_path, "evaluate", "ckpt_path=best.npz", *args)
    assert_one_line_error(proc, "the checkpoint names evil.build", "allow_targets=[evil.build]")
    assert not marker.exists() and not imported(project)


@pytest.mark.parametrize("target", ["mlpframe.atomic.write_atomic", "mlpframe.cli.train.shutil.rmtree"])
def test_a_checkpoint_may_name_only_mlpframes_own_layer_classes_unasked(project, cli_environ, tmp_path, target):
    ckpt = load_checkpoint(project / "run" / "checkpoints" / "best.npz")
    ckpt.state["config"]["model"] = {"name": "target", "_target_": target, "path": "victim", "text": "x"}
    save_checkpoint(tmp_path / "best.npz", ckpt.state)
    proc = mlpframe(cli_environ, tmp_path, "evaluate", "ckpt_path=best.npz")
    assert_one_line_error(proc, f"the checkpoint names {target}")
    assert not (tmp_path / "victim").exists()

    ckpt.state["config"]["model"] = {"name": "target", "_target_": "mlpframe.nn.Identity"}
    save_checkpoint(tmp_path / "best.npz", ckpt.state)
    proc = mlpframe(cli_environ, tmp_path, "evaluate", "ckpt_path=best.npz")
    # allowed and built: then the weights of gain_net do not fit an Identity
    assert_one_line_error(proc, "ckpt_path: the weights in")


@pytest.mark.parametrize("override, needles", [
    ("model._target_=nosuch.net", ["model._target_", "no module named 'nosuch'", "PYTHONPATH"]),
    ("model._target_=broken.net", ["model._target_", "importing broken failed", "RuntimeError: half-written"]),
    ("model._target_=mynets.models.nope", ["model._target_", "mynets.models has no attribute 'nope'"]),
    ("model._target_=mynets.models.NOT_CALLABLE", ["model._target_", "NOT_CALLABLE is not callable (a int)"]),
    ("model._target_=not-a-path", ["model._target_", "dotted path"]),
    ("model.widht=3", ["model:", "unexpected keyword argument 'widht'", "it takes: input_shape"]),
    ("+model.num_classes=3", ["model.num_classes", "mlpframe passes num_classes"]),
    ("model.activation=swish", ["error: model: mynets.models.gain_net: activation: unknown 'swish'"]),
    ("model._target_=mynets.models.not_a_model", ["model._target_", "returned a list, not an mlpframe.nn.Module"]),
])
def test_a_bad_target_is_one_line_and_leaves_no_run_folder(project, cli_environ, tmp_path, override, needles):
    (project / "broken.py").write_text("raise RuntimeError('half-written')\n")
    proc = mlpframe(cli_environ, project, "train", "--config-dir", "conf", "model=gain_net", override, *QUICK,
                    f"hydra.run.dir={tmp_path}/run")
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run").exists()


def test_built_in_models_still_refuse_unknown_keys(project, cli_environ, tmp_path):
    proc = mlpframe(cli_environ, project, "train", "model.widht=3", *QUICK, f"hydra.run.dir={tmp_path}/run")
    assert_one_line_error(proc, "model.widht", "MLPConfig")
    proc = mlpframe(cli_environ, project, "train", "model._target_=mynets.models.gain_net", *QUICK,
                    f"hydra.run.dir={tmp_path}/run")
    assert_one_line_error(proc, "model._target_", "MLPConfig")
    assert not (tmp_path / "run").exists()
