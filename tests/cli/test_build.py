"""The wiring from a composed config to library objects (mlpframe.cli.build), in process.

Every value a user can override must reach the object it configures; each case below
overrides values away from their defaults and reads them back from the built objects.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn, optim
from mlpframe.cli import build
from mlpframe.cli.config import ConfigError, validate_train

from .test_config import make


def built(*overrides: str, input_shape=(40,), num_classes=10):
    c = validate_train(make(*overrides))
    model = build.build_model(c.model, input_shape, num_classes, seed=c.seed, dtype=c.dtype)
    opt = build.build_optimizer(c.optimizer, model.parameters())
    sched = build.build_scheduler(c.scheduler, opt, c.trainer.max_epochs)
    return c, model, build.build_criterion(c.model), opt, sched


def lrs(opt, sched, epochs):
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        sched.step()
    return out


def test_the_model_is_the_configured_mlp_initialised_from_the_run_seed():
    c, model, crit, _, _ = built("seed=7", "model.hidden=[12,9]", "model.activation=tanh", "model.norm=layer",
                                 "model.dropout=0.25", "dtype=float64")
    assert isinstance(model, nn.MLP) and isinstance(crit, nn.CrossEntropyLoss) and crit.from_logits
    same = nn.MLP(40, [12, 9], 10, activation="tanh", norm="layer", dropout=0.25, rng=np.random.default_rng(7),
                  dtype="float64")
    assert [type(m) for m in model.layers] == [type(m) for m in same.layers]
    a, b = model.state_dict(), same.state_dict()
    assert list(a) == list(b) and all(a[k].dtype == np.float64 and np.array_equal(a[k], b[k]) for k in a)
    other = built("seed=8", "model.hidden=[12,9]")[1].state_dict()
    assert not np.array_equal(other["0.weight"], built("seed=7", "model.hidden=[12,9]")[1].state_dict()["0.weight"])


def test_width_and_depth_replace_hidden():
    _, model, _, _, _ = built("model.width=16", "model.depth=3", "model.norm=null", "model.dropout=0")
    shapes = [v.shape for k, v in model.state_dict().items() if k.endswith("weight")]
    assert shapes == [(16, 40), (16, 16), (16, 16), (10, 16)]


def test_softmax_output_ends_in_softmax_and_takes_probabilities():
    _, model, crit, _, _ = built("model.output=softmax", "model.label_smoothing=0.1")
    assert isinstance(model.layers[-1], nn.Softmax)
    assert crit.from_logits is False and crit.label_smoothing == pytest.approx(0.1)
    x = np.random.default_rng(0).normal(size=(3, 40)).astype(np.float32)
    np.testing.assert_allclose(model(x).sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("overrides, cls, expected", [
    (["optimizer=sgd", "optimizer.lr=0.3", "optimizer.momentum=0.5", "optimizer.dampening=0.1",
      "optimizer.weight_decay=0.01", "optimizer.nesterov=false"], optim.SGD,
     dict(lr=0.3, momentum=0.5, dampening=0.1, weight_decay=0.01, nesterov=False)),
    (["optimizer=sgd", "optimizer.momentum=0.7", "optimizer.nesterov=true"], optim.SGD,
     dict(momentum=0.7, nesterov=True)),
    (["optimizer=adam", "optimizer.lr=0.02", "optimizer.betas=[0.8,0.95]", "optimizer.eps=1e-5",
      "optimizer.weight_decay=0.03"], optim.Adam, dict(lr=0.02, betas=(0.8, 0.95), eps=1e-5, weight_decay=0.03)),
    (["optimizer=adamw", "optimizer.lr=0.004", "optimizer.betas=[0.7,0.9]", "optimizer.eps=1e-4",
      "optimizer.weight_decay=0.2"], optim.AdamW, dict(lr=0.004, betas=(0.7, 0.9), eps=1e-4, weight_decay=0.2)),
])
def test_every_optimizer_value_reaches_the_optimizer(overrides, cls, expected):
    _, _, _, opt, _ = built(*overrides, "scheduler=none")
    assert type(opt) is cls
    group = opt.param_groups[0]
    for key, value in expected.items():
        assert group[key] == pytest.approx(value), key


@pytest.mark.parametrize("overrides, expected", [
    (["scheduler=none", "optimizer.lr=0.2"], [0.2] * 4),
    (["scheduler=step", "scheduler.step_size=2", "scheduler.gamma=0.1", "optimizer.lr=1.0"], [1, 1, 0.1, 0.1, 0.01]),
    (["scheduler=cosine", "optimizer.lr=1.0", "trainer.max_epochs=4", "scheduler.eta_min=0"],
     [1.0, 0.5 * (1 + np.cos(np.pi / 4)), 0.5, 0.5 * (1 + np.cos(3 * np.pi / 4))]),
    (["scheduler=cosine", "optimizer.lr=1.0", "trainer.max_epochs=6", "scheduler.warmup_epochs=2",
      "scheduler.warmup_start_factor=0.5", "scheduler.eta_min=0"],
     [0.5, 0.75, 1.0, 0.5 * (1 + np.cos(np.pi / 4)), 0.5, 0.5 * (1 + np.cos(3 * np.pi / 4))]),
])
def test_the_schedule_is_the_configured_one(overrides, expected):
    _, _, _, opt, sched = built(*overrides)
    assert lrs(opt, sched, len(expected)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_library_refusal_names_the_config_group():
    c = validate_train(make())
    with pytest.raises(ConfigError) as info:
        build.build_model(c.model, (40,), 0, seed=0)
    assert str(info.value).startswith("model")


def test_train_loaders_shuffle_and_drop_the_last_batch_evaluation_loaders_do_not():
    be = get_backend("numpy")
    X, y = np.arange(10, dtype=np.float32)[:, None], np.arange(10)
    train = build.make_loader((X, y), 4, be, train=True, seed=3)
    evaluation = build.make_loader((X, y), 4, be, train=False)
    seen = [be.to_numpy(yb).tolist() for _, yb in train]
    assert [len(b) for b in seen] == [4, 4] and sorted(sum(seen, [])) != sum(seen, [])
    assert [be.to_numpy(yb).tolist() for _, yb in evaluation] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
