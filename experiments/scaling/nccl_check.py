"""GPU check of the NCCL path (for a machine with CuPy and at least one NVIDIA GPU).

    python experiments/scaling/nccl_check.py                 # one process: one NCCL rank
    mpiexec -n 2 python experiments/scaling/nccl_check.py    # two GPUs: one rank each

On each rank (device = local rank) it builds the wide MLP's gradient (4.2 M
float32) on the GPU, reduces it once through :class:`NCCLCommunicator` and once
through :class:`MPICommunicator` (through the host), and checks that both give the
same sums; then it times both reductions and one data-parallel training step of
the wide MLP on CuPy with each communicator. One NCCL rank per GPU: NCCL refuses
two ranks on one device, so a one-GPU machine runs this with one process (the
reduction is then the identity for NCCL and still exercises its setup).
Rank 0 prints the results as JSON.
"""

from __future__ import annotations

import json
import time

import numpy as np


def main() -> None:
    import cupy

    from mlpframe import get_backend, nn, optim
    from mlpframe.distributed.comm import MPICommunicator, NCCLCommunicator
    from mlpframe.distributed.parallel import DataParallel

    mpi = MPICommunicator()
    be = get_backend("cupy", mpi.local_rank)
    nccl = NCCLCommunicator(mpi.comm, mpi.local_rank)
    n = 4_206_602
    host = np.random.default_rng(mpi.rank).normal(size=n).astype(np.float32)
    expected = mpi.allreduce(host.copy())
    got_nccl = cupy.asnumpy(nccl.allreduce(cupy.asarray(host)))
    got_mpi = cupy.asnumpy(mpi.allreduce(cupy.asarray(host)))
    out: dict = {"ranks": mpi.size, "device": mpi.local_rank,
                 "nccl_max_abs_diff": float(np.max(np.abs(got_nccl - expected))),
                 "mpi_max_abs_diff": float(np.max(np.abs(got_mpi - expected)))}
    assert out["nccl_max_abs_diff"] <= 1e-4 * max(1.0, float(np.max(np.abs(expected)))), out
    for name, comm in (("nccl", nccl), ("mpi", mpi)):
        buf = cupy.asarray(host)
        for _ in range(3):
            comm.allreduce(buf)
        cupy.cuda.Device().synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            buf = comm.allreduce(buf)
        cupy.cuda.Device().synchronize()
        out[f"{name}_allreduce_ms"] = (time.perf_counter() - t0) / 20 * 1e3
        dp = DataParallel(comm)
        model = dp.prepare_model(nn.MLP(3072, hidden=[1024, 1024], out_features=10, activation="relu",
                                        rng=np.random.default_rng(0)).to(be))
        crit = dp.wrap_loss(nn.CrossEntropyLoss())
        opt = optim.SGD(model.parameters(), lr=0.01)
        dp.shard.set(1024)
        rows = dp.shard.local_rows
        X = be.asarray(np.random.default_rng(1).normal(size=(rows, 3072)), dtype="float32")
        y = be.asarray(np.random.default_rng(2).integers(0, 10, size=rows), dtype="int64")
        for step in range(23):
            if step == 3:
                cupy.cuda.Device().synchronize()
                t0 = time.perf_counter()
            crit(model(X), y)
            opt.zero_grad()
            model.backward_params(crit.backward())
            dp.reduce_gradients(model.parameters())
            opt.step()
        cupy.cuda.Device().synchronize()
        out[f"{name}_step_ms"] = (time.perf_counter() - t0) / 20 * 1e3
    if mpi.rank == 0:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
