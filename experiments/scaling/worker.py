"""One trial of the scaling benchmark: training steps of one model, timed (run by bench.py).

Run alone it is one process; under ``mpiexec -n N`` it is the data-parallel step of
``distributed=mpi`` (sharded batch, row-weighted loss, one flat gradient reduction,
SGD), with the time spent in the reduction measured apart. ``--comm-only`` times
``Allreduce`` of a buffer as large as the model's gradient, with nothing else
running: the communication limit. Rank 0 prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from mlpframe import get_backend, nn, optim
from mlpframe.distributed.comm import MPICommunicator, SingleProcess
from mlpframe.distributed.parallel import DataParallel

# name -> (builder, one example's shape); the classes are 10 for both
MODELS = {
    # the wide MLP of experiments/throughput: a 4.2 M-parameter gradient, large enough for the reduction to show
    "wide_mlp": (lambda rng: nn.MLP(3072, hidden=[1024, 1024], out_features=10, activation="relu", rng=rng,
                                    dtype="float32"), (3072,)),
    # the MNIST-1D paper's CNN (FACTS.md): 5.8 k parameters, the step is all convolution
    "mnist1d_cnn": (lambda rng: nn.CNN((1, 40), [25, 25, 25], out_features=10, kernel_size=[5, 3, 3], stride=2,
                                       padding=1, activation="relu", rng=rng, dtype="float32"), (1, 40)),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="wide_mlp", choices=sorted(MODELS))
    ap.add_argument("--batch", type=int, default=256, help="global batch")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--mpi", action="store_true", help="data parallel over MPI_COMM_WORLD")
    ap.add_argument("--comm-only", action="store_true")
    args = ap.parse_args()
    comm = MPICommunicator() if args.mpi or args.comm_only else SingleProcess()
    be = get_backend("numpy")
    build, example_shape = MODELS[args.model]
    model = build(np.random.default_rng(0))
    n_params = sum(p.data.size for p in model.parameters())
    if args.comm_only:
        buf = np.ones(n_params, dtype=np.float32)
        for _ in range(args.warmup):
            comm.allreduce(buf)
        comm.barrier()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            comm.allreduce(buf)
        dt = (time.perf_counter() - t0) / args.steps
        if comm.rank == 0:
            print(json.dumps({"allreduce_s": dt, "params": n_params, "processes": comm.size}))
        return
    dp = DataParallel(comm)
    model = dp.prepare_model(model)
    crit = dp.wrap_loss(nn.CrossEntropyLoss())
    opt = optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(args.batch, *example_shape)).astype(np.float32)
    y = rng.integers(0, 10, size=args.batch)
    dp.shard.set(args.batch)
    s, e = dp.shard.start, dp.shard.stop
    xb, yb = X[s:e], y[s:e]
    params = model.parameters()
    reduce_time = 0.0
    comm.barrier()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            comm.barrier()
            t0, reduce_time = time.perf_counter(), 0.0
        loss = crit(model(xb), yb)
        opt.zero_grad()
        model.backward_params(crit.backward())
        t1 = time.perf_counter()
        dp.reduce_gradients(params)
        reduce_time += time.perf_counter() - t1
        opt.step()
        float(loss)
    comm.barrier()
    total = time.perf_counter() - t0
    if comm.rank == 0:
        print(json.dumps({"samples_per_s": args.batch * args.steps / total, "step_s": total / args.steps,
                          "reduce_share": reduce_time / total, "reduce_s": reduce_time / args.steps,
                          "params": n_params, "processes": comm.size}))


if __name__ == "__main__":
    main()
