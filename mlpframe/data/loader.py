"""DataLoader: mini-batches gathered on the backend's device from a split held there whole.

The split is copied to the device once (one ``backend.asarray`` each for ``X`` and
``y``). Each epoch the shuffle order is computed on the host, from
``numpy.random.default_rng([seed, epoch])`` alone, and copied to the device once;
every batch is then a device-side gather ``xp.take(X, idx, axis=0)``. No step
moves data between host and device, and the order of any epoch can be rebuilt
from ``(seed, epoch)``, which is what makes resuming at an epoch boundary exact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from mlpframe.backend import Array, Backend

log = logging.getLogger(__name__)


class DataLoader:
    """Iterate ``(xb, yb)`` batches of ``(X, y)`` on ``backend``'s device.

    Args:
        X: samples, host (NumPy) or device array, ``(N, ...)``; moved to the device as float32.
        y: integer class labels ``(N,)``; moved as int64.
        batch_size: samples per batch.
        backend: the :class:`~mlpframe.backend.Backend` the batches live on.
        shuffle: a new order every epoch (a pure function of ``seed`` and the epoch).
        drop_last: skip the last batch when it is smaller than ``batch_size``.
        seed: seeds the shuffle order.

    Each ``iter(loader)`` runs the current epoch (see :meth:`set_epoch`) and then
    advances it by one, so a plain ``for`` loop over epochs reshuffles even
    without ``set_epoch``; a trainer that resumes calls ``set_epoch(epoch)`` first.

    When the split does not fit in device memory it stays on the host and each
    batch is gathered there and copied over (logged once): slower, not wrong.
    """

    def __init__(
        self,
        X: Any,
        y: Any,
        batch_size: int,
        backend: Backend,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        self.backend = backend
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.epoch = 0
        self.num_samples = int(len(y))
        X_dev = None
        try:
            X_dev = backend.asarray(X, dtype="float32")
            self.X: Array = X_dev
            self.y: Array = backend.asarray(y, dtype="int64")
            self.on_device = True
        except MemoryError:  # CuPy's OutOfMemoryError is a MemoryError
            log.warning("the data set (%d samples) does not fit in device memory; batches are copied from the host",
                        self.num_samples)
            del X_dev
            self.__dict__.pop("X", None)
            backend.free_memory()
            self.X = np.ascontiguousarray(backend.to_numpy(X) if not isinstance(X, np.ndarray) else X,
                                          dtype=np.float32)
            self.y = np.ascontiguousarray(backend.to_numpy(y) if not isinstance(y, np.ndarray) else y,
                                          dtype=np.int64)
            self.on_device = False
        N, B = self.num_samples, self.batch_size
        end = N - N % B if self.drop_last else N
        # stops clipped to N: the array API leaves out-of-bounds slice ends unspecified (strict refuses them)
        self._bounds = [(i, min(i + B, N)) for i in range(0, end, B)]

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self._bounds)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` run epoch ``epoch`` (its shuffle order is fixed by ``seed`` and ``epoch``)."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The host permutation of sample indices used in ``epoch`` (identity without shuffling)."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_samples)

    def state_dict(self) -> dict[str, int]:
        """What fixes the next epoch's order: ``{"seed", "epoch"}``."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def __iter__(self) -> Iterator[tuple[Array, Array]]:
        epoch = self.epoch
        self.epoch += 1
        if not self.on_device:
            return self._host_batches(epoch)
        if not self.shuffle:
            return self._sliced_batches()
        return self._gathered_batches(epoch)

    def _sliced_batches(self) -> Iterator[tuple[Array, Array]]:
        # in order: contiguous views, no gather at all
        X, y = self.X, self.y
        for i, j in self._bounds:
            yield X[i:j, ...], y[i:j]  # the array API wants every axis indexed: "..."

    def _gathered_batches(self, epoch: int) -> Iterator[tuple[Array, Array]]:
        X, y = self.X, self.y
        take = self.backend.xp.take
        perm = self.backend.asarray(self.order(epoch))  # host -> device, once per epoch
        for i, j in self._bounds:
            idx = perm[i:j]
            yield take(X, idx, axis=0), take(y, idx, axis=0)

    def _host_batches(self, epoch: int) -> Iterator[tuple[Array, Array]]:
        X, y, be = self.X, self.y, self.backend
        perm = self.order(epoch)
        for i, j in self._bounds:
            idx = perm[i:j]
            yield be.asarray(X[idx]), be.asarray(y[idx])  # host -> device per batch: the data did not fit

    def __repr__(self) -> str:
        return (f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, backend={self.backend.name!r}, on_device={self.on_device})")
