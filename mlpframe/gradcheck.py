"""Numerical gradient checks: hand-written backward vs central finite differences.

For a module ``y = f(x; theta)`` the check projects the output on a fixed random
matrix ``R`` so that the scalar ``L = sum(y ⊙ R)`` has ``dL/dy = R``; ``backward(R)``
must then give ``dL/dx`` and ``dL/dtheta``. Each is compared with the central difference::

    dL/dx_i ≈ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

in float64. The pass criterion is the relative error of the whole tensor,
``||analytic - numeric|| / (||analytic|| + ||numeric||)`` (as in the course
homework's tests), and the report names the worst element and its values. The
denominator is floored at ``ABS_FLOOR`` so that a gradient that is exactly zero (a
bias followed by BatchNorm) is judged by its absolute error, not by rounding noise.
Perturbations are made on a host copy and moved to the backend, so the check runs
unchanged on NumPy, CuPy and array_api_strict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlpframe import nn
from mlpframe.backend import Backend, get_backend

DEFAULT_RTOL = 1e-6
DEFAULT_EPS = 1e-6
ABS_FLOOR = 1e-2


@dataclass(frozen=True)
class GradcheckResult:
    """One compared tensor: a module's input gradient or one parameter's gradient."""

    module: str
    wrt: str  # "input" or a parameter name
    rel_error: float
    worst_index: tuple[int, ...]
    worst_analytic: float
    worst_numeric: float
    rtol: float

    @property
    def passed(self) -> bool:
        return self.rel_error < self.rtol  # NaN fails too

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAIL"
        return (f"{self.module} d/d{self.wrt}: rel error {self.rel_error:.2e} ({verdict}); worst element "
                f"{list(self.worst_index)}: analytic {self.worst_analytic:.6e}, numeric {self.worst_numeric:.6e}")


def compare(module: str, wrt: str, analytic: np.ndarray, numeric: np.ndarray,
            rtol: float = DEFAULT_RTOL) -> GradcheckResult:
    """Relative error of ``analytic`` against ``numeric`` and where they differ most."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"{module} d/d{wrt}: gradient has shape {analytic.shape}, expected {numeric.shape}")
    diff = np.abs(analytic - numeric)
    denom = max(np.linalg.norm(analytic) + np.linalg.norm(numeric), ABS_FLOOR)
    rel = float(np.linalg.norm(analytic - numeric) / denom)
    if not np.all(np.isfinite(analytic)):
        rel = math.nan
    worst = np.unravel_index(int(np.nanargmax(diff)) if diff.size else 0, diff.shape) if diff.size else ()
    return GradcheckResult(module, wrt, rel, tuple(int(i) for i in worst),
                           float(analytic[worst]) if diff.size else 0.0,
                           float(numeric[worst]) if diff.size else 0.0, rtol)


def _central_difference(f: Callable[[], float], a: np.ndarray, eps: float,
                        write: Callable[[np.ndarray], None]) -> np.ndarray:
    """d f / d a by central differences; ``write(a)`` puts the perturbed copy in place."""
    grad = np.zeros_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        write(a)
        f_plus = f()
        flat[i] = orig - eps
        write(a)
        f_minus = f()
        flat[i] = orig
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    write(a)
    return grad


def check_module(module: nn.Module, x: np.ndarray, *, backend: str | Backend = "numpy", name: str | None = None,
                 rtol: float = DEFAULT_RTOL, eps: float = DEFAULT_EPS, seed: int = 0) -> list[GradcheckResult]:
    """Check ``module.backward`` for the input and every parameter at the point ``x`` (host, float64)."""
    be = get_backend(backend) if isinstance(backend, str) else backend
    name = name or type(module).__name__
    module.to(be)
    x = np.array(x, dtype=np.float64)

    def forward(x_host: np.ndarray):
        be.seed(seed)  # the same dropout mask at every evaluation
        return module(be.asarray(x_host))

    R = np.random.default_rng(seed + 1).normal(size=tuple(forward(x).shape))
    module.zero_grad()
    forward(x)
    grad_x = be.to_numpy(module.backward(be.asarray(R)))
    analytic = {n: be.to_numpy(p.grad) for n, p in module.named_parameters()}

    x_work = x.copy()

    def objective() -> float:
        return float(np.sum(be.to_numpy(forward(x_work)) * R))

    results = [compare(name, "input", grad_x, _central_difference(objective, x_work, eps, lambda a: None), rtol)]
    x_work = x
    for pname, p in module.named_parameters():
        host = be.to_numpy(p.data).astype(np.float64).copy()

        def write(a: np.ndarray, p=p) -> None:
            p.data = be.asarray(a)

        numeric = _central_difference(objective, host, eps, write)
        results.append(compare(name, pname, analytic[pname], numeric, rtol))
    return results


