"""The job's processes as the launcher sees them, and MPI started once.

Import-light on purpose: :func:`launcher_world` reads the rank and process count
that ``mpiexec``/``srun`` put in the environment without importing MPI, so a
command that fails before MPI starts still prints its error on rank 0 alone.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from typing import Any

_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS")
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")
# how long a process that leaves with an error waits for the others before it ends the job
EXIT_GRACE_S = 10.0

_WORLD: Any = None


def launcher_world() -> tuple[int, int]:
    """``(rank, size)`` as the process launcher set them; ``(0, 1)`` when started alone.

    ``SLURM_NTASKS`` counts only inside a job step (``srun``, ``SLURM_STEP_ID`` set):
    a batch script's own shell is one process even in a many-task allocation.
    """
    env = os.environ
    for size_var, rank_var in zip(_SIZE_VARS, _RANK_VARS):
        if size_var == "SLURM_NTASKS" and "SLURM_STEP_ID" not in env:
            continue
        if size_var in env and rank_var in env:
            try:
                return int(env[rank_var]), int(env[size_var])
            except ValueError:
                continue
    return 0, 1


def is_quiet_rank() -> bool:
    """True on every process but rank 0: a user error is printed by rank 0 alone."""
    return launcher_world()[0] != 0


def mpi_world() -> Any:
    """The job's :class:`~mlpframe.distributed.comm.MPICommunicator` (MPI starts on the first call).

    From then on an uncaught exception on any rank prints its traceback and aborts
    the whole job, so no rank is left waiting in a collective. Raises
    ``ImportError`` when mpi4py is missing.
    """
    global _WORLD
    if _WORLD is None:
        from mlpframe.distributed.comm import MPICommunicator

        _WORLD = MPICommunicator()
        _install_abort_on_error(_WORLD)
    return _WORLD


def started_world() -> Any:
    """The MPI communicator if MPI was started in this process, else None."""
    return _WORLD


def _install_abort_on_error(comm: Any) -> None:
    if comm.size == 1:
        return

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if issubclass(kind, (KeyboardInterrupt, SystemExit)):
            return sys.__excepthook__(kind, value, tb)
        print(f"[rank {comm.rank}] ", end="", file=sys.stderr)
        traceback.print_exception(kind, value, tb, file=sys.stderr)
        comm.abort(1)

    sys.excepthook = hook


def guard_exit(status: int) -> None:
    """Before this process leaves with ``status``: if the other ranks do not leave too
    within :data:`EXIT_GRACE_S` (an error only this rank saw, the others waiting in a
    collective), end the job with ``status`` instead of hanging.

    When every rank leaves together (an error in the shared config) the timer never fires.
    """
    comm = _WORLD
    if comm is None or comm.size == 1:
        return
    timer = threading.Timer(EXIT_GRACE_S, comm.abort, (status,))
    timer.daemon = True
    timer.start()
