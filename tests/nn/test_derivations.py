"""The seed derivations (reference/backprop_derivations.md) hold as written."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn


def _host(be, a):
    return be.to_numpy(a)


def test_linear_gradients_are_the_seed_formulas(backend_name):
    """Q1 a-c: dL/dW = dY^T X, dL/db = column sums of dY, dL/dX = dY W."""
    be = get_backend(backend_name)
    rng = np.random.default_rng(0)
    S, M, N = 6, 5, 3
    X, dY = rng.normal(size=(S, M)), rng.normal(size=(S, N))
    layer = nn.Linear(M, N, rng=rng, dtype="float64").to(be)
    W, b = _host(be, layer.weight.data), _host(be, layer.bias.data)
    Y = layer(be.asarray(X))
    np.testing.assert_allclose(_host(be, Y), X @ W.T + b, rtol=1e-12)
    dX = layer.backward(be.asarray(dY))
    np.testing.assert_allclose(_host(be, layer.weight.grad), dY.T @ X, rtol=1e-12)
    np.testing.assert_allclose(_host(be, layer.bias.grad), dY.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(_host(be, dX), dY @ W, rtol=1e-12)


# h'(x) written independently of the library, from the textbook definitions
DERIVATIVES = {
    "ReLU": (nn.ReLU, lambda x: (x > 0).astype(float)),
    "LeakyReLU": (nn.LeakyReLU, lambda x: np.where(x > 0, 1.0, 0.01)),
    "ELU": (nn.ELU, lambda x: np.where(x > 0, 1.0, np.exp(x))),
    "Tanh": (nn.Tanh, lambda x: 1 / np.cosh(x) ** 2),
    "Sigmoid": (nn.Sigmoid, lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    "SiLU": (nn.SiLU, lambda x: (1 + np.exp(-x) + x * np.exp(-x)) / (1 + np.exp(-x)) ** 2),
    "GELU": (nn.GELU, lambda x: 0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
             + 0.5 * x * (1 - np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)) ** 2)
             * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x**2)),
    "Identity": (nn.Identity, lambda x: np.ones_like(x)),
}


@pytest.mark.parametrize("name", list(DERIVATIVES))
def test_elementwise_activation_gradient_is_dY_times_h_prime(name, backend_name):
    """Q1 d: dL/dX = dL/dY ⊙ h'(X), same shape as X."""
    be = get_backend(backend_name)
    cls, h_prime = DERIVATIVES[name]
    rng = np.random.default_rng(1)
    X, dY = rng.normal(size=(7, 4)) * 3, rng.normal(size=(7, 4))
    act = cls().to(be)
    act(be.asarray(X))
    dX = _host(be, act.backward(be.asarray(dY)))
    assert dX.shape == X.shape
    np.testing.assert_allclose(dX, dY * h_prime(X), rtol=1e-10, atol=1e-12)


def test_softmax_then_cross_entropy_on_probabilities_equals_the_fused_loss(backend_name):
    """Q1 e: Softmax + CE(from_logits=False) gives (softmax(Z) - T) / S, the fused loss's gradient."""
    be = get_backend(backend_name)
    rng = np.random.default_rng(2)
    S, C = 8, 5
    Z, labels = rng.normal(size=(S, C)) * 2, rng.integers(0, C, size=S)
    T = np.eye(C)[labels]
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)

    softmax, ce = nn.Softmax().to(be), nn.CrossEntropyLoss(from_logits=False)
    loss_two_step = ce(softmax(be.asarray(Z)), be.asarray(labels))
    grad_two_step = _host(be, softmax.backward(ce.backward()))

    fused = nn.CrossEntropyLoss(from_logits=True)
    loss_fused = fused(be.asarray(Z), be.asarray(labels))
    grad_fused = _host(be, fused.backward())

    expected_loss = -np.mean(np.log(P[np.arange(S), labels]))
    assert float(_host(be, loss_two_step)) == pytest.approx(expected_loss, rel=1e-12)
    assert float(_host(be, loss_fused)) == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(grad_two_step, (P - T) / S, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad_fused, (P - T) / S, rtol=1e-10, atol=1e-14)


def test_cross_entropy_on_probabilities_gradient_is_minus_T_over_Y(backend_name):
    """The seed's dL/dY = -(1/S) T / Y."""
    be = get_backend(backend_name)
    rng = np.random.default_rng(3)
    Y = rng.uniform(0.05, 1.0, size=(4, 3))
    labels = np.array([0, 2, 1, 2])
    ce = nn.CrossEntropyLoss(from_logits=False)
    ce(be.asarray(Y), be.asarray(labels))
    np.testing.assert_allclose(_host(be, ce.backward()), -np.eye(3)[labels] / Y / 4, rtol=1e-12)
