"""Sliding windows over the spatial axes, shared by convolution and pooling.

A window layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d``
reads, for output position ``o`` and kernel offset ``i``, the padded input at
``o * s + i * d``. For a fixed offset ``i`` those positions form one strided
slice ``i*d : i*d + s*(L_out - 1) + 1 : s`` of the padded input: a view, no copy.
So every window op here is a Python loop over the K kernel offsets of
array-API slices (never over N, C or the positions), and its backward adds each
offset's gradient into the same strided slice of a zero buffer (``col2im``
without ``np.add.at``: overlapping windows simply add twice).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from mlpframe.backend import Array

Slices = tuple[slice, ...]


def as_tuple(name: str, value: int | Sequence[int], dims: int, minimum: int) -> tuple[int, ...]:
    """``value`` as ``dims`` ints (an int is repeated), each ``>= minimum``; ValueError naming ``name`` else."""
    values = (value,) * dims if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(values) != dims or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum for v in values):
        kind = "a positive int" if minimum == 1 else "an int >= 0"
        raise ValueError(f"{name}: expected {kind} or {dims} of them, got {value!r}")
    return values


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """``floor((L + 2p - d (k - 1) - 1) / s) + 1``: PyTorch's output length (``ceil_mode=False``)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def check_input(layer: str, x: Array, channels: int | None, dims: int, kernel: tuple[int, ...],
                padding: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial output shape for ``x`` (N, C, *spatial); ValueError naming ``layer`` and the expected shape."""
    axes = ("L",) if dims == 1 else ("H", "W")
    c = "C" if channels is None else str(channels)
    expected = f"(N, {c}, {', '.join(axes)})"
    if x.ndim != dims + 2 or (channels is not None and x.shape[1] != channels):
        raise ValueError(f"x: {layer} expects shape {expected}, got {tuple(x.shape)}")
    spatial = tuple(x.shape[2:])
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(L + 2 * p < s for L, p, s in zip(spatial, padding, span)):
        raise ValueError(f"x: {layer} with kernel span {span} and padding {padding} expects {expected} with "
                         f"{' x '.join(axes)} >= {tuple(s - 2 * p for s, p in zip(span, padding))}, "
                         f"got {tuple(x.shape)}")
    return spatial


def offsets(kernel: tuple[int, ...], out: tuple[int, ...], stride: tuple[int, ...],
            dilation: tuple[int, ...]) -> list[Slices]:
    """One tuple of spatial slices per kernel offset, in row-major kernel order (the weight's order)."""
    return [tuple(slice(i * d, i * d + s * (o - 1) + 1, s) for i, o, s, d in zip(pos, out, stride, dilation))
            for pos in itertools.product(*(range(k) for k in kernel))]


def pad(x: Array, padding: tuple[int, ...], value: float, xp) -> Array:
    """``x`` (..., *spatial) with ``padding`` elements of ``value`` on both sides of each spatial axis."""
    if not any(padding):
        return x
    dims = len(padding)
    lead, spatial = tuple(x.shape[:-dims]), tuple(x.shape[-dims:])
    out = xp.full((*lead, *(L + 2 * p for L, p in zip(spatial, padding))), value, dtype=x.dtype, device=x.device)
    out[(..., *(slice(p, p + L) for p, L in zip(padding, spatial)))] = x
    return out


def crop(x: Array, padding: tuple[int, ...]) -> Array:
    """Undo :func:`pad` (a view)."""
    if not any(padding):
        return x
    return x[(..., *(slice(p, x.shape[-len(padding) + i] - p) for i, p in enumerate(padding)))]
