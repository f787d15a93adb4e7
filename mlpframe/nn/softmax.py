"""Softmax over the last axis."""

from __future__ import annotations

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.module import Module


def softmax(z: Array, xp) -> Array:
    """``exp(z) / sum(exp(z))`` along the last axis.

    Subtracting the row maximum first leaves the result unchanged (the factor
    ``exp(-max)`` cancels) and keeps ``exp`` from overflowing.
    """
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    e /= xp.sum(e, axis=-1, keepdims=True)
    return e


def log_softmax(z: Array, xp) -> Array:
    """``z - logsumexp(z)`` along the last axis, computed stably."""
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


class Softmax(Module):
    r"""``y_ic = exp(z_ic) / sum_k exp(z_ik)`` over the last axis.

    Backward is the seed's Jacobian-vector product (Question 1 e),
    ``dy_ic/dz_ij = y_ic (delta_cj - y_ij)``, which never forms the (C, C) Jacobian::

        grad_z = y ⊙ (grad_y - (grad_y ⊙ y) 1 1^T)   # row sums broadcast: (N, C)

    Shapes: ``z`` (N, C) -> ``y`` (N, C).
    """

    def forward(self, z: Array) -> Array:
        y = softmax(z, array_namespace(z))
        self.cache["y"] = y
        return y

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        y = self.cached("y")
        return y * (grad_y - xp.sum(grad_y * y, axis=-1, keepdims=True))  # (N, C) - (N, 1)
