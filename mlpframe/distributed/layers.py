"""Layers whose training forward depends on the whole batch, in their data-parallel form.

:func:`convert_model` swaps them in for their single-process peers (keeping the
same Parameter objects, buffers and state-dict names, so a checkpoint does not
depend on the number of processes):

* :class:`SyncBatchNorm` for ``BatchNorm1d`` (and any BatchNorm over ``(N, C, ...)``
  named in :data:`BATCHNORMS`): the statistics of the global batch.
* :class:`ShardedDropout` for ``Dropout``: the global batch's mask, this rank's rows.

Everything else (Linear, activations, convolutions, pooling) is row-local and
needs nothing: its parameter gradients are sums over rows, which the gradient
reduction adds up.
"""

from __future__ import annotations

from collections.abc import Callable

from mlpframe import nn
from mlpframe.backend import Array, array_namespace
from mlpframe.distributed.shard import BatchShard
from mlpframe.nn.module import Module


class SyncBatchNorm(nn.BatchNorm1d):
    r"""BatchNorm whose training statistics are those of the global batch.

    ``x`` is this rank's slice, ``(n, C)`` or ``(n, C, *spatial)``; statistics are per
    channel over every axis but 1, i.e. over ``M = rows * prod(spatial)`` elements of
    the global batch. Forward (two sums reduced over the ranks, as the single
    process computes them: the mean first, then the centred squares)::

        mu  = allreduce(sum x) / M
        var = allreduce(sum (x - mu)^2) / M,   x_hat = (x - mu) / sqrt(var + eps)
        y   = gamma x_hat + beta

    Backward, with ``g = grad_y ⊙ gamma``; the two sums of the single-process
    formula are reduced in one buffer ``[sum grad_y, sum grad_y ⊙ x_hat]``
    (``sum g = gamma sum grad_y``)::

        grad_gamma = sum_local grad_y ⊙ x_hat        (summed over ranks by the gradient reduction)
        grad_beta  = sum_local grad_y
        grad_x     = (g - gamma S_y / M - x_hat ⊙ gamma S_yx / M) / sqrt(var + eps)

    Running statistics move as in :class:`~mlpframe.nn.BatchNorm1d`, with the
    unbiased variance of the global batch (``var M / (M - 1)``). Eval mode uses the
    running statistics and needs no communication. With one process this is
    ``BatchNorm1d`` exactly.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *, shard: BatchShard,
                 dtype: str = "float32") -> None:
        super().__init__(num_features, eps, momentum, dtype=dtype)
        self.shard = shard

    @classmethod
    def from_batchnorm(cls, bn: Module, shard: BatchShard) -> SyncBatchNorm:
        """A SyncBatchNorm that shares ``bn``'s parameters and buffers."""
        new = cls(bn.num_features, bn.eps, bn.momentum, shard=shard)
        new.weight, new.bias = bn.weight, bn.bias
        for name in bn._buffers:
            new.register_buffer(name, getattr(bn, name))
        new.backend, new.training = bn.backend, bn.training
        return new

    def _axes_and_shape(self, x: Array) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"x: expected shape (N, {self.num_features}, ...), got {tuple(x.shape)}")
        axes = (0, *range(2, x.ndim))
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)  # broadcasts a (C,) statistic over x
        return axes, shape

    def forward(self, x: Array) -> Array:
        xp = array_namespace(x)
        axes, shape = self._axes_and_shape(x)
        comm = self.shard.comm
        if self.training:
            per_row = 1
            for d in x.shape[2:]:
                per_row *= d
            M = self.shard.rows * per_row
            if M < 2:
                raise ValueError("x: BatchNorm needs at least 2 values per channel in training mode")
            mu = comm.allreduce(xp.sum(x, axis=axes)) / M  # (C,)
            centered = x - xp.reshape(mu, shape)
            var = comm.allreduce(xp.sum(centered * centered, axis=axes)) / M  # (C,)
            m = self.momentum
            self.running_mean *= 1.0 - m
            self.running_mean += m * mu
            self.running_var *= 1.0 - m
            self.running_var += (m * M / (M - 1)) * var
            self.cache["M"] = M
        else:
            centered = x - xp.reshape(self.running_mean, shape)
            var = self.running_var
        inv_std = xp.reshape(1.0 / xp.sqrt(var + self.eps), shape)
        x_hat = centered * inv_std
        self.cache["x_hat"], self.cache["inv_std"], self.cache["shape"] = x_hat, inv_std, shape
        return x_hat * xp.reshape(self.weight.data, shape) + xp.reshape(self.bias.data, shape)

    def backward(self, grad_y: Array) -> Array:
        xp = array_namespace(grad_y)
        x_hat, inv_std, shape = self.cached("x_hat"), self.cached("inv_std"), self.cached("shape")
        axes = (0, *range(2, grad_y.ndim))
        C = self.num_features
        sum_y = xp.sum(grad_y, axis=axes)  # (C,)
        sum_yx = xp.sum(grad_y * x_hat, axis=axes)  # (C,)
        self.bias.accumulate_grad(sum_y)
        self.weight.accumulate_grad(sum_yx)
        gamma = xp.reshape(self.weight.data, shape)
        if not self.training:
            return grad_y * gamma * inv_std
        sums = self.shard.comm.allreduce(xp.concat([sum_y, sum_yx]))  # (2C,): one reduction for both
        M = self.cached("M")
        mean_y = xp.reshape(sums[:C], shape) / M
        mean_yx = xp.reshape(sums[C:], shape) / M
        return (grad_y - mean_y - x_hat * mean_yx) * (gamma * inv_std)


