"""The speed paths give the same numbers as the plain definitions.

ReLU and ELU avoid ``where`` (NumPy's select on an unpredictable mask is ~15x
slower than a multiply) by writing each branch so that the other adds an exact
zero; ``backward_params`` skips the model input's gradient. Each is compared here,
bit for bit, with the textbook form on every backend the tests can run. The
cross-entropy reduces class-major (a different summation order), so it is
compared with the row-major formula to float64 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn
from mlpframe.backend import cupy_available

# the special values overflow on purpose (inf * 0 in the references)
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
BACKENDS = ["numpy", "array_api_strict",
            pytest.param("cupy", marks=pytest.mark.skipif(not cupy_available(), reason="CuPy needs a CUDA GPU"))]
SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 3.0, -3.0, 88.0, -88.0, -200.0, 1e30, -1e30,
           np.inf, -np.inf]


def _inputs(dtype: str, seed: int = 0, special: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 40)) * 4
    if special:
        x[0, : len(SPECIAL)] = SPECIAL
    return x.astype(dtype)


def _run(module: nn.Module, x: np.ndarray, grad_y: np.ndarray, backend: str):
    be = get_backend(backend)
    module.to(be)
    y = module(be.asarray(x))
    grad_x = module.backward(be.asarray(grad_y))
    return be.to_numpy(y), be.to_numpy(grad_x)


def _elu_reference(x: np.ndarray, grad_y: np.ndarray, alpha: float):
    a = x.dtype.type(alpha)
    y = np.where(x > 0, x, a * np.expm1(np.minimum(x, x.dtype.type(0))))
    return y, np.where(y > 0, grad_y, grad_y * (y + a))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_matches_the_select_form(backend, dtype):
    # grad_y finite: the product form gives NaN, the select 0, for inf/NaN grad_y at a dead unit
    x = _inputs(dtype)
    grad_y = _inputs(dtype, seed=1, special=False)
    y, grad_x = _run(nn.ReLU(), x, grad_y, backend)
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0))
    np.testing.assert_array_equal(grad_x, np.where(x > 0, grad_y, 0))
    assert y.dtype == grad_x.dtype == np.dtype(dtype)


def test_relu_nan_propagates_like_max():
    x = np.array([[np.nan, -1.0, 2.0]], dtype=np.float32)
    y, _ = _run(nn.ReLU(), x, np.ones_like(x), "numpy")
    np.testing.assert_array_equal(y, [[np.nan, 0.0, 2.0]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("alpha", [1.0, 0.5, 1.7])
def test_elu_matches_the_piecewise_form(backend, dtype, alpha):
    x = _inputs(dtype)
    grad_y = _inputs(dtype, seed=1)
    y, grad_x = _run(nn.ELU(alpha), x, grad_y, backend)
    y_ref, grad_ref = _elu_reference(x, grad_y, alpha)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(grad_x, grad_ref)
    assert y.dtype == grad_x.dtype == np.dtype(dtype)


def test_elu_nan_propagates():
    x = np.array([[np.nan, -1.0, 2.0]], dtype=np.float32)
    y, grad_x = _run(nn.ELU(), x, np.ones_like(x), "numpy")
    assert np.isnan(y[0, 0]) and np.isnan(grad_x[0, 0])
    np.testing.assert_array_equal(grad_x, _elu_reference(x, np.ones_like(x), 1.0)[1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("norm,dropout", [(None, 0.0), ("batch", 0.3), ("layer", 0.0)])
def test_backward_params_gives_backwards_parameter_gradients(backend, norm, dropout):
    be = get_backend(backend)
    be.seed(0)
    model = nn.MLP(12, [16, 8], 5, activation="elu", norm=norm, dropout=dropout, rng=3, dtype="float64").to(be)
    rng = np.random.default_rng(0)
    x = be.asarray(rng.standard_normal((10, 12)))
    crit = nn.CrossEntropyLoss()
    crit(model(x), be.asarray(rng.integers(0, 5, size=10)))
    grad_logits = crit.backward()

    model.zero_grad()
    assert model.backward_params(grad_logits) is None
    fast = {name: be.to_numpy(p.grad) for name, p in model.named_parameters()}
    model.zero_grad()
    grad_x = model.backward(grad_logits)  # same forward cache
    full = {name: be.to_numpy(p.grad) for name, p in model.named_parameters()}

    assert tuple(grad_x.shape) == (10, 12)
    assert fast.keys() == full.keys() and len(fast) > 0
    for name in full:
        np.testing.assert_array_equal(fast[name], full[name], err_msg=name)


def test_backward_params_accumulates_like_backward():
    layer = nn.Linear(4, 3, rng=0, dtype="float64")
    x = np.random.default_rng(1).standard_normal((5, 4))
    g = np.random.default_rng(2).standard_normal((5, 3))
    layer(x)
    layer.backward_params(g)
    layer.backward_params(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * g.T @ x, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, 2 * g.sum(0), rtol=1e-12)


def test_backward_params_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Linear(4, 3, rng=0).backward_params(np.zeros((2, 3), np.float32))


def _ce_reference(z: np.ndarray, t: np.ndarray):
    """Row-major float64 log-softmax cross-entropy and its gradient (softmax - t) / N."""
    z = z.astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    N = z.shape[0]
    return -(t * log_p).sum() / N, (np.exp(log_p) - t) / N


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("targets", ["labels", "probabilities", "smoothed"])
def test_cross_entropy_class_major_matches_row_major(backend, layout, targets):
    """Computed class-major for speed; same loss and gradient, and the logits are left alone."""
    be = get_backend(backend)
    rng = np.random.default_rng(0)
    N, C = 33, 7
    z = rng.standard_normal((N, C)) * 5
    z = np.asfortranarray(z) if layout == "F" else z
    labels = rng.integers(0, C, size=N)
    if targets == "probabilities":
        t = rng.dirichlet(np.ones(C), size=N)
        tgt = t
    else:
        t = np.eye(C)[labels]
        tgt = labels
    smoothing = 0.2 if targets == "smoothed" else 0.0
    t = (1 - smoothing) * t + smoothing / C
    crit = nn.CrossEntropyLoss(label_smoothing=smoothing)
    z_dev = be.asarray(z, dtype="float64")
    loss = crit(z_dev, be.asarray(tgt))
    grad = crit.backward()
    loss_ref, grad_ref = _ce_reference(z, t)
    assert float(be.to_numpy(loss)) == pytest.approx(loss_ref, rel=1e-12)
    assert tuple(grad.shape) == (N, C)
    np.testing.assert_allclose(be.to_numpy(grad), grad_ref, rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(be.to_numpy(z_dev), z)  # the in-place steps worked on a copy
    # float32 stays float32
    crit32 = nn.CrossEntropyLoss(label_smoothing=smoothing)
    assert crit32(be.asarray(z, dtype="float32"), be.asarray(tgt if targets != "probabilities"
                                                            else tgt.astype(np.float32))).dtype == be.dtype("float32")
    assert crit32.backward().dtype == be.dtype("float32")
