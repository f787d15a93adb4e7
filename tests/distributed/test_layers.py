"""The data-parallel pieces in one process: slices, the single-rank layers, model conversion."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn
from mlpframe.distributed.comm import SingleProcess
from mlpframe.distributed.layers import ShardedDropout, SyncBatchNorm
from mlpframe.distributed.parallel import DataParallel
from mlpframe.distributed.shard import rank_slice
from mlpframe.gradcheck import check_module


@pytest.mark.parametrize("rows", [0, 1, 2, 5, 7, 64, 100])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_rank_slices_tile_the_batch_and_differ_by_at_most_one(rows, size):
    bounds = [rank_slice(rows, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, in rank order
    sizes = [e - s for s, e in bounds]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 0


def test_rank_slice_refuses_a_rank_outside_the_job():
    with pytest.raises(ValueError, match="rank"):
        rank_slice(10, 2, 2)


def _single() -> DataParallel:
    return DataParallel(SingleProcess())


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_sync_batchnorm_on_one_process_passes_the_gradient_check(backend):
    dp = _single()
    dp.shard.set(6)
    bn = SyncBatchNorm(4, shard=dp.shard, dtype="float64")
    rng = np.random.default_rng(0)
    bn.weight.data, bn.bias.data = rng.normal(size=4), rng.normal(size=4)
    x = rng.normal(size=(6, 4)) * 2 + 1
    results = check_module(bn, x, backend=backend)
    assert all(r.passed for r in results), [str(r) for r in results if not r.passed]


@pytest.mark.parametrize("train", [True, False])
def test_sync_batchnorm_on_one_process_is_batchnorm(train):
    dp = _single()
    rng = np.random.default_rng(1)
    x, gy = rng.normal(size=(9, 3)), rng.normal(size=(9, 3))
    ref = nn.BatchNorm1d(3, dtype="float64")
    ref.running_mean, ref.running_var = rng.normal(size=3), rng.uniform(0.5, 2, size=3)
    ref.train(train)
    sync = SyncBatchNorm.from_batchnorm(nn.BatchNorm1d(3, dtype="float64"), dp.shard)
    sync.running_mean, sync.running_var = ref.running_mean.copy(), ref.running_var.copy()
    sync.train(train)
    dp.shard.set(9)
    np.testing.assert_allclose(sync(x), ref(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sync.backward(gy), ref.backward(gy), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sync.weight.grad, ref.weight.grad, rtol=1e-12)
    np.testing.assert_allclose(sync.running_var, ref.running_var, rtol=1e-12)


def test_sharded_dropout_takes_its_rows_of_the_global_mask():
    be = get_backend("numpy")
    x = np.ones((10, 4))
    be.seed(5)
    full = nn.Dropout(0.5)(x)
    dp = _single()
    dp.shard.set(10)
    dp.shard.start, dp.shard.stop = 3, 7  # as rank 1 of a larger job would hold
    d = ShardedDropout(0.5, dp.shard)
    be.seed(5)
    np.testing.assert_array_equal(d(x[3:7]), full[3:7])
    np.testing.assert_array_equal(d.backward(x[3:7]), full[3:7])


def test_conversion_keeps_parameters_buffers_and_names():
    model = nn.MLP(5, hidden=[6, 6], out_features=3, norm="batch", dropout=0.2, rng=np.random.default_rng(0),
                   dtype="float64")
    params = model.parameters()
    names = list(model.state_dict())
    _single().prepare_model(model)
    assert [type(m).__name__ for m in model.layers].count("SyncBatchNorm") == 2
    assert [type(m).__name__ for m in model.layers].count("ShardedDropout") == 2
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert list(model.state_dict()) == names  # a checkpoint does not depend on the number of processes