class ShardedDropout(nn.Dropout):
    """Dropout whose mask is the global batch's, drawn from the stream all ranks share.

    Every rank draws the mask of the whole batch, ``(rows, *x.shape[1:])``, and keeps
    its rows ``[start, stop)``: the masks are the single process's, and every rank's
    random stream stays in the same state (a checkpoint's stream does not depend
    on the number of processes).
    """

    def __init__(self, p: float, shard: BatchShard) -> None:
        super().__init__(p)
        self.shard = shard

    def forward(self, x: Array) -> Array:
        if not self.training or self.p == 0.0:
            self.cache["mask"] = None
            return x
        xp = array_namespace(x)
        sh = self.shard
        u = self.backend.uniform((sh.rows, *x.shape[1:]), dtype=x.dtype)[sh.start:sh.stop, ...]
        mask = xp.astype(u >= self.p, x.dtype) * (1.0 / (1.0 - self.p))
        self.cache["mask"] = mask
        return x * mask


def _sync_batchnorm(m: Module, shard: BatchShard) -> Module:
    return SyncBatchNorm.from_batchnorm(m, shard)


def _sharded_dropout(m: Module, shard: BatchShard) -> Module:
    new = ShardedDropout(m.p, shard)
    new.backend, new.training = m.backend, m.training
    return new


# the layers to swap: a BatchNorm over (N, C, ...) of another dimensionality is one more entry
BATCHNORMS: tuple[str, ...] = ("BatchNorm1d", "BatchNorm2d")
_CONVERSIONS: dict[type, Callable[[Module, BatchShard], Module]] = {nn.Dropout: _sharded_dropout}
for _name in BATCHNORMS:
    if hasattr(nn, _name):
        _CONVERSIONS[getattr(nn, _name)] = _sync_batchnorm


def convert_model(model: Module, shard: BatchShard) -> Module:
    """Swap every whole-batch layer of ``model`` for its data-parallel form, in place; returns ``model``.

    Matched by exact type, so converted layers (subclasses) are left as they are.
    """
    for name, child in list(model.named_children()):
        convert = _CONVERSIONS.get(type(child))
        if convert is not None:
            _replace_child(model, name, convert(child, shard))
        else:
            convert_model(child, shard)
    return model


def _replace_child(parent: Module, name: str, new: Module) -> None:
    setattr(parent, name, new)
    layers = getattr(parent, "layers", None)
    if isinstance(layers, tuple):  # Sequential keeps its children in order in .layers too
        parent.layers = tuple(new if str(i) == name else m for i, m in enumerate(layers))
