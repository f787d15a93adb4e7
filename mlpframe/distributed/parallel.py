"""Data parallelism for the trainer: one object that the training loop consults.

:class:`DataParallel` holds the communicator and the current step's
:class:`~mlpframe.distributed.shard.BatchShard`. The trainer asks it to

* ``reduce_gradients(params)`` after backward: every parameter's gradient goes into
  one flat buffer, which is summed over the ranks in one reduction, and the sums
  are put back (the loss gradients were already weighted by each rank's rows, so
  the sum is the single-process gradient of the global batch);
* ``agree(flag)``: whether any rank was interrupted, so that all stop at the same step;
* ``accumulator(backend)``: metric sums reduced over the ranks when synced;
* ``evaluate(...)``: loss and accuracy over the evaluation set split over the ranks,
  from reduced sums and counts (never a mean of means).

It also builds the pieces that make a model, loss and loader data-parallel
(:meth:`prepare_model`, :meth:`wrap_loss`, :meth:`loader`) and broadcasts rank 0's
parameters at the start (:meth:`broadcast_parameters`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mlpframe.backend import Array, Backend, array_namespace
from mlpframe.distributed.comm import Communicator
from mlpframe.distributed.layers import convert_model
from mlpframe.distributed.shard import BatchShard, ShardedDataLoader, ShardedLoss
from mlpframe.engine.metrics import Accumulator, evaluate
from mlpframe.nn.module import Module, Parameter


class ReducedAccumulator(Accumulator):
    """An :class:`~mlpframe.engine.metrics.Accumulator` whose sums are summed over the ranks.

    The per-step updates stay local; :meth:`sync` and :meth:`state_dict` (the two
    places the host reads them) reduce loss sum, correct count, row count and the
    watched value in one host reduction, so every rank sees the global numbers.
    """

    __slots__ = ("comm",)

    def __init__(self, backend: Backend, comm: Communicator) -> None:
        self.comm = comm
        super().__init__(backend)

    def sync(self) -> tuple[float, int, int]:
        watching = self._watch is not None
        loss_sum, correct, n = super().sync()
        watched = self.watched if watching and self.watched is not None else 0.0
        total = self.comm.allreduce(np.array([loss_sum, correct, n, watched], dtype=np.float64))
        self.watched = float(total[3]) if watching else None
        return float(total[0]), int(round(total[1])), int(round(total[2]))

    def state_dict(self) -> dict[str, Any]:
        """The global unsynced sums, as the single process would hold them (a collective)."""
        batches = self.batches
        xp = self.backend.xp
        dtype = self.loss_sum.dtype if self.loss_sum is not None else None
        cdtype = self.correct.dtype if self.correct is not None else None
        loss_sum, correct, n = self.sync()
        if dtype is None:
            return {"loss_sum": None, "correct": None, "n": 0, "batches": batches}
        return {
            "loss_sum": self.backend.to_numpy(xp.asarray(loss_sum, dtype=dtype)),
            "correct": self.backend.to_numpy(xp.asarray(correct, dtype=cdtype)),
            "n": n,
            "batches": batches,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from saved global sums: rank 0 carries them, the others start from zero."""
        if self.comm.rank == 0:
            super().load_state_dict(state)
        else:
            super().load_state_dict({"loss_sum": None, "correct": None, "n": 0, "batches": state["batches"]})


class DataParallel:
    """The data-parallel side of one run: communicator, current shard, collectives."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm
        self.shard = BatchShard(comm)

    @property
    def is_root(self) -> bool:
        return self.comm.rank == 0

    # ------------------------------------------------------------- building
    def prepare_model(self, model: Module) -> Module:
        """Swap in synchronized BatchNorm and sharded dropout; same parameters, same names."""
        return convert_model(model, self.shard)

    def wrap_loss(self, criterion: Module) -> ShardedLoss:
        return ShardedLoss(criterion, self.shard)

    def loader(self, X: Any, y: Any, batch_size: int, backend: Backend, **kwargs: Any) -> ShardedDataLoader:
        """A loader over this rank's slice of every global batch of ``batch_size`` rows."""
        return ShardedDataLoader(X, y, batch_size, backend, shard=self.shard, **kwargs)

    def broadcast_parameters(self, model: Module) -> None:
        """Load rank 0's parameters and buffers on every rank (one host broadcast)."""
        if self.comm.size == 1:
            return
        state = model.state_dict()
        names = sorted(state)
        flat = np.concatenate([np.asarray(state[k], dtype=np.float64).reshape(-1) for k in names])
        flat = self.comm.broadcast(flat)
        out, offset = {}, 0
        for k in names:
            a = np.asarray(state[k])
            out[k] = flat[offset:offset + a.size].reshape(a.shape).astype(a.dtype)
            offset += a.size
        model.load_state_dict(out)

    # ------------------------------------------------------------ per step
    def reduce_gradients(self, params: Sequence[Parameter]) -> None:
        """Sum every gradient over the ranks: one flat buffer, one reduction.

        A parameter without a gradient (unused this step) contributes zeros.
        """
        if self.comm.size == 1 or not params:
            return
        xp = array_namespace(params[0].data)
        parts = []
        for p in params:
            g = p.grad if p.grad is not None else xp.zeros(tuple(p.data.shape), dtype=p.data.dtype,
                                                          device=p.data.device)
            parts.append(xp.reshape(g, (-1,)))
        flat = self.comm.allreduce(xp.concat(parts))
        offset = 0
        for p in params:
            size = 1
            for d in p.data.shape:
                size *= d
            p.grad = xp.reshape(flat[offset:offset + size], tuple(p.data.shape))
            offset += size

    def agree(self, flag: bool) -> bool:
        """True on every rank if any rank's ``flag`` is (an interrupt stops all ranks at one step)."""
        return self.comm.any(flag)

    def accumulator(self, backend: Backend) -> ReducedAccumulator:
        return ReducedAccumulator(backend, self.comm)

    def evaluate(self, model: Any, criterion: Any, batches: Iterable[tuple[Array, Array]], backend: Backend, *,
                 num_classes: int | None = None) -> dict[str, Any]:
        """:func:`mlpframe.engine.metrics.evaluate` over the ranks' slices: sums and counts reduced exactly."""
        return evaluate(model, criterion, batches, backend, num_classes=num_classes,
                        accumulator=self.accumulator(backend), reduce_counts=self.comm.allreduce)
