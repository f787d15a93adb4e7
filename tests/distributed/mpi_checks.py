"""Checks that need real MPI ranks: run as ``mpiexec -n N python -m tests.distributed.mpi_checks``.

Every rank computes the single-process reference itself (same seed, whole batch)
and compares its own slice and the reduced gradients with it, in float64. Each
rank prints ``ok <rank>`` at the end; any failure raises (and aborts the job).
"""

from __future__ import annotations

import numpy as np

from mlpframe import get_backend, nn
from mlpframe.distributed.comm import MPICommunicator
from mlpframe.distributed.parallel import DataParallel
from mlpframe.distributed.shard import rank_slice
from mlpframe.engine.metrics import evaluate

TOL = dict(rtol=1e-10, atol=1e-12)


def check_communicator(comm: MPICommunicator) -> None:
    """The interface's contract: sums, shapes, dtypes, 0-d, broadcast, any, objects."""
    r, n = comm.rank, comm.size
    for dtype in (np.float32, np.float64, np.int64):
        x = np.arange(6, dtype=dtype).reshape(2, 3) * (r + 1)
        y = comm.allreduce(x)
        assert y.shape == (2, 3) and y.dtype == dtype, (y.shape, y.dtype)
        np.testing.assert_array_equal(y, np.arange(6, dtype=dtype).reshape(2, 3) * (n * (n + 1) // 2))
    z = comm.allreduce(np.asarray(float(r), dtype=np.float64))
    assert z.shape == () and float(z) == n * (n - 1) / 2
    t = comm.allreduce(np.arange(4.0)[::2])  # a non-contiguous view
    np.testing.assert_array_equal(t, np.array([0.0, 2.0]) * n)
    b = comm.broadcast(np.full(3, r, dtype=np.float64))
    np.testing.assert_array_equal(b, np.zeros(3))
    assert comm.bcast_object({"rank": r})["rank"] == 0
    assert comm.any(r == n - 1) is True and comm.any(False) is False
    strict = get_backend("array_api_strict")
    s = comm.allreduce(strict.asarray(np.ones(3) * r, dtype="float64"))
    np.testing.assert_array_equal(strict.to_numpy(s), np.full(3, n * (n - 1) / 2))


def check_batchnorm(dp: DataParallel, rows: int, shape_tail: tuple[int, ...] = ()) -> None:
    """SyncBatchNorm on this rank's slice == BatchNorm1d/2d on the whole batch (float64):
    (N, C), (N, C, L) and (N, C, H, W), statistics per channel over N and the spatial axes."""
    C = 5
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, C, *shape_tail)) * 3 + 1
    gy = rng.normal(size=x.shape)
    peer = nn.BatchNorm2d if len(shape_tail) == 2 else nn.BatchNorm1d
    ref = peer(C, dtype="float64")
    ref.weight.data = rng.normal(size=C)
    ref.bias.data = rng.normal(size=C)
    y_ref = ref(x)
    gx_ref = ref.backward(gy)
    bn = peer(C, dtype="float64")
    bn.weight.data, bn.bias.data = ref.weight.data.copy(), ref.bias.data.copy()
    model = dp.prepare_model(nn.Sequential(bn))
    assert type(model[0]).__name__ == "SyncBatchNorm"
    dp.shard.set(rows)
    s, e = dp.shard.start, dp.shard.stop
    y = model(x[s:e])
    gx = model.backward(gy[s:e])
    np.testing.assert_allclose(y, y_ref[s:e], **TOL)
    np.testing.assert_allclose(gx, gx_ref[s:e], **TOL)
    sync = model[0]
    dp.reduce_gradients(sync.parameters())
    np.testing.assert_allclose(sync.weight.grad, ref.weight.grad, **TOL)
    np.testing.assert_allclose(sync.bias.grad, ref.bias.grad, **TOL)
    np.testing.assert_allclose(sync.running_mean, ref.running_mean, **TOL)
    np.testing.assert_allclose(sync.running_var, ref.running_var, **TOL)


def mnist1d_cnn(norm: str | None) -> nn.CNN:
    """The MNIST-1D paper's CNN (three Conv1d of 25 channels, stride 2, ReLU, flatten, Linear), float64."""
    return nn.CNN((1, 40), [25, 25, 25], out_features=10, kernel_size=[5, 3, 3], stride=2, padding=1,
                  activation="relu", norm=norm, rng=np.random.default_rng(0), dtype="float64")


