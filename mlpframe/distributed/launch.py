"""Starting a run under ``mpiexec``/``srun``: one run folder, one voice, no hang.

``prepare_argv`` runs before Hydra composes the config. For ``distributed=mpi``
it starts MPI, lets rank 0 fix the run folder's time stamp and broadcasts it
(each rank resolving Hydra's ``${now:...}`` itself would make one folder per
rank), and gives the other ranks no Hydra outputs of their own (no ``.hydra/``,
no log file, no console log): rank 0 alone writes the run folder.

``setup`` turns the composed config into a :class:`DataParallel` (or ``None``
for ``distributed=none``). Once MPI runs, an exception on any rank aborts the
whole job (see :mod:`.world`), so a failing rank never leaves the others waiting.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from mlpframe.distributed.parallel import DataParallel
from mlpframe.distributed.world import launcher_world, mpi_world
log = logging.getLogger("mlpframe")


def _choice_in_argv(argv: list[str]) -> str | None:
    for arg in argv:
        m = re.fullmatch(r"\+{0,2}distributed=(\w+)", arg)
        if m:
            return m.group(1)
    return None


def prepare_argv(argv: list[str], run_dir_pattern: str) -> list[str]:
    """The Hydra overrides this process adds to ``argv`` for a ``distributed=mpi`` run.

    ``run_dir_pattern`` is the config's raw ``hydra.run.dir`` (``outputs/${now:...}``).
    Nothing changes for other runs, nor when the user sets ``hydra.run.dir`` or runs
    a sweep (``-m``: refused later by :func:`setup`).
    """
    if _choice_in_argv(argv[1:]) != "mpi" or any(a in ("-m", "--multirun") for a in argv[1:]):
        return argv
    comm = _mpi_world()
    extra = []
    if not any(re.match(r"\+{0,2}hydra\.run\.dir=", a) for a in argv[1:]):
        stamp = comm.bcast_object(datetime.now() if comm.rank == 0 else None)
        run_dir = re.sub(r"\$\{now:([^}]*)\}", lambda m: stamp.strftime(m.group(1)), run_dir_pattern)
        extra.append(f"hydra.run.dir={run_dir}")
    if comm.rank != 0:
        # no .hydra/, no train.log; errors only on the console (rank 0 logs the run)
        extra += ["hydra.output_subdir=null", "~hydra.job_logging.handlers.file",
                  "hydra.job_logging.root.handlers=[console]", "hydra.job_logging.root.level=ERROR",
                  "hydra/hydra_logging=disabled"]
    return [*argv, *extra]


def _mpi_world() -> Any:
    """:func:`~mlpframe.distributed.world.mpi_world`, with a missing mpi4py as a user error."""
    try:
        return mpi_world()
    except ImportError:
        from mlpframe.cli.common import UserError

        raise UserError("distributed=mpi needs mpi4py and an MPI: pip install 'mlpframe[mpi]' "
                        "(mpi4py and mpich)") from None


def setup(distributed: Any, backend: Any, *, multirun: bool) -> DataParallel | None:
    """The run's :class:`DataParallel` for ``distributed.name=mpi``, else None (after checking the launch).

    ``distributed`` and ``backend`` are the run's config sections (``DistributedConfig``,
    ``BackendConfig`` of :mod:`mlpframe.cli.config`).

    Raises :class:`~mlpframe.cli.common.UserError` for a many-process launch of a
    single-process config, and for a sweep under MPI.
    """
    from mlpframe.cli.common import UserError

    _, size = launcher_world()
    name = distributed.name
    if name == "none":
        if size > 1:
            raise UserError(f"this command runs as {size} processes (mpiexec/srun) but distributed=none: add "
                            "distributed=mpi to train one model across them, or start one process")
        return None
    if multirun:
        raise UserError("distributed=mpi trains one run across processes; it does not run sweeps (-m): "
                        "sweep with Hydra's launchers and one process per job")
    world = _mpi_world()
    if world.size != size:  # e.g. srun without an MPI plugin: every task starts an MPI of its own
        raise UserError(f"the launcher started {size} processes but MPI joined {world.size} of them: under "
                        "Slurm start the tasks with srun --mpi=pmi2 (MPICH), or use mpiexec")
    limit_blas_threads(world)
    comm = world
    if backend.name == "cupy" and distributed.gpu_reduce == "nccl" and world.size > 1:
        from mlpframe.distributed.comm import NCCLCommunicator

        comm = NCCLCommunicator(world.comm, device_for_rank(backend, distributed))
    return DataParallel(comm)


BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(comm: Any) -> None:
    """Share the node's cores among its ranks: ``cpu_count // ranks on this node`` BLAS threads each.

    N processes each running a BLAS pool as wide as the machine oversubscribe it many
    times over (BLAS threads spin while they wait); a thread count the user set in
    the environment is left alone. Needs threadpoolctl (in the ``mpi`` extra).
    """
    if comm.local_size == 1 or any(v in os.environ for v in BLAS_THREAD_VARS):
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.warning("threadpoolctl is missing: each of the %d processes on this node uses every core for BLAS; "
                    "set OMP_NUM_THREADS or pip install threadpoolctl", comm.local_size)
        return
    threadpool_limits(max(1, (os.cpu_count() or 1) // comm.local_size), user_api="blas")


def device_for_rank(backend: Any, distributed: Any) -> int | None:
    """``backend.device``, or under ``distributed=mpi`` on CuPy the rank's local rank (one GPU each)."""
    if backend.device is not None or distributed.name != "mpi" or backend.name != "cupy":
        return backend.device
    return _mpi_world().local_rank


def run_dir_pattern(config_dir: str) -> str:
    """The raw ``hydra.run.dir`` of ``train.yaml`` (with its ``${now:...}`` unresolved)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.load(Path(config_dir) / "train.yaml")
    return str(OmegaConf.to_container(raw, resolve=False)["hydra"]["run"]["dir"])