def check_loss(loss: nn.Module, x: np.ndarray, targets: np.ndarray, *, backend: str | Backend = "numpy",
               name: str | None = None, rtol: float = DEFAULT_RTOL, eps: float = DEFAULT_EPS) -> GradcheckResult:
    """Check ``loss.backward()`` (d loss / d inputs) at ``x`` for fixed ``targets``."""
    be = get_backend(backend) if isinstance(backend, str) else backend
    name = name or type(loss).__name__
    x = np.array(x, dtype=np.float64)
    t = be.asarray(targets)
    loss(be.asarray(x), t)
    analytic = be.to_numpy(loss.backward())
    x_work = x.copy()
    numeric = _central_difference(lambda: float(be.to_numpy(loss(be.asarray(x_work), t))), x_work, eps, lambda a: None)
    return compare(name, "input", analytic, numeric, rtol)


# ------------------------------------------------------------ the standard suite
def _away_from_kinks(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Normal samples pushed at least 0.1 from 0, where ReLU-like derivatives jump."""
    x = rng.normal(size=shape)
    return x + np.sign(x) * 0.1


def _distinct(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A random permutation of 0, 0.1, 0.2, ...: no ties, no two values closer than 0.1."""
    return rng.permutation(np.arange(int(np.prod(shape))) * 0.1).reshape(shape)


def _randomised(module: nn.Module, rng: np.random.Generator) -> nn.Module:
    """Replace ones/zeros parameters and buffers with random values so every term of backward is exercised."""
    for _, p in module.named_parameters():
        p.data = rng.normal(1.0, 0.5, size=p.data.shape)
    for name in getattr(module, "_buffers", []):
        shape = getattr(module, name).shape
        setattr(module, name, rng.uniform(0.5, 1.5, size=shape) if "var" in name else rng.normal(size=shape))
    return module


def module_cases() -> list[tuple[str, Callable[[np.random.Generator], tuple[nn.Module, np.ndarray]]]]:
    """(name, make(rng) -> (float64 module, input)) for every layer with a backward."""
    f64 = {"dtype": "float64"}
    N = 4
    cases = [
        ("Linear", lambda r: (nn.Linear(5, 3, rng=r, **f64), r.normal(size=(N, 5)))),
        ("Linear(bias=False)", lambda r: (nn.Linear(5, 3, bias=False, rng=r, **f64), r.normal(size=(N, 5)))),
    ]
    for act_name, cls in nn.ACTIVATIONS.items():
        cases.append((cls.__name__, lambda r, cls=cls: (cls(), _away_from_kinks((N, 6), r))))
    cases += [
        ("Softmax", lambda r: (nn.Softmax(), r.normal(size=(N, 5)))),
        ("BatchNorm1d(train)", lambda r: (_randomised(nn.BatchNorm1d(5, **f64), r), r.normal(size=(N, 5)))),
        ("BatchNorm1d(eval)", lambda r: (_randomised(nn.BatchNorm1d(5, **f64), r).eval(), r.normal(size=(N, 5)))),
        ("LayerNorm", lambda r: (_randomised(nn.LayerNorm(5, **f64), r), r.normal(size=(N, 5)))),
        ("Dropout(p=0.3)", lambda r: (nn.Dropout(0.3), r.normal(size=(N, 6)))),
        ("MLP(elu, batch norm, dropout)", lambda r: (
            nn.MLP(5, [6, 7], 3, activation="elu", norm="batch", dropout=0.2, rng=r, **f64), r.normal(size=(N, 5)))),
        ("Conv1d(stride 2, padding 1, dilation 2)", lambda r: (
            nn.Conv1d(2, 3, 3, stride=2, padding=1, dilation=2, rng=r, **f64), r.normal(size=(2, 2, 9)))),
        ("Conv1d(bias=False)", lambda r: (nn.Conv1d(2, 3, 2, bias=False, rng=r, **f64), r.normal(size=(2, 2, 5)))),
        ("Conv2d(rectangular kernel, stride, padding)", lambda r: (
            nn.Conv2d(2, 3, (2, 3), stride=(2, 1), padding=(1, 0), rng=r, **f64), r.normal(size=(2, 2, 5, 4)))),
        # distinct values well apart: a difference step never changes which element is a window's maximum
        ("MaxPool1d(3, stride 2, padding 1)", lambda r: (nn.MaxPool1d(3, 2, 1), _distinct((2, 2, 8), r))),
        ("MaxPool2d(2)", lambda r: (nn.MaxPool2d(2), _distinct((2, 2, 4, 5), r))),
        ("AvgPool1d(3, stride 2, padding 1)", lambda r: (nn.AvgPool1d(3, 2, 1), r.normal(size=(2, 2, 8)))),
        ("AvgPool2d((2, 3), stride 1)", lambda r: (nn.AvgPool2d((2, 3), 1), r.normal(size=(2, 2, 4, 5)))),
        ("GlobalAvgPool", lambda r: (nn.GlobalAvgPool(), r.normal(size=(2, 3, 4, 3)))),
        ("Flatten", lambda r: (nn.Flatten(), r.normal(size=(2, 3, 4)))),
        ("BatchNorm1d(train, (N, C, L))",
         lambda r: (_randomised(nn.BatchNorm1d(3, **f64), r), r.normal(size=(3, 3, 4)))),
        ("BatchNorm2d(train)", lambda r: (_randomised(nn.BatchNorm2d(3, **f64), r), r.normal(size=(2, 3, 3, 2)))),
        ("BatchNorm2d(eval)",
         lambda r: (_randomised(nn.BatchNorm2d(3, **f64), r).eval(), r.normal(size=(2, 3, 3, 2)))),
        ("Dropout(p=0.3) on (N, C, H, W)", lambda r: (nn.Dropout(0.3), r.normal(size=(2, 2, 3, 3)))),
    ]
    # recurrent layers: (N, T, I) sequences; PyTorch's init, whose small weights keep the gates unsaturated
    cases += [
        ("GRU", lambda r: (nn.GRU(2, 3, rng=r, **f64), r.normal(size=(N, 5, 2)))),
        ("GRU(bidirectional, bias=False)",
         lambda r: (nn.GRU(2, 3, bias=False, bidirectional=True, rng=r, **f64), r.normal(size=(N, 5, 2)))),
        ("LSTM", lambda r: (nn.LSTM(2, 3, rng=r, **f64), r.normal(size=(N, 5, 2)))),
        ("LSTM(bidirectional, bias=False)",
         lambda r: (nn.LSTM(2, 3, bias=False, bidirectional=True, rng=r, **f64), r.normal(size=(N, 5, 2)))),
        ("LastStep", lambda r: (nn.LastStep(), r.normal(size=(N, 5, 3)))),
    ]
    return cases


def loss_cases() -> list[tuple[str, Callable[[np.random.Generator], tuple[nn.Module, np.ndarray, np.ndarray]]]]:
    """(name, make(rng) -> (loss, float64 input, targets)) for every loss."""
    N, C = 5, 4

    def probs(r):
        z = r.normal(size=(N, C))
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    labels = lambda r: r.integers(0, C, size=N)  # noqa: E731
    return [
        ("CrossEntropyLoss(logits, labels)", lambda r: (nn.CrossEntropyLoss(), r.normal(size=(N, C)), labels(r))),
        ("CrossEntropyLoss(logits, probabilities)",
         lambda r: (nn.CrossEntropyLoss(), r.normal(size=(N, C)), probs(r))),
        ("CrossEntropyLoss(label_smoothing=0.1)",
         lambda r: (nn.CrossEntropyLoss(label_smoothing=0.1), r.normal(size=(N, C)), labels(r))),
        ("CrossEntropyLoss(from_logits=False)",
         lambda r: (nn.CrossEntropyLoss(from_logits=False), probs(r), labels(r))),
        ("MSELoss", lambda r: (nn.MSELoss(), r.normal(size=(N, C)), r.normal(size=(N, C)))),
    ]


def check_all(backend: str | Backend = "numpy", rtol: float = DEFAULT_RTOL, seed: int = 0) -> list[GradcheckResult]:
    """Every layer and loss of :mod:`mlpframe.nn` in float64 on ``backend``."""
    results: list[GradcheckResult] = []
    for name, make in module_cases():
        module, x = make(np.random.default_rng(seed))
        results += check_module(module, x, backend=backend, name=name, rtol=rtol, seed=seed)
    for name, make in loss_cases():
        loss, x, t = make(np.random.default_rng(seed))
        results.append(check_loss(loss, x, t, backend=backend, name=name, rtol=rtol))
    return results