def check_mnist1d_cnn(dp: DataParallel, norm: str | None, rows: int = 300, batch: int = 50,
                      epochs: int = 2) -> None:
    """Two epochs of the paper's recipe (Adam 1e-2) on MNIST-1D through the Trainer: the parameters on
    N processes equal the single process's to 1e-9 (batches of 50: slices of 17/17/16 on 3 ranks)."""
    from mlpframe import optim
    from mlpframe.data import DataLoader
    from mlpframe.data.mnist1d import generate_mnist1d
    from mlpframe.engine import Trainer

    comm, be = dp.comm, get_backend("numpy")
    data = comm.bcast_object(generate_mnist1d() if comm.rank == 0 else None)  # generated once
    X, y = data["x"][:rows].reshape(rows, 1, 40), data["y"][:rows]  # (N, C=1, L=40)

    def fit(model, crit, loader, parallel):
        opt = optim.Adam(model.parameters(), lr=1e-2)
        be.seed(0)
        result = Trainer(model, crit, opt, be, max_epochs=epochs, seed=0, log_every_n_steps=3,
                         parallel=parallel).fit(loader)
        assert result.status == "completed", result.message
        return model.state_dict()

    ref = fit(mnist1d_cnn(norm), nn.CrossEntropyLoss(), DataLoader(X, y, batch, be, shuffle=True, drop_last=True),
              None)
    model = dp.prepare_model(mnist1d_cnn(norm))
    dp.broadcast_parameters(model)
    got = fit(model, dp.wrap_loss(nn.CrossEntropyLoss()), dp.loader(X, y, batch, be, shuffle=True, drop_last=True),
              dp)
    assert got.keys() == ref.keys()
    moved = max(float(np.max(np.abs(ref[k] - mnist1d_cnn(norm).state_dict()[k]))) for k in ref)
    assert moved > 1e-2, moved  # the model trained: a check that holds for untouched weights proves nothing
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-9, atol=1e-9, err_msg=f"{k} (norm={norm})")


def check_step(dp: DataParallel, rows: int) -> None:
    """One training step of an MLP with BatchNorm and dropout: reduced gradients == single process."""
    comm, be = dp.comm, get_backend("numpy")
    rng = np.random.default_rng(7)
    X = rng.normal(size=(rows, 6))
    y = rng.integers(0, 4, size=rows)

    def build():
        return nn.MLP(6, hidden=[8, 8], out_features=4, norm="batch", dropout=0.3,
                      rng=np.random.default_rng(1), dtype="float64")

    ref, crit = build(), nn.CrossEntropyLoss()
    be.seed(123)
    loss_ref = crit(ref(X), y)
    ref.backward_params(crit.backward())

    model = dp.prepare_model(build())
    loss_fn = dp.wrap_loss(nn.CrossEntropyLoss())
    dp.broadcast_parameters(model)
    dp.shard.set(rows)
    s, e = dp.shard.start, dp.shard.stop
    be.seed(123)
    out = model(X[s:e])
    loss = loss_fn(out, y[s:e])
    model.backward_params(loss_fn.backward())
    dp.reduce_gradients(model.parameters())
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad, err_msg=name, **TOL)
    loss_sum = comm.allreduce(np.asarray(float(loss) * (e - s)))
    np.testing.assert_allclose(float(loss_sum), float(loss_ref) * rows, **TOL)
    assert be.rng_state() == be.rng_state() and comm.bcast_object(be.rng_state()) == be.rng_state()


def check_evaluate(dp: DataParallel) -> None:
    """Evaluation over uneven slices (last batch smaller than the ranks): exact counts and sums."""
    be = get_backend("numpy")
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(23, 6)), rng.integers(0, 4, size=23)
    model = nn.MLP(6, hidden=[8], out_features=4, norm="batch", rng=np.random.default_rng(2), dtype="float64")
    crit = nn.CrossEntropyLoss()
    from mlpframe.data import DataLoader

    ref = evaluate(model, crit, DataLoader(X, y, 5, be), be, num_classes=4)
    sharded = dp.loader(X, y, 5, be)
    got = dp.evaluate(dp.prepare_model(model), dp.wrap_loss(crit), sharded, be, num_classes=4)
    assert got["n"] == ref["n"] == 23
    assert got["acc"] == ref["acc"]
    np.testing.assert_array_equal(got["confusion"], ref["confusion"])
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-6)  # X goes to float32 in the loader


def main_cnn() -> None:
    """``mpiexec -n N python -m tests.distributed.mpi_checks cnn`` (N = 1 too): the MNIST-1D CNN."""
    comm = MPICommunicator()
    dp = DataParallel(comm)
    for norm in (None, "batch"):
        check_mnist1d_cnn(dp, norm)
    comm.barrier()
    print(f"ok {comm.rank}", flush=True)


def main() -> None:
    comm = MPICommunicator()
    assert comm.size > 1, "run under mpiexec -n 2 (or more)"
    assert rank_slice(10, comm.rank, comm.size) is not None
    dp = DataParallel(comm)
    check_communicator(comm)
    for rows in (2, 7, 16):  # 2 < 3 ranks: a rank without rows
        check_batchnorm(dp, rows)
    check_batchnorm(dp, 7, (4,))  # (N, C, L): the statistics over N and L
    check_batchnorm(dp, 3, (4,))  # fewer rows than 3 ranks could split evenly
    check_batchnorm(dp, 5, (3, 2))  # (N, C, H, W)
    for rows in (2, 11):
        check_step(dp, rows)
    check_evaluate(dp)
    comm.barrier()
    print(f"ok {comm.rank}", flush=True)


if __name__ == "__main__":
    import sys

    main_cnn() if sys.argv[1:] == ["cnn"] else main()
