"""The DL1 preset end to end: `train experiment=dl1_cifar10` on an official-format archive from 127.0.0.1.

The preset's model ends in a Softmax layer and is trained with cross-entropy on probabilities
(``model.output=softmax``). Softmax followed by that loss has the gradient of the fused loss on
logits, so the same run with ``model.output=logits`` must reach the same weights; and the test
loss it reports must be the cross-entropy of the probabilities, recomputed here by hand from
the checkpoint. A criterion that took the probabilities for logits fails both.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe.data import load_dataset
from mlpframe.data.testing import random_cifar10, write_cifar10_archive
from mlpframe.engine import load_checkpoint
from tests.data.helpers import LocalServer, md5_of

from .helpers import read_json

N_TRAIN, N_TEST, VAL = 1000, 200, 200
# two trainings in subprocesses (about 15 s idle) start in the first test's fixture
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def served_cifar(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    archive = write_cifar10_archive(folder / "cifar-10-python.tar.gz", *random_cifar10(N_TRAIN, N_TEST, seed=4))
    server = LocalServer(folder)
    yield f"{server.url}/cifar-10-python.tar.gz", md5_of(archive), server
    server.stop()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, served_cifar, cli_environ):
    """The preset as shipped, and the same with ``model.output=logits``; each downloads into its own root."""
    import subprocess
    import sys

    url, md5, server = served_cifar
    out = {}
    for output in ("softmax", "logits"):
        cwd = tmp_path_factory.mktemp(output)
        args = ["experiment=dl1_cifar10", f"data.root={cwd / 'data'}", f"data.url={url}", f"data.md5={md5}",
                f"data.val_size={VAL}", "trainer.max_epochs=3", "trainer.progress_bar=false"]
        if output == "logits":
            args.append("model.output=logits")
        proc = subprocess.run([sys.executable, "-m", "mlpframe", "train", *args], cwd=cwd, env=cli_environ,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        (run_dir,) = [p.parent for p in (cwd / "outputs").glob("*/*/metrics.json")]
        out[output] = (run_dir, cwd / "data")
    assert server.hits == ["/cifar-10-python.tar.gz"] * 2
    return out


def mlp_forward(weights: dict[str, np.ndarray], prefix: str, x: np.ndarray) -> np.ndarray:
    """The homework MLP's logits by hand: Linear -> ELU -> Linear, in float64."""
    w1, b1 = weights[f"{prefix}0.weight"], weights[f"{prefix}0.bias"]
    w2, b2 = weights[f"{prefix}2.weight"], weights[f"{prefix}2.bias"]
    h = x.astype(np.float64) @ w1.T.astype(np.float64) + b1
    h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))  # ELU, alpha 1
    return h @ w2.T.astype(np.float64) + b2


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def test_the_preset_trains_the_homework_model_on_the_downloaded_archive(runs):
    run_dir, root = runs["softmax"]
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "completed" and m["epochs"] == 3
    best = load_checkpoint(run_dir / "checkpoints" / "best.npz")
    cfg = best["config"]
    assert cfg["seed"] == 42 and cfg["data"]["name"] == "cifar10" and cfg["data"]["batch_size"] == 128
    assert cfg["model"]["hidden"] == [128] and cfg["model"]["activation"] == "elu" and cfg["model"]["output"] == "softmax"
    assert cfg["optimizer"]["name"] == "sgd" and cfg["optimizer"]["lr"] == 0.1 and cfg["optimizer"]["momentum"] == 0.0
    # MLP 3072-128-10 then a Softmax layer (no parameters): Sequential(MLP, Softmax)
    shapes = {k: v.shape for k, v in best["model"].items()}
    assert shapes == {"0.0.weight": (128, 3072), "0.0.bias": (128,), "0.2.weight": (10, 128), "0.2.bias": (10,)}
    assert (root / "cifar-10-python.tar.gz").is_file()


def test_the_reported_test_loss_is_cross_entropy_on_the_softmax_output(runs, served_cifar):
    run_dir, root = runs["softmax"]
    m = read_json(run_dir / "metrics.json")
    ds = load_dataset("cifar10", root=root, md5=served_cifar[1], download=False, val_size=VAL, seed=42,
                      progress=False)
    best = load_checkpoint(run_dir / "checkpoints" / "best.npz")
    x, y = ds.test
    p = softmax(mlp_forward(best["model"], "0.", x))
    assert m["test/loss"] == pytest.approx(cross_entropy(p, y), rel=1e-4)
    assert m["test/acc"] == pytest.approx(float(np.mean(p.argmax(axis=1) == y)), abs=1.5 / len(y))
    # what a criterion that took the probabilities for logits would report: far from it
    assert abs(cross_entropy(softmax(p), y) - m["test/loss"]) > 0.1
    # the stand-in's classes differ in colour: three epochs of the homework setup learn them
    assert m["test/acc"] > 0.25, m  # chance: 0.1


def test_softmax_output_and_logits_output_train_the_same_weights(runs):
    """Softmax + cross-entropy on probabilities back-propagates (softmax(z) - t) / N, as the fused loss does."""
    soft = load_checkpoint(runs["softmax"][0] / "checkpoints" / "last.npz")["model"]
    logit = load_checkpoint(runs["logits"][0] / "checkpoints" / "last.npz")["model"]
    assert sorted(logit) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    for name in logit:
        np.testing.assert_allclose(soft[f"0.{name}"], logit[name], rtol=0, atol=2e-3, err_msg=name)
    m_soft = read_json(runs["softmax"][0] / "metrics.json")
    m_logit = read_json(runs["logits"][0] / "metrics.json")
    assert m_soft["test/loss"] == pytest.approx(m_logit["test/loss"], rel=1e-3)
