"""Layers and losses against PyTorch's modules of the same name, in float64 (skipped without torch)."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def _compare(module, torch_fn, x, be, params=(), rtol=1e-10):
    """Forward and backward of ``module`` vs ``torch_fn(x, *params)`` for a random upstream gradient."""
    module.to(be)
    y = module(be.asarray(x))
    tx = _t(x)
    tparams = [_t(be.to_numpy(p.data)) for p in params]
    ty = torch_fn(tx, *tparams)
    np.testing.assert_allclose(be.to_numpy(y), ty.detach().numpy(), rtol=rtol, atol=1e-12)
    g = np.random.default_rng(9).normal(size=ty.shape)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(be.to_numpy(module.backward(be.asarray(g))), tx.grad.numpy(), rtol=rtol, atol=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(be.to_numpy(p.grad), tp.grad.numpy(), rtol=rtol, atol=1e-12)


ACTIVATIONS = [
    (nn.ReLU, F.relu), (nn.LeakyReLU, lambda x: F.leaky_relu(x, 0.01)), (nn.ELU, F.elu),
    (nn.GELU, lambda x: F.gelu(x, approximate="tanh")), (nn.SiLU, F.silu), (nn.Tanh, torch.tanh),
    (nn.Sigmoid, torch.sigmoid), (nn.Softmax, lambda x: F.softmax(x, dim=-1)),
]


@pytest.mark.parametrize("cls,fn", ACTIVATIONS, ids=[c.__name__ for c, _ in ACTIVATIONS])
def test_activation_matches_torch(cls, fn, backend_name):
    x = np.random.default_rng(0).normal(size=(6, 5)) * 4
    _compare(cls(), fn, x, get_backend(backend_name))


def test_linear_matches_torch(backend_name):
    rng = np.random.default_rng(1)
    layer = nn.Linear(7, 4, rng=rng, dtype="float64")
    _compare(layer, F.linear, rng.normal(size=(5, 7)), get_backend(backend_name), params=[layer.weight, layer.bias])


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_matches_torch_including_running_statistics(training, backend_name):
    be = get_backend(backend_name)
    rng = np.random.default_rng(2)
    bn = nn.BatchNorm1d(4, momentum=0.3, dtype="float64")
    bn.weight.data, bn.bias.data = rng.normal(size=4), rng.normal(size=4)
    bn.running_mean, bn.running_var = rng.normal(size=4), rng.uniform(0.5, 2, size=4)
    ref = torch.nn.BatchNorm1d(4, momentum=0.3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(bn.weight.data))
        ref.bias.copy_(torch.tensor(bn.bias.data))
        ref.running_mean.copy_(torch.tensor(bn.running_mean))
        ref.running_var.copy_(torch.tensor(bn.running_var))
    bn.train(training)
    ref.train(training)
    x = rng.normal(size=(6, 4)) * 3 + 1

    bn.to(be)
    y = bn(be.asarray(x))
    tx = _t(x)
    ty = ref(tx)
    np.testing.assert_allclose(be.to_numpy(y), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.normal(size=(6, 4))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(be.to_numpy(bn.backward(be.asarray(g))), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(be.to_numpy(bn.weight.grad), ref.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(be.to_numpy(bn.bias.grad), ref.bias.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(be.to_numpy(bn.running_mean), ref.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(be.to_numpy(bn.running_var), ref.running_var.numpy(), rtol=1e-12)


def test_layernorm_matches_torch(backend_name):
    rng = np.random.default_rng(3)
    ln = nn.LayerNorm(5, dtype="float64")
    ln.weight.data, ln.bias.data = rng.normal(size=5), rng.normal(size=5)
    _compare(ln, lambda x, w, b: F.layer_norm(x, (5,), w, b, eps=1e-5), rng.normal(size=(4, 5)) * 2,
             get_backend(backend_name), params=[ln.weight, ln.bias], rtol=1e-9)


CE_CASES = [
    ("labels", 0.0, False), ("labels, smoothing 0.2", 0.2, False),
    ("probabilities", 0.0, True), ("probabilities, smoothing 0.1", 0.1, True),
]


@pytest.mark.parametrize("label,smoothing,soft", CE_CASES, ids=[c[0] for c in CE_CASES])
def test_cross_entropy_matches_torch(label, smoothing, soft, backend_name):
    be = get_backend(backend_name)
    rng = np.random.default_rng(4)
    z = rng.normal(size=(6, 5)) * 3
    if soft:
        t = rng.dirichlet(np.ones(5), size=6)
        tt = torch.tensor(t)
    else:
        t = rng.integers(0, 5, size=6)
        tt = torch.tensor(t)
    crit = nn.CrossEntropyLoss(label_smoothing=smoothing)
    loss = crit(be.asarray(z), be.asarray(t))
    tz = _t(z)
    tloss = F.cross_entropy(tz, tt, label_smoothing=smoothing)
    tloss.backward()
    assert float(be.to_numpy(loss)) == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(be.to_numpy(crit.backward()), tz.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_cross_entropy_on_probabilities_matches_nll_of_log(backend_name):
    be = get_backend(backend_name)
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(4), size=5)
    labels = rng.integers(0, 4, size=5)
    crit = nn.CrossEntropyLoss(from_logits=False)
    loss = crit(be.asarray(p), be.asarray(labels))
    tp = _t(p)
    tloss = F.nll_loss(torch.log(tp), torch.tensor(labels))
    tloss.backward()
    assert float(be.to_numpy(loss)) == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(be.to_numpy(crit.backward()), tp.grad.numpy(), rtol=1e-10)


def test_mse_matches_torch(backend_name):
    be = get_backend(backend_name)
    rng = np.random.default_rng(6)
    x, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    crit = nn.MSELoss()
    loss = crit(be.asarray(x), be.asarray(t))
    tx = _t(x)
    tloss = F.mse_loss(tx, torch.tensor(t))
    tloss.backward()
    assert float(be.to_numpy(loss)) == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(be.to_numpy(crit.backward()), tx.grad.numpy(), rtol=1e-12)


def test_mlp_matches_the_same_torch_network():
    rng = np.random.default_rng(7)
    mlp = nn.MLP(6, [8, 5], 3, activation="gelu", rng=rng, dtype="float64")
    ref = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU("tanh"), torch.nn.Linear(8, 5),
                              torch.nn.GELU("tanh"), torch.nn.Linear(5, 3)).double()
    with torch.no_grad():
        for (name, p) in mlp.named_parameters():
            dict(ref.named_parameters())[name].copy_(torch.tensor(p.data))
    x, labels = rng.normal(size=(4, 6)), rng.integers(0, 3, size=4)
    crit = nn.CrossEntropyLoss()
    loss = crit(mlp(x), labels)
    mlp.backward(crit.backward())
    tloss = F.cross_entropy(ref(torch.tensor(x)), torch.tensor(labels))
    tloss.backward()
    assert float(loss) == pytest.approx(tloss.item(), rel=1e-12)
    for name, p in mlp.named_parameters():
        np.testing.assert_allclose(p.grad, dict(ref.named_parameters())[name].grad.numpy(), rtol=1e-9, atol=1e-14)
