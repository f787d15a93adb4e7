"""A layer mlpframe does not have: a learned gain per feature."""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace

from mlpframe.nn import Module, Parameter


class Gain(Module):
    r"""``y = x * g``, one learned gain per feature.

    Backward, with ``grad_y = dL/dy``::

        grad_x = grad_y * g              # (N, D) * (D,) -> (N, D)
        grad_g = sum_n grad_y[n] * x[n]  # (D,)

    Shapes: ``x`` (N, D) -> ``y`` (N, D). ``g`` starts at one.
    """

    def __init__(self, num_features: int, *, dtype: str = "float32") -> None:
        super().__init__()
        self.gain = Parameter(np.ones((num_features,), dtype=dtype))

    def forward(self, x):
        self.cache["x"] = x
        return x * self.gain.data

    def backward(self, grad_y):
        self.backward_params(grad_y)
        return grad_y * self.gain.data

    def backward_params(self, grad_y):
        xp = array_namespace(grad_y)
        self.gain.accumulate_grad(xp.sum(grad_y * self.cached("x"), axis=0))
