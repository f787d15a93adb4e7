"""Batch and layer normalisation."""

from __future__ import annotations

import math

from mlpframe.backend import Array, array_namespace
from mlpframe.nn import init as initializers
from mlpframe.nn.module import Module, Parameter


def _scale_shift_backward(layer: Module, grad_y: Array, x_hat: Array, xp, axes: tuple[int, ...] = (0,),
                          param_shape: tuple[int, ...] | None = None) -> Array:
    """Add ``grad_gamma``, ``grad_beta`` of ``y = gamma x_hat + beta``; return ``g = grad_y ⊙ gamma``.

    ``axes``: the axes summed over (all but the feature axis); ``param_shape``: gamma's broadcast shape.
    """
    layer.weight.accumulate_grad(xp.sum(grad_y * x_hat, axis=axes))
    layer.bias.accumulate_grad(xp.sum(grad_y, axis=axes))
    gamma = layer.weight.data if param_shape is None else xp.reshape(layer.weight.data, param_shape)
    return grad_y * gamma


def _normalize_backward(g: Array, x_hat: Array, inv_std: Array, axis: int | tuple[int, ...], xp) -> Array:
    """``grad_x`` of ``x_hat = (x - mean(x)) / sqrt(var(x) + eps)``, both statistics over ``axis``."""
    mean_g = xp.mean(g, axis=axis, keepdims=True)
    mean_gx = xp.mean(g * x_hat, axis=axis, keepdims=True)
    return (g - mean_g - x_hat * mean_gx) * inv_std


def _check_features(num_features: int, eps: float) -> None:
    if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
        raise ValueError(f"num_features: expected a positive int, got {num_features!r}")
    if not eps > 0:
        raise ValueError(f"eps: expected > 0, got {eps!r}")


class _BatchNorm(Module):
    r"""Normalise each channel over the batch (and the spatial axes), then scale and shift.

    Training, per channel c, over the M = N x (spatial size) values of that channel::

        mu = mean(x),  var = mean((x - mu)^2),  x_hat = (x - mu) / sqrt(var + eps)
        y = gamma x_hat + beta

    and the running statistics move towards the batch's, with the *unbiased*
    variance as in PyTorch: ``running_var = (1 - m) running_var + m var M / (M - 1)``.

    Backward (training), with ``g = grad_y ⊙ gamma`` and means over the same M values::

        grad_gamma = sum grad_y ⊙ x_hat
        grad_beta  = sum grad_y
        grad_x     = (g - mean(g) - x_hat ⊙ mean(g ⊙ x_hat)) / sqrt(var + eps)

    In eval mode the running statistics are constants: ``grad_x = grad_y ⊙ gamma / sqrt(running_var + eps)``.

    Parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros); buffers
    ``running_mean`` (zeros), ``running_var`` (ones); all (num_features,).
    """

    ranks: tuple[int, ...] = ()  # the input ranks accepted, set by the subclass
    shapes = ""  # the accepted shapes, for the error message

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 rng: initializers.RngLike = None, dtype: str = "float32") -> None:
        super().__init__()
        _check_features(num_features, eps)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a value in [0, 1], got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, float(eps), float(momentum)
        self.weight = Parameter(initializers.ones((num_features,), dtype))
        self.bias = Parameter(initializers.zeros((num_features,), dtype))
        self.register_buffer("running_mean", initializers.zeros((num_features,), dtype))
        self.register_buffer("running_var", initializers.ones((num_features,), dtype))

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        C = self.num_features
        if x.ndim not in self.ranks or x.shape[1] != C:
            raise ValueError(f"x: {type(self).__name__} expects shape {self.shapes.format(C=C)}, "
                             f"got {tuple(x.shape)}")
        axes = (0, *range(2, x.ndim))  # every axis but the channel's
        shape = (1, C, *(1,) * (x.ndim - 2))  # a (C,) vector broadcast over them
        if self.training:
            M = math.prod(x.shape) // C
            if M < 2:
                raise ValueError(f"x: {type(self).__name__} needs at least 2 values per channel in training mode, "
                                 f"got {tuple(x.shape)}")
            mu = xp.mean(x, axis=axes, keepdims=True)
            centered = x - mu  # (N, C, ...)
            var = xp.mean(centered * centered, axis=axes, keepdims=True)
            m = self.momentum
            self.running_mean *= 1.0 - m
            self.running_mean += m * xp.reshape(mu, (C,))
            self.running_var *= 1.0 - m
            self.running_var += (m * M / (M - 1)) * xp.reshape(var, (C,))
        else:
            centered = x - xp.reshape(self.running_mean, shape)
            var = xp.reshape(self.running_var, shape)
        inv_std = 1.0 / xp.sqrt(var + self.eps)  # (1, C, 1...)
        x_hat = centered * inv_std
        self.cache.update(x_hat=x_hat, inv_std=inv_std, axes=axes, shape=shape)
        return x_hat * xp.reshape(self.weight.data, shape) + xp.reshape(self.bias.data, shape)

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        x_hat, inv_std, axes = self.cached("x_hat"), self.cached("inv_std"), self.cached("axes")
        g = _scale_shift_backward(self, grad_y, x_hat, xp, axes, self.cached("shape"))
        if not self.training:
            return g * inv_std
        return _normalize_backward(g, x_hat, inv_std, axes, xp)  # statistics over the batch

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features, or of (N, C, L) sequences per channel over N and L."""

    __doc__ += _BatchNorm.__doc__
    ranks = (2, 3)
    shapes = "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) feature maps, per channel over N, H and W."""

    __doc__ += _BatchNorm.__doc__
    ranks = (4,)
    shapes = "(N, {C}, H, W)"


class LayerNorm(Module):
    r"""Normalise each row over its D features, then scale and shift (same in train and eval).

    ``x_hat = (x - mean_d(x)) / sqrt(var_d(x) + eps)``, ``y = gamma x_hat + beta``.

    Backward, with ``g = grad_y ⊙ gamma``::

        grad_gamma = sum_n grad_y ⊙ x_hat
        grad_beta  = sum_n grad_y
        grad_x     = (g - mean_d(g) - x_hat ⊙ mean_d(g ⊙ x_hat)) / sqrt(var + eps)   # row-wise

    Shapes: x (N, num_features); ``weight`` ones, ``bias`` zeros, both (num_features,).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, *,
                 rng: initializers.RngLike = None, dtype: str = "float32") -> None:
        super().__init__()
        _check_features(num_features, eps)
        self.num_features, self.eps = num_features, float(eps)
        self.weight = Parameter(initializers.ones((num_features,), dtype))
        self.bias = Parameter(initializers.zeros((num_features,), dtype))

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"x: expected shape (N, {self.num_features}), got {tuple(x.shape)}")
        centered = x - xp.mean(x, axis=-1, keepdims=True)  # (N, D)
        inv_std = 1.0 / xp.sqrt(xp.mean(centered * centered, axis=-1, keepdims=True) + self.eps)  # (N, 1)
        x_hat = centered * inv_std
        self.cache["x_hat"], self.cache["inv_std"] = x_hat, inv_std
        return x_hat * self.weight.data + self.bias.data

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        x_hat, inv_std = self.cached("x_hat"), self.cached("inv_std")
        g = _scale_shift_backward(self, grad_y, x_hat, xp)
        return _normalize_backward(g, x_hat, inv_std, -1, xp)  # statistics over each row

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"
