"""Gradient clipping by the global L2 norm."""

from __future__ import annotations

from collections.abc import Iterable

from mlpframe.backend import Array, array_namespace
from mlpframe.nn.module import Parameter


def clip_grad_norm_(parameters: Iterable[Parameter] | Parameter, max_norm: float) -> Array:
    """Scale all gradients in place so that their joint L2 norm is at most ``max_norm``.

    ``torch.nn.utils.clip_grad_norm_`` with ``norm_type=2``::

        total_norm = sqrt(sum over parameters of sum(g ** 2))
        clip_coef  = min(1, max_norm / (total_norm + 1e-6))
        g         <- g * clip_coef            for every gradient

    The coefficient stays on the device (``xp.minimum``, no ``if``), so clipping
    never waits for the device; every gradient is multiplied, by exactly 1 when
    the norm is already small enough. Parameters whose ``grad`` is ``None`` are
    skipped. A non-finite norm is not checked (that would need a host sync): it
    propagates into the gradients, as in PyTorch by default.

    Returns:
        ``total_norm`` before clipping, a 0-d array on the gradients' device (a
        Python ``0.0`` if no parameter has a gradient).
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not max_norm >= 0:
        raise ValueError(f"max_norm: expected a number >= 0 (inf: measure only), got {max_norm!r}")
    max_norm = float(max_norm)
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    xp = array_namespace(grads[0])
    # per-row dot products (BLAS on the CPU), then a pairwise sum over the rows:
    # faster than sum(g * g) and as accurate in float32
    sq = [xp.sum(xp.vecdot(g, g)) if g.ndim else g * g for g in grads]
    total = sq[0]
    for s in sq[1:]:
        total = total + s
    total_norm = xp.asarray(xp.sqrt(total))  # NumPy reductions give scalars: keep a 0-d array
    clip_coef = max_norm / (total_norm + 1e-6)
    clip_coef = xp.minimum(clip_coef, xp.ones_like(clip_coef))
    for g in grads:
        # g = g · min(1, max_norm / (‖g‖ + 1e-6))
        g *= clip_coef if clip_coef.dtype == g.dtype else xp.astype(clip_coef, g.dtype)
    return total_norm
