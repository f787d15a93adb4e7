"""Module bookkeeping: parameters, modes, state dicts, moving between backends."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn


def _mlp(**kw):
    return nn.MLP(4, [6, 5], 3, activation="relu", norm="batch", rng=np.random.default_rng(0), **kw)


def test_named_parameters_follow_pytorch_numbering():
    names = [n for n, _ in _mlp().named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias",
                     "4.weight", "4.bias", "6.weight", "6.bias"]
    assert [tuple(p.shape) for p in _mlp().parameters()][:2] == [(6, 4), (6,)]


def test_state_dict_holds_parameters_and_buffers_as_host_copies(backend_name):
    be = get_backend(backend_name)
    model = _mlp().to(be)
    state = model.state_dict()
    assert {"1.running_mean", "1.running_var", "4.running_var"} <= set(state)
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["0.weight"][:] = 0  # a copy: the model is untouched
    assert np.any(be.to_numpy(model[0].weight.data) != 0)


def test_load_state_dict_round_trip_and_it_copies(backend_name):
    be = get_backend(backend_name)
    a, b = _mlp().to(be), nn.MLP(4, [6, 5], 3, activation="relu", norm="batch", rng=1).to(be)
    state = a.state_dict()
    b.load_state_dict(state)
    for (name, v) in b.state_dict().items():
        np.testing.assert_array_equal(v, state[name])
    b[0].weight.data -= 1.0  # an in-place update must not reach the dict it was loaded from
    np.testing.assert_array_equal(a.state_dict()["0.weight"], state["0.weight"])
    assert b[0].weight.data.dtype == a[0].weight.data.dtype


def test_load_state_dict_names_the_mismatching_parameter():
    model = _mlp()
    state = nn.MLP(4, [7, 5], 3, activation="relu", norm="batch", rng=0).state_dict()
    with pytest.raises(ValueError, match=r"0\.weight has shape \(7, 4\).*\(6, 4\)"):
        model.load_state_dict(state)
    with pytest.raises(ValueError, match="missing keys.*1.running_mean"):
        model.load_state_dict({k: v for k, v in _mlp().state_dict().items() if k != "1.running_mean"})


def test_backward_accumulates_into_grad_until_zero_grad():
    rng = np.random.default_rng(0)
    layer = nn.Linear(3, 2, rng=rng, dtype="float64")
    x, g = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    layer(x)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="backward.*before forward"):
        nn.Linear(3, 2, rng=0).backward(np.zeros((1, 2), dtype=np.float32))


def test_train_and_eval_reach_every_submodule():
    model = nn.MLP(4, [6], 3, norm="batch", dropout=0.5, rng=0)
    model.eval()
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_dropout_is_identity_in_eval_and_scales_in_train():
    be = get_backend("numpy")
    be.seed(0)
    drop = nn.Dropout(0.25)
    x = np.ones((2000, 50), dtype=np.float32)
    y = drop(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(drop.backward(x), y)  # the same mask
    drop.eval()
    assert drop(x) is x


def test_same_seed_same_initial_weights_on_every_backend(backend_name):
    be = get_backend(backend_name)
    host = _mlp().state_dict()
    moved = _mlp().to(be).state_dict()
    assert host.keys() == moved.keys()
    for k in host:
        np.testing.assert_array_equal(host[k], moved[k])
    different = nn.MLP(4, [6, 5], 3, activation="relu", norm="batch", rng=np.random.default_rng(1)).state_dict()
    assert not np.array_equal(host["0.weight"], different["0.weight"])


def test_to_moves_parameters_gradients_and_buffers():
    model = _mlp()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    crit = nn.CrossEntropyLoss()
    crit(model(x), np.array([0, 1, 2, 0, 1]))
    model.backward(crit.backward())
    strict = get_backend("array_api_strict")
    model.to(strict)
    arrays = [p.data for p in model.parameters()] + [p.grad for p in model.parameters()]
    arrays += [b for _, b in model.named_buffers()]
    assert all(type(a).__module__.startswith("array_api_strict") for a in arrays)
    assert model.backend is strict and model[1].backend is strict


def test_repr_lists_layers():
    text = repr(_mlp())
    assert "(0): Linear(in_features=4, out_features=6, bias=True)" in text and "BatchNorm1d(6" in text
