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
    r"""Softmax over the last axis, :math:`y_{ic} = e^{z_{ic}} / \sum_k e^{z_{ik}}`.

    Backward is the seed's Jacobian-vector product (Question 1 e). With
    :math:`\partial y_{ic} / \partial z_{ij} = y_{ic} (\delta_{cj} - y_{ij})`, the sum over
    :math:`c` never forms the (C, C) Jacobian:

    .. math::

        \bar z_{ij} = \sum_c \bar y_{ic} \, y_{ic} (\delta_{cj} - y_{ij})
                    = y_{ij} \Big(\bar y_{ij} - \sum_c \bar y_{ic} \, y_{ic}\Big),
        \qquad
        \bar z = y \odot \left(\bar y - (\bar y \odot y) \mathbf{1} \mathbf{1}^\top\right)

    In the code: ``grad_z = y * (grad_y - sum(grad_y * y, axis=-1, keepdims=True))``, the
    row sums (N, 1) broadcast over (N, C).

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
