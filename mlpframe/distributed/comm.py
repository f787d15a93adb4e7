"""The communicator: the few collective operations data-parallel training needs.

Three implementations share one small interface:

* :class:`SingleProcess` — one process; every collective is the identity.
* :class:`MPICommunicator` — mpi4py over any MPI (MPICH from PyPI, the system's).
  Arrays of the NumPy backend are reduced in place with no copy; arrays of other
  backends go through the host (``backend.to_numpy``/``asarray``).
* :class:`NCCLCommunicator` — CuPy arrays reduced on the GPU by NCCL
  (``cupy.cuda.nccl``); NCCL's unique id is made on rank 0 and broadcast over MPI
  (ChainerMN's ``pure_nccl`` bootstrap), and everything on the host (objects,
  flags, barriers) still goes through MPI. CUDA-aware MPI is not required.

Array collectives take and return arrays of the caller's backend: ``allreduce``
sums over the ranks and returns an array of the same shape and dtype (it may be
the argument itself, reduced in place). ``any`` and ``bcast_object`` are host
operations. ``abort`` ends every rank of the job at once.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from mlpframe.backend import Array


class Communicator:
    """The interface (and the single-process implementation's docstrings)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    name: str = "single"

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce(self, x: Array) -> Array:
        """The elementwise sum of ``x`` over the ranks, same shape and dtype and device."""
        raise NotImplementedError

    def broadcast(self, x: np.ndarray, root: int = 0) -> np.ndarray:
        """Rank ``root``'s host array ``x`` on every rank (same shape and dtype on every rank)."""
        raise NotImplementedError

    def bcast_object(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s picklable ``obj`` on every rank."""
        raise NotImplementedError

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one (a host reduction)."""
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def abort(self, status: int = 1) -> None:
        """End every process of the job now with ``status`` (no cleanup)."""
        sys.stdout.flush()
        sys.stderr.flush()
        raise SystemExit(status)


class SingleProcess(Communicator):
    """One process: each collective returns its argument."""

    def allreduce(self, x: Array) -> Array:
        return x

    def broadcast(self, x: np.ndarray, root: int = 0) -> np.ndarray:
        return x

    def bcast_object(self, obj: Any, root: int = 0) -> Any:
        return obj

    def any(self, flag: bool) -> bool:
        return bool(flag)

    def barrier(self) -> None:
        pass


def _is_numpy(x: Any) -> bool:
    return isinstance(x, np.ndarray)


class MPICommunicator(Communicator):
    """Collectives over an mpi4py communicator (``MPI.COMM_WORLD`` by default).

    ``allreduce`` of a NumPy array is ``Allreduce(IN_PLACE, x, SUM)`` on the array
    itself (made contiguous first if it is not); other backends' arrays travel
    through the host, which is a device synchronisation on CuPy (use
    :class:`NCCLCommunicator` there).
    """

    name = "mpi"

    def __init__(self, comm: Any = None) -> None:
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # the rank among the processes of this node: which GPU this process takes
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()

    def allreduce(self, x: Array) -> Array:
        if self.size == 1:
            return x
        if _is_numpy(x):
            buf = x if x.flags.c_contiguous and x.flags.writeable else np.ascontiguousarray(x).copy()
            if buf.ndim == 0:  # MPI wants a buffer with at least one element slot
                buf = buf.reshape(1)
                self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
                return buf.reshape(())
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
            return buf
        from mlpframe.backend import backend_of

        be = backend_of(x)
        host = np.ascontiguousarray(be.to_numpy(x))  # host sync: this backend's arrays reduce on the host
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        return be.asarray(host)

    def broadcast(self, x: np.ndarray, root: int = 0) -> np.ndarray:
        buf = np.ascontiguousarray(x).copy()
        self.comm.Bcast(buf, root=root)
        return buf

    def bcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root)

    def any(self, flag: bool) -> bool:
        return bool(self.comm.allreduce(1 if flag else 0, op=self.MPI.MAX))

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, status: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(status)


class NCCLCommunicator(MPICommunicator):
    """CuPy arrays summed on the GPUs by NCCL; host collectives over MPI.

    Each rank takes its own device (``device``, by default its local rank): NCCL
    refuses two ranks on one GPU. The NCCL communicator is built once, from
    a unique id that rank 0 creates and broadcasts over MPI.
    """

    name = "nccl"

    _DTYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "float16": "NCCL_FLOAT16",
               "int32": "NCCL_INT32", "int64": "NCCL_INT64"}

    def __init__(self, comm: Any = None, device: int | None = None) -> None:
        super().__init__(comm)
        import cupy
        from cupy.cuda import nccl

        self.cupy, self.nccl = cupy, nccl
        # NCCL binds the communicator to the current device: this rank's (default: its local rank)
        cupy.cuda.Device(self.local_rank if device is None else device).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.comm.bcast(uid, root=0)
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    def allreduce(self, x: Array) -> Array:
        cupy, nccl = self.cupy, self.nccl
        if not isinstance(x, cupy.ndarray):
            return super().allreduce(x)
        if self.size == 1:
            return x
        buf = x if x.flags.c_contiguous else cupy.ascontiguousarray(x)
        dtype = getattr(nccl, self._DTYPES[str(buf.dtype)])
        stream = cupy.cuda.get_current_stream().ptr
        # in place: NCCL allows sendbuf == recvbuf
        self.nccl_comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, dtype, nccl.NCCL_SUM, stream)
        return buf

