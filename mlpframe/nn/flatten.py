"""Flatten: from feature maps to the feature vectors a Linear layer takes."""

from __future__ import annotations

import math

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.module import Module


class Flatten(Module):
    r"""(N, d_1, ..., d_k) -> (N, d_1 ... d_k) in row-major order, as PyTorch's ``nn.Flatten()``.

    Forward: ``y = x.reshape(N, -1)``; backward: ``grad_x = grad_y.reshape(x.shape)``.
    """

    def forward(self, x: Array) -> Array:
        if x.ndim < 2:
            raise ValueError(f"x: Flatten expects shape (N, ...), got {tuple(x.shape)}")
        shape = tuple(x.shape)
        self.cache["shape"] = shape
        return array_namespace(x).reshape(x, (shape[0], math.prod(shape[1:])))

    def backward(self, grad_y: Array) -> Array:
        return array_namespace(grad_y).reshape(grad_y, self.cached("shape"))
