"""model=cnn/gru/lstm/logistic, data=digits, data.shuffle_positions and the presets, from the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mlpframe.cli.common import config_dir
from mlpframe.cli.config import validate_train
from mlpframe.engine import load_checkpoint

from .helpers import assert_one_line_error, read_json

QUICK = ["trainer.max_epochs=1", "trainer.progress_bar=false", "logger=none"]
PRESETS = ("mnist1d_logistic", "mnist1d_mlp", "mnist1d_cnn", "mnist1d_gru", "digits_mlp", "digits_cnn", "cifar10_cnn")


def make(*overrides: str):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", list(overrides))


# ----------------------------------------------------------------- composition
@pytest.mark.parametrize("overrides", [
    ["model=cnn"], ["model=cnn", "model.width=8", "model.depth=3", "model.pool=[2]", "model.norm=batch"],
    ["model=cnn", "model.kernel_size=[5,3]", "model.pool=[0,2]", "model.head=global_avg"],
    ["model=gru"], ["model=lstm", "model.bidirectional=true", "model.head=flatten"], ["model=logistic"],
    ["data=digits"], ["data=digits", "model=cnn"], ["data.shuffle_positions=true", "data.positions_seed=3"],
    *[[f"experiment={p}"] for p in PRESETS],
])
def test_new_options_compose_and_validate(overrides):
    validate_train(make(*overrides))


def test_presets_hold_the_paper_recipe():
    cnn, gru = validate_train(make("experiment=mnist1d_cnn")), validate_train(make("experiment=mnist1d_gru"))
    for s in (cnn, gru):
        assert s.optimizer.name == "adam" and s.optimizer.lr == 0.01 and s.data.batch_size == 100
        assert s.trainer.max_epochs * (3500 // 100) >= 8000 and s.seed == 42 and s.data.name == "mnist1d"
    assert list(cnn.model.channels) == [25, 25, 25] and list(cnn.model.kernel_size) == [5, 3, 3]
    assert list(cnn.model.stride) == [2] and list(cnn.model.padding) == [1] and cnn.model.activation == "relu"
    assert gru.model.name == "gru" and gru.model.hidden_size == 6 and gru.model.bidirectional
    assert gru.model.head == "flatten"


def test_the_layout_follows_the_model_unless_flatten_is_set():
    layouts = {m: validate_train(make(f"model={m}")) for m in ("mlp", "logistic", "cnn", "gru", "lstm")}
    assert {m: s.data.layout(s.model.layout) for m, s in layouts.items()} == {
        "mlp": "flat", "logistic": "flat", "cnn": "channels", "gru": "sequence", "lstm": "sequence"}
    s = validate_train(make("model=mlp", "data.flatten=false"))
    assert s.data.layout(s.model.layout) == "channels"
    s = validate_train(make("model=cnn", "data.flatten=true"))
    assert s.data.layout(s.model.layout) == "flat"


def test_cnn_width_and_depth_replace_channels():
    from mlpframe import nn

    s = validate_train(make("model=cnn", "model.width=8", "model.depth=3"))
    net = s.model.build((1, 40), 10, rng=__import__("numpy").random.default_rng(0), dtype="float32")
    convs = [m for m in net.layers if isinstance(m, nn.Conv1d)]
    assert [c.weight.data.shape[0] for c in convs] == [8, 8, 8]


# ------------------------------------------------------------------ end to end
@pytest.mark.parametrize("overrides, key, shape", [
    (["model=logistic"], "weight", (10, 40)),
    (["model=cnn", "model.channels=[4,4]", "model.stride=[2]"], "0.weight", (4, 1, 3)),  # Conv1d on (N, 1, 40)
    (["model=gru", "model.hidden_size=4", "model.head=flatten", "data.batch_size=50"], "0.weight_ih", (12, 1)),  # 40 steps of 1
    (["model=lstm", "model.hidden_size=4", "model.bidirectional=true", "model.head=flatten",
      "data.batch_size=250"], "2.weight", (10, 40 * 2 * 4)),  # every step of both directions
    (["model=mlp", "model.hidden=[16]", "data.flatten=false"], "1.0.weight", (16, 40)),  # Flatten first
    (["model=cnn", "model.channels=[4]", "data.shuffle_positions=true"], "0.weight", (4, 1, 3)),
])
def test_each_model_kind_trains_on_mnist1d(run_cli, tmp_path, overrides, key, shape):
    proc = run_cli("train", *QUICK, "trainer.max_epochs=2", *overrides, "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = read_json(tmp_path / "run/metrics.json")
    assert m["status"] == "completed" and m["test/acc"] > 0.15  # ten classes: chance is 0.1
    ckpt = load_checkpoint(tmp_path / "run/checkpoints/best.npz")
    assert ckpt["config"]["model"]["name"] == overrides[0].split("=")[1]
    assert ckpt["model"][key].shape == shape


@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "cifar10_cnn"])
def test_every_preset_runs(run_cli, tmp_path, preset):
    if preset.startswith("digits"):
        pytest.importorskip("sklearn")
    proc = run_cli("train", f"experiment={preset}", *QUICK, "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = read_json(tmp_path / "run/metrics.json")
    assert m["status"] == "completed" and m["epochs"] == 1 and m["test/acc"] > 0.1


def test_cifar10_cnn_preset_on_a_small_official_archive(run_cli, tmp_path):
    import functools
    import hashlib
    import http.server
    import threading

    from mlpframe.data.testing import random_cifar10, write_cifar10_archive

    served = tmp_path / "served"
    served.mkdir()
    archive = write_cifar10_archive(served / "cifar-10-python.tar.gz", *random_cifar10(300, 60, seed=2))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        proc = run_cli("train", "experiment=cifar10_cnn", *QUICK, "hydra.run.dir=run", "data.val_size=50",
                       f"data.root={tmp_path / 'data'}",
                       f"data.url=http://127.0.0.1:{httpd.server_address[1]}/cifar-10-python.tar.gz",
                       f"data.md5={hashlib.md5(archive.read_bytes()).hexdigest()}", "data.batch_size=50")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = read_json(tmp_path / "run/metrics.json")
    assert m["status"] == "completed" and m["global_step"] == 5  # 250 training images / 50
    state = load_checkpoint(tmp_path / "run/checkpoints/best.npz")["model"]
    assert state["0.weight"].shape == (32, 3, 3, 3)  # a 2-D convolution on (N, 3, 32, 32)


@pytest.mark.parametrize("model", [["model=cnn", "model.channels=[4,4]", "model.stride=[2]"],
                                   ["model=gru", "model.hidden_size=3", "model.bidirectional=true",
                                    "model.head=flatten"]])
def test_evaluate_rebuilds_a_cnn_and_a_gru(run_cli, tmp_path, model):
    proc = run_cli("train", *model, *QUICK, "hydra.run.dir=run", "data.shuffle_positions=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = read_json(tmp_path / "run/metrics.json")
    proc = run_cli("evaluate", f"ckpt_path={tmp_path}/run/checkpoints/best.npz")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # the same layout and the same permutation of positions: the run's own test accuracy, to the sample
    assert result["test/acc"] == pytest.approx(m["test/acc"], abs=1e-12)
    assert result["test/loss"] == pytest.approx(m["test/loss"], rel=1e-5)


def test_digits_cnn_sees_images(run_cli, tmp_path):
    pytest.importorskip("sklearn")
    proc = run_cli("train", "data=digits", "model=cnn", "model.channels=[4]", "model.pool=[2]", *QUICK,
                   "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_checkpoint(tmp_path / "run/checkpoints/best.npz")["model"]
    assert state["0.weight"].shape == (4, 1, 3, 3)  # Conv2d on (N, 1, 8, 8)
    assert state["4.weight"].shape == (10, 4 * 4 * 4)  # conv, relu, pool to 4x4, flatten, linear


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("overrides, needles", [
    (["model=cnn", "model.kernel_size=[3,5,7]"], ["model.kernel_size", "one value (every block) or 2"]),
    (["model=cnn", "model.channels=[0]"], ["model.channels[0]"]),
    (["model=cnn", "model.pool_type=median"], ["model.pool_type", "max"]),
    (["model=cnn", "model.head=middle"], ["model.head", "global_avg"]),
    (["model=cnn", "data.flatten=true"], ["model", "(C, L)", "data.flatten"]),
    (["model=cnn", "model.channels=[4,4,4,4]", "model.kernel_size=[5]", "model.padding=[0]", "model.stride=[2]"],
     ["model", "too small"]),
    (["model=gru", "model.hidden_size=0"], ["model.hidden_size", ">= 1"]),
    (["model=lstm", "model.head=mean"], ["model.head", "last"]),
    (["model=gru", "data.flatten=true"], ["model", "(T, F)"]),
    (["data.positions_seed=-1"], ["data.positions_seed"]),
    (["data=digits", "data.val_size=5000"], ["digits", "val_size"]),
])
def test_bad_overrides_are_one_line_exit_2(run_cli, tmp_path, overrides, needles):
    proc = run_cli("train", *overrides, *QUICK)
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("metrics.json"))


def test_digits_without_scikit_learn_is_one_line(run_cli, tmp_path):
    import mlpframe

    package_parent = Path(mlpframe.__file__).resolve().parent.parent
    fake = tmp_path / "no_sklearn" / "sklearn"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named sklearn')\n")
    proc = run_cli("train", "data=digits", *QUICK, env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{package_parent}"})
    assert_one_line_error(proc, "digits", 'pip install "mlpframe[digits]"')
