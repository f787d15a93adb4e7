"""Which rows of each global batch this process computes, and the loss over them.

A global batch of ``B`` rows is cut into ``size`` contiguous slices whose sizes
differ by at most one (:func:`rank_slice`); rank ``r`` computes slice ``r``. Every
rank walks the same shuffled order (the loader's ``(seed, epoch)`` permutation), so
the slices of one step together are exactly the single-process batch.

:class:`BatchShard` is the one mutable record of the current step's slice. The
sharded loader sets it before it yields a batch; the layers that need the whole
batch (synchronized BatchNorm, sharded dropout) and the sharded loss read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlpframe.backend import Array, array_namespace
from mlpframe.data.loader import DataLoader
from mlpframe.distributed.comm import Communicator
from mlpframe.nn.module import Module


def rank_slice(rows: int, rank: int, size: int) -> tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s contiguous share of ``rows`` rows.

    The first ``rows % size`` ranks take one row more; a rank may get no row at all
    when ``rows < size``.
    """
    if not 0 <= rank < size:
        raise ValueError(f"rank: expected 0 <= rank < {size}, got {rank}")
    base, extra = divmod(int(rows), int(size))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass
class BatchShard:
    """The current step: the global batch has ``rows`` rows, this rank holds ``[start, stop)``."""

    comm: Communicator
    rows: int = 0
    start: int = 0
    stop: int = 0

    def set(self, rows: int) -> None:
        self.rows = int(rows)
        self.start, self.stop = rank_slice(rows, self.comm.rank, self.comm.size)

    @property
    def local_rows(self) -> int:
        return self.stop - self.start

    @property
    def weight(self) -> float:
        """This rank's share of the global batch, ``local_rows / rows``: a mean's gradient weight."""
        return self.local_rows / self.rows if self.rows else 0.0


class ShardedDataLoader(DataLoader):
    """A :class:`~mlpframe.data.DataLoader` that yields this rank's slice of each global batch.

    ``batch_size`` is the global batch; ``len(loader)`` is the number of global
    batches (the same on every rank). Before each batch is yielded, ``shard`` is set
    to that batch's slice. The gather reads only this rank's rows.
    """

    def __init__(self, *args: Any, shard: BatchShard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shard = shard
        comm = shard.comm
        self.global_bounds = self._bounds
        self._bounds = []
        for i, j in self.global_bounds:
            s, e = rank_slice(j - i, comm.rank, comm.size)
            self._bounds.append((i + s, i + e))

    def __iter__(self) -> Iterator[tuple[Array, Array]]:
        batches = super().__iter__()
        return self._with_shard(batches)

    def _with_shard(self, batches: Iterator[tuple[Array, Array]]) -> Iterator[tuple[Array, Array]]:
        for (i, j), batch in zip(self.global_bounds, batches):
            self.shard.set(j - i)
            yield batch


class ShardedLoss(Module):
    """A mean loss over this rank's rows whose gradient is weighted by the rank's share.

    ``forward`` returns the mean over the local rows (0 for a rank without rows,
    where a mean is undefined), so ``loss * local_rows`` summed over the ranks is the
    global batch's loss sum. ``backward`` returns the wrapped loss's gradient times
    ``local_rows / rows``: the gradient of the *global* mean with respect to this
    rank's rows, so the ranks' parameter gradients sum to the single-process one.
    """

    def __init__(self, loss: Module, shard: BatchShard) -> None:
        super().__init__()
        self.loss, self.shard = loss, shard

    def forward(self, inputs: Array, targets: Array) -> Array:
        xp = array_namespace(inputs)
        self.cache["inputs"] = inputs
        if inputs.shape[0] == 0:  # a global batch smaller than the number of ranks
            return xp.zeros((), dtype=inputs.dtype, device=inputs.device)
        return self.loss(inputs, targets)

    def backward(self, grad_y: Array | None = None) -> Array:
        inputs = self.cached("inputs")
        xp = array_namespace(inputs)
        if inputs.shape[0] == 0:
            return xp.zeros(tuple(inputs.shape), dtype=inputs.dtype, device=inputs.device)
        return self.loss.backward(self.shard.weight)

    def extra_repr(self) -> str:
        return repr(self.loss)
