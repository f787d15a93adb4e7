r"""Element-wise activations ``y = h(x)``.

Backward is the seed derivation (Question 1 d): for an element-wise ``h`` the chain
rule has one term per element,

.. math::

    \frac{\partial L}{\partial x_{ij}} = \frac{\partial L}{\partial y_{ij}} \, h'(x_{ij}),
    \qquad \bar x = \bar y \odot h'(x),

i.e. ``grad_x = grad_y * h'(x)`` with the shape of ``x``. Each class writes ``h`` in ``forward`` and ``h'`` in ``backward``,
caching whichever of ``x`` and ``y`` makes ``h'`` cheapest.
"""

from __future__ import annotations

import math

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.module import Identity, Module


def _zero_row(module: Module, x: Array, xp) -> Array:
    """A cached ``(D,)`` row of zeros for ``max(x, 0)``/``min(x, 0)`` on ``x`` of shape ``(..., D)``.

    Same numbers as the scalar 0, but NumPy vectorises ``maximum`` only between
    arrays: against a broadcast row it runs ~2.5x faster than against the scalar
    (whose loop is not vectorised). Cached because a fresh array of zeros costs more
    than the ``maximum`` itself (new pages).
    """
    z = module.cache.get("zeros")
    D = x.shape[-1]
    if z is None or z.shape[0] != D or z.dtype != x.dtype:
        z = module.cache["zeros"] = xp.zeros((D,), dtype=x.dtype, device=x.device)
    return z


class ReLU(Module):
    r""":math:`y = \max(x, 0)`;  :math:`\bar x = \bar y \odot [y > 0]`.

    The indicator is multiplied in as a 0/1 array rather than selected with
    ``where``: NumPy's ``where`` on an unpredictable mask runs about 15x slower than
    a multiply. The two differ only where ``grad_y`` is inf or NaN at a unit with
    ``y <= 0`` (the product gives NaN there, the select 0).
    """

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        y = xp.maximum(x, _zero_row(self, x, xp))
        self.cache["y"] = y
        return y

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        grad_x = xp.astype(self.cached("y") > 0, grad_y.dtype)
        grad_x *= grad_y  # in place on our own temporary: one allocation per backward
        return grad_x


class LeakyReLU(Module):
    r"""Leaky ReLU with slope :math:`a` (``negative_slope``) below zero.

    .. math::

        y = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}
        \qquad
        \bar x = \bar y \odot \begin{cases} 1 & x > 0 \\ a & x \le 0 \end{cases}
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if not negative_slope >= 0:
            raise ValueError(f"negative_slope: expected >= 0, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        positive = x > 0
        self.cache["positive"] = positive
        return xp.where(positive, x, self.negative_slope * x)

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        return xp.where(self.cached("positive"), grad_y, self.negative_slope * grad_y)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    r"""ELU: :math:`y = x` for :math:`x > 0`, else :math:`\alpha (e^x - 1)`.

    For :math:`x \le 0`, :math:`h'(x) = \alpha e^x = y + \alpha`, so backward needs only ``y``:

    .. math::

        \bar x = \bar y \odot \begin{cases} 1 & x > 0 \\ y + \alpha & x \le 0 \end{cases}
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"alpha: expected > 0, got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        # y = max(x, 0) + alpha expm1(min(x, 0)): each branch adds an exact 0 to the other, so
        # this equals the piecewise form without a where (slow in NumPy); expm1 of min(x, 0)
        # is exact near 0 and never overflows for large positive x
        zero = _zero_row(self, x, xp)
        y = xp.expm1(xp.minimum(x, zero))
        if self.alpha != 1.0:
            y *= self.alpha
        y += xp.maximum(x, zero)
        self.cache["y"] = y
        return y

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        y = self.cached("y")
        if self.alpha == 1.0:
            # h'(x) = min(y, 0) + 1: 1 where y > 0 and y + alpha elsewhere, without a where
            grad_x = xp.minimum(y, _zero_row(self, y, xp))
            grad_x += 1.0
            grad_x *= grad_y
            return grad_x
        return xp.where(y > 0, grad_y, grad_y * (y + self.alpha))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class GELU(Module):
    r"""GELU, tanh approximation (PyTorch's ``approximate="tanh"``).

    With :math:`c = 0.044715`:

    .. math::

        t &= \tanh\left(\sqrt{2/\pi}\,(x + c x^3)\right), \qquad y = \tfrac12 x (1 + t) \\
        h'(x) &= \tfrac12 (1 + t) + \tfrac12 x (1 - t^2) \sqrt{2/\pi}\, (1 + 3 c x^2),
        \qquad \bar x = \bar y \odot h'(x)
    """

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x * x * x))
        self.cache["x"], self.cache["t"] = x, t
        return 0.5 * x * (1.0 + t)

    def backward(self, grad_y: Array) -> Array:
        x, t = self.cached("x"), self.cached("t")
        dydx = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * x * x)
        return grad_y * dydx


def _sigmoid(x: Array, xp) -> Array:
    # sigma(x) = (1 + tanh(x/2)) / 2: one transcendental, no overflow for large |x|
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


class SiLU(Module):
    r""":math:`y = x \, \sigma(x)`;  :math:`h'(x) = \sigma(x) \left(1 + x (1 - \sigma(x))\right)`."""

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        s = _sigmoid(x, xp)
        self.cache["x"], self.cache["s"] = x, s
        return x * s

    def backward(self, grad_y: Array) -> Array:
        x, s = self.cached("x"), self.cached("s")
        return grad_y * (s * (1.0 + x * (1.0 - s)))


class Tanh(Module):
    r""":math:`y = \tanh x`;  :math:`h'(x) = 1 - y^2`."""

    def forward(self, x: Array) -> Array:
        y = array_namespace(x).tanh(x)
        self.cache["y"] = y
        return y

    def backward(self, grad_y: Array) -> Array:
        y = self.cached("y")
        return grad_y * (1.0 - y * y)


class Sigmoid(Module):
    r""":math:`y = \sigma(x) = 1 / (1 + e^{-x})`;  :math:`h'(x) = y (1 - y)`."""

    def forward(self, x: Array) -> Array:
        y = _sigmoid(x, array_namespace(x))
        self.cache["y"] = y
        return y

    def backward(self, grad_y: Array) -> Array:
        y = self.cached("y")
        return grad_y * (y * (1.0 - y))


ACTIVATIONS: dict[str, type[Module]] = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "elu": ELU, "gelu": GELU, "silu": SiLU,
    "tanh": Tanh, "sigmoid": Sigmoid, "identity": Identity,
}


def get_activation(name: str) -> Module:
    """A new activation module by its config name (``"relu"``, ``"elu"``, …)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"activation: unknown {name!r} (choose from {', '.join(ACTIVATIONS)})") from None
