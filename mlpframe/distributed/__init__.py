"""Data-parallel training across processes: MPI between processes, NCCL between GPUs.

``mpiexec -n N python -m mlpframe train distributed=mpi ...`` trains the model that
one process trains with the same config: ``data.batch_size`` is the global batch,
each rank computes a contiguous slice of it, and the pieces here make the slices
add up to the single-process step exactly (see the README, "Across processes").

Modules: :mod:`.comm` (the communicator interface: single process, MPI, NCCL),
:mod:`.shard` (slices, sharded loader and loss), :mod:`.layers` (synchronized
BatchNorm, sharded dropout), :mod:`.parallel` (flat gradient reduction, reduced
metrics), :mod:`.launch` (run folder and launch checks), :mod:`.world` (ranks, MPI
start, exits that never hang).
"""

from mlpframe.distributed.world import is_quiet_rank, launcher_world

__all__ = ["is_quiet_rank", "launcher_world"]
