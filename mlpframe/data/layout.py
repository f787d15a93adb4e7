"""How a model reads one example: its array layout, and the fixed shuffle of positions.

Every data set loads in its *natural* shape: a 1-d signal as ``(N, L)`` (MNIST-1D,
the spirals), images as ``(N, C, H, W)``. A model asks for one of three layouts:

``flat``      ``(N, D)`` rows, ``D`` the product of the natural shape (an MLP);
``channels``  ``(N, C, L)`` or ``(N, C, H, W)``: a signal gets one channel (a CNN);
``sequence``  ``(N, T, F)``: a signal is ``T = L`` steps of one feature, an image
              ``T = H`` rows of ``W * C`` features (pixel-major) (a GRU or LSTM).

``shuffle_positions`` permutes the positions (the ``L`` samples of a signal, the
``H * W`` pixels of an image, all channels of a pixel together) by one permutation
drawn from ``seed``, the same for every split: the MNIST-1D paper's "shuffled" row,
which removes the spatial order a CNN or a GRU relies on and leaves an MLP unchanged.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mlpframe.data.dataset import Dataset, Split
from mlpframe.data.errors import DataError

LAYOUTS = ("flat", "channels", "sequence")


def _channels_first(x: np.ndarray) -> np.ndarray:
    """The natural shape with a channel axis: ``(N, L) -> (N, 1, L)``; images unchanged."""
    if x.ndim == 2:
        return x[:, None, :]
    return x


def arrange_array(x: np.ndarray, layout: str) -> np.ndarray:
    """``x`` in its natural shape -> the ``layout`` a model reads (a view where possible)."""
    if layout == "flat":
        return x.reshape(len(x), math.prod(x.shape[1:]))  # (not -1: an empty split has no size to infer)
    if layout == "channels":
        return _channels_first(x)
    if layout == "sequence":
        x = _channels_first(x)  # (N, C, L) or (N, C, H, W)
        if x.ndim == 3:
            return np.ascontiguousarray(x.transpose(0, 2, 1))  # (N, L, C)
        N, C, H, W = x.shape
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(N, H, W * C)  # rows of pixels
    raise DataError(f"layout={layout!r} is not one of {', '.join(LAYOUTS)}")


def arrange(ds: Dataset, layout: str) -> Dataset:
    """Every split of ``ds`` (natural shape) in ``layout``."""
    if layout not in LAYOUTS:
        raise DataError(f"layout={layout!r} is not one of {', '.join(LAYOUTS)}")

    def one(split: Split) -> Split:
        x, y = split
        return arrange_array(x, layout), y

    return dataclasses.replace(ds, train=one(ds.train), val=one(ds.val), test=one(ds.test))


def position_permutation(ds: Dataset, seed: int) -> np.ndarray:
    """The permutation of ``ds``'s positions drawn from ``seed`` (depends on nothing else)."""
    shape = ds.train[0].shape[1:]
    positions = int(np.prod(shape[1:])) if len(shape) == 3 else int(np.prod(shape))
    return np.random.default_rng(seed).permutation(positions)


def shuffle_positions(ds: Dataset, seed: int) -> Dataset:
    """``ds`` (natural shape) with its positions permuted by :func:`position_permutation`, every split alike."""
    perm = position_permutation(ds, seed)

    def one(split: Split) -> Split:
        x, y = split
        if x.ndim == 4:  # (N, C, H, W): move pixels, keeping each pixel's channels together
            N, C, H, W = x.shape
            return np.ascontiguousarray(x.reshape(N, C, H * W)[:, :, perm].reshape(N, C, H, W)), y
        flat = x.reshape(len(x), math.prod(x.shape[1:]))
        return np.ascontiguousarray(flat[:, perm]).reshape(x.shape), y

    return dataclasses.replace(ds, train=one(ds.train), val=one(ds.val), test=one(ds.test))
