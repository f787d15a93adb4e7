"""SGD, Adam and AdamW over several steps against independent references.

Each run: three parameters, gradients g = 0.5 θ + noise (so weight decay and momentum
interact with the trajectory), a parameter without a gradient on some steps (it must
be skipped, its step count not advanced), and the learning rate halved half-way
through by writing ``param_groups`` (as a scheduler does). References: plain NumPy
float64 written from the papers' formulas (always runs) and PyTorch float64 (when
installed).
"""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import optim

STEPS = 6
LR_CHANGE = 3  # from this step on, lr is halved through param_groups
NO_GRAD = {(0, 2), (2, 1)}  # (step, parameter) pairs that get no gradient

SGD_GRID = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
    dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05),
    dict(lr=0.2, weight_decay=0.1),
]
ADAM_GRID = [
    dict(lr=1e-3),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    dict(lr=0.05, betas=(0.0, 0.5), eps=1e-3),
    dict(lr=0.01, weight_decay=1.0),  # a decay of exactly 1 is a decay, not "off"
]
ADAMW_GRID = [
    dict(lr=1e-3),
    dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.1),
    dict(lr=0.05, weight_decay=0.0),
    dict(lr=0.05, eps=0.5, weight_decay=0.2),  # an eps large enough to change every step
]
CASES = (
    [("SGD", kw) for kw in SGD_GRID]
    + [("Adam", kw) for kw in ADAM_GRID]
    + [("AdamW", kw) for kw in ADAMW_GRID]
)
IDS = [f"{name}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for name, kw in CASES]


def grad_fn(theta: np.ndarray, k: int, i: int) -> np.ndarray:
    noise = np.random.default_rng([k, i]).standard_normal(theta.shape)
    return 0.5 * theta + noise


def lr_at(lr: float, k: int) -> float:
    return lr * 0.5 if k >= LR_CHANGE else lr


# ------------------------------------------------------------------ references
def reference_numpy(name: str, kw: dict, thetas: list[np.ndarray]) -> list[np.ndarray]:
    """The update rules as the papers / PyTorch docs write them, in float64."""
    thetas = [t.copy() for t in thetas]
    state: dict[int, dict] = {}
    for k in range(STEPS):
        lr = lr_at(kw["lr"], k)
        for i, theta in enumerate(thetas):
            if (k, i) in NO_GRAD:
                continue
            g = grad_fn(theta, k, i)
            s = state.setdefault(i, {})
            if name == "SGD":
                mu, tau = kw.get("momentum", 0.0), kw.get("dampening", 0.0)
                g = g + kw.get("weight_decay", 0.0) * theta
                if mu:
                    s["b"] = g.copy() if "b" not in s else mu * s["b"] + (1 - tau) * g
                    g = g + mu * s["b"] if kw.get("nesterov") else s["b"]
                thetas[i] = theta - lr * g
            else:
                beta1, beta2 = kw.get("betas", (0.9, 0.999))
                eps = kw.get("eps", 1e-8)
                lam = kw.get("weight_decay", 0.0 if name == "Adam" else 1e-2)
                if name == "AdamW":
                    theta = theta * (1 - lr * lam)
                else:
                    g = g + lam * theta
                t = s["t"] = s.get("t", 0) + 1
                s["m"] = beta1 * s.get("m", 0.0) + (1 - beta1) * g
                s["v"] = beta2 * s.get("v", 0.0) + (1 - beta2) * g * g
                m_hat = s["m"] / (1 - beta1**t)
                v_hat = s["v"] / (1 - beta2**t)
                thetas[i] = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return thetas


def reference_torch(name: str, kw: dict, thetas: list[np.ndarray]) -> list[np.ndarray]:
    torch = pytest.importorskip("torch")
    params = [torch.tensor(t, dtype=torch.float64, requires_grad=True) for t in thetas]
    opt = getattr(torch.optim, name)(params, **kw)
    for k in range(STEPS):
        if k == LR_CHANGE:
            for group in opt.param_groups:
                group["lr"] *= 0.5
        for i, p in enumerate(params):
            p.grad = None if (k, i) in NO_GRAD else torch.from_numpy(grad_fn(p.detach().numpy(), k, i))
        opt.step()
    return [p.detach().numpy().copy() for p in params]


def run_ours(name: str, kw: dict, be, params) -> optim.Optimizer:
    opt = getattr(optim, name)(params, **kw)
    dtype = params[0].data.dtype
    for k in range(STEPS):
        if k == LR_CHANGE:
            for group in opt.param_groups:
                group["lr"] *= 0.5
        for i, p in enumerate(params):
            theta = be.to_numpy(p.data).astype(np.float64)
            p.grad = None if (k, i) in NO_GRAD else be.asarray(grad_fn(theta, k, i), dtype=dtype)
        opt.step()
    return opt


# ----------------------------------------------------------------------- tests
@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_matches_numpy_reference_float64(name, kw, be, make_params):
    params, host = make_params(be, "float64")
    run_ours(name, kw, be, params)
    expected = reference_numpy(name, kw, host)
    for i, (p, e) in enumerate(zip(params, expected)):
        np.testing.assert_allclose(be.to_numpy(p.data), e, rtol=1e-10, atol=1e-12, err_msg=f"parameter {i}")


@pytest.mark.torch
@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_matches_torch_float64(name, kw, be, make_params):
    params, host = make_params(be, "float64")
    expected = reference_torch(name, kw, host)
    run_ours(name, kw, be, params)
    for i, (p, e) in enumerate(zip(params, expected)):
        np.testing.assert_allclose(be.to_numpy(p.data), e, rtol=1e-10, atol=1e-12, err_msg=f"parameter {i}")


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_float32_stays_float32(name, kw, be, make_params):
    params, host = make_params(be, "float32")
    kw = {**kw, "lr": np.float64(kw["lr"])}  # a NumPy float64 hyperparameter must not promote anything
    opt = run_ours(name, kw, be, params)
    f32 = be.dtype("float32")
    for i, p in enumerate(params):
        assert p.data.dtype == f32, f"parameter {i} became {p.data.dtype}"
        for key, value in opt.state.get(p, {}).items():
            if hasattr(value, "dtype"):
                assert value.dtype == f32, f"state {key} of parameter {i} is {value.dtype}"
    assert type(opt.param_groups[0]["lr"]) is float
    expected = reference_numpy(name, kw, host)
    for i, (p, e) in enumerate(zip(params, expected)):
        np.testing.assert_allclose(be.to_numpy(p.data), e, rtol=1e-4, atol=1e-5, err_msg=f"parameter {i}")


def test_sgd_closed_form_constant_gradient(be):
    """Plain SGD on a constant gradient: θ_k = θ_0 - k lr g; momentum μ: θ_k = θ_0 - lr g Σ_{j<k} (1 + μ + … + μ^j)."""
    from mlpframe.nn import Parameter

    g = be.asarray(np.array([1.0, -2.0, 0.5]), dtype="float64")
    for mu in (0.0, 0.9):
        p = Parameter(be.asarray(np.zeros(3), dtype="float64"))
        opt = optim.SGD([p], lr=0.1, momentum=mu)
        for _ in range(5):
            p.grad = g
            opt.step()
        factor = sum(sum(mu**i for i in range(j + 1)) for j in range(5))
        np.testing.assert_allclose(be.to_numpy(p.data), -0.1 * factor * be.to_numpy(g), rtol=1e-12)
        np.testing.assert_array_equal(be.to_numpy(g), [1.0, -2.0, 0.5])  # the gradient itself is untouched


def test_adam_first_step_is_lr_times_sign(be):
    """With bias correction the first Adam step is lr · g / (|g| + eps) ≈ lr · sign(g), whatever |g| is."""
    from mlpframe.nn import Parameter

    p = Parameter(be.asarray(np.zeros(3), dtype="float64"))
    opt = optim.Adam([p], lr=0.01, eps=0.0)
    p.grad = be.asarray(np.array([1e-3, -5.0, 300.0]), dtype="float64")
    opt.step()
    np.testing.assert_allclose(be.to_numpy(p.data), [-0.01, 0.01, -0.01], rtol=1e-12)
