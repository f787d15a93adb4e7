"""Inverted dropout."""

from __future__ import annotations

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.module import Module


class Dropout(Module):
    r"""Zero each element with probability :math:`p` in training; identity in eval.

    Inverted dropout scales the kept elements by :math:`1 / (1 - p)` so the expected
    activation is the same in training and eval, and eval needs no rescaling. With
    :math:`u \sim U[0, 1)` drawn on the device, one draw per element:

    .. math::

        m = \frac{[u \ge p]}{1 - p}, \qquad y = x \odot m, \qquad \bar x = \bar y \odot m

    The mask comes from the module's backend random source (``backend.seed``).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p: dropout probability must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: Array) -> Array:
        if not self.training or self.p == 0.0:
            self.cache["mask"] = None
            return x
        xp = array_namespace(x)
        u = self.backend.uniform(tuple(x.shape), dtype=x.dtype)
        mask = xp.astype(u >= self.p, x.dtype) * (1.0 / (1.0 - self.p))
        self.cache["mask"] = mask
        return x * mask

    def backward(self, grad_y: Array) -> Array:
        mask = self.cached("mask")
        return grad_y if mask is None else grad_y * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
