"""End to end on the library alone: a small MLP learns, and backends agree step for step."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn, optim


def two_spirals(n_per_class: int = 200, noise: float = 0.2, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1, size=n_per_class)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(scale=noise / (3 * np.pi), size=(2 * n_per_class, 2))
    y = np.repeat(np.arange(2), n_per_class)
    return x.astype(np.float32), y


def _train(make_opt, epochs: int, backend: str = "numpy", seed: int = 0, batch: int = 40):
    be = get_backend(backend)
    x, y = two_spirals()
    X, Y = be.asarray(x), be.asarray(y)
    model = nn.MLP(2, [64, 64], 2, activation="relu", rng=np.random.default_rng(seed)).to(be)
    crit = nn.CrossEntropyLoss()
    opt = make_opt(model.parameters())
    order_rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = order_rng.permutation(len(y))
        for i in range(0, len(y), batch):
            idx = be.asarray(order[i:i + batch])
            xb, yb = be.xp.take(X, idx, axis=0), be.xp.take(Y, idx, axis=0)
            model.zero_grad()
            crit(model(xb), yb)
            model.backward(crit.backward())
            opt.step()
    model.eval()
    pred = be.to_numpy(be.xp.argmax(model(X), axis=1))
    return model, float(np.mean(pred == y))


@pytest.mark.parametrize("name,make_opt,epochs", [
    ("sgd+momentum", lambda p: optim.SGD(p, lr=0.1, momentum=0.9), 150),
    ("adam", lambda p: optim.Adam(p, lr=0.01), 100),
])
def test_mlp_learns_two_spirals(name, make_opt, epochs):
    _, acc = _train(make_opt, epochs)
    assert acc >= 0.98, f"{name}: training accuracy {acc:.3f}"


def test_an_untrained_network_does_not_already_solve_it():
    _, acc = _train(lambda p: optim.SGD(p, lr=0.1), epochs=0)
    assert acc < 0.8


def test_numpy_and_array_api_strict_train_to_the_same_weights():
    make = lambda p: optim.Adam(p, lr=0.01, weight_decay=1e-4)  # noqa: E731
    a, _ = _train(make, epochs=3, backend="numpy")
    b, _ = _train(make, epochs=3, backend="array_api_strict")
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-5, atol=1e-6, err_msg=k)
