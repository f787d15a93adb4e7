"""Convolution, pooling, Flatten and BatchNorm on feature maps against PyTorch autograd, float64.

Forward, the input gradient and every parameter gradient must equal PyTorch's to
rtol 1e-6 on every backend, over strides, padding, dilation, rectangular kernels,
kernels as long as the input and odd sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn

torch = pytest.importorskip("torch")
F = torch.nn.functional
RTOL, ATOL = 1e-6, 1e-10


def _check(module, torch_fn, x, be, params=(), seed=9):
    """``module`` vs ``torch_fn(x, *params)``: output, input gradient and each parameter's gradient."""
    module.to(be)
    module.zero_grad()
    y = module(be.asarray(x))
    tx = torch.tensor(x, requires_grad=True)
    tparams = [torch.tensor(be.to_numpy(p.data), requires_grad=True) for p in params]
    ty = torch_fn(tx, *tparams)
    assert tuple(y.shape) == tuple(ty.shape)
    np.testing.assert_allclose(be.to_numpy(y), ty.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = np.random.default_rng(seed).normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(g))
    grad_x = module.backward(be.asarray(g))
    assert tuple(grad_x.shape) == x.shape
    np.testing.assert_allclose(be.to_numpy(grad_x), tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(be.to_numpy(p.grad), tp.grad.numpy(), rtol=RTOL, atol=ATOL)


# (C_in, C_out, kernel, stride, padding, dilation, input shape)
CONV1D = [
    ("plain", (3, 4, 3, 1, 0, 1, (2, 3, 9))),
    ("stride 2, padding 1", (1, 25, 5, 2, 1, 1, (5, 1, 40))),  # the MNIST-1D CNN's first layer
    ("dilation 2, odd", (3, 5, 3, 3, 2, 2, (3, 3, 13))),
    ("kernel as long as the input", (2, 3, 7, 1, 0, 1, (4, 2, 7))),
    ("kernel longer than the input, padded", (2, 3, 5, 2, 1, 1, (3, 2, 3))),
    ("kernel 1", (4, 2, 1, 1, 0, 1, (2, 4, 5))),
]
CONV2D = [
    ("plain 3x3 pad 1", (3, 4, 3, 1, 1, 1, (2, 3, 6, 6))),
    ("rectangular kernel, stride and padding pairs", (2, 3, (2, 3), (2, 1), (1, 2), 1, (3, 2, 7, 5))),
    ("dilation (2, 1), odd", (3, 2, 3, (1, 2), 1, (2, 1), (2, 3, 9, 7))),
    ("kernel as large as the input", (2, 4, (5, 3), 1, 0, 1, (2, 2, 5, 3))),
    ("stride 3 over an odd size", (1, 3, 2, 3, 0, 1, (2, 1, 8, 11))),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("case", CONV1D + CONV2D, ids=[c[0] for c in CONV1D + CONV2D])
def test_conv_matches_torch(case, bias, backend_name):
    _, (c_in, c_out, k, s, p, d, shape) = case
    dims = len(shape) - 2
    rng = np.random.default_rng(0)
    cls, fn = (nn.Conv1d, F.conv1d) if dims == 1 else (nn.Conv2d, F.conv2d)
    conv = cls(c_in, c_out, k, s, p, d, bias=bias, rng=rng, dtype="float64", init="torch")
    params = [conv.weight] + ([conv.bias] if bias else [])

    def ref(x, w, b=None):
        return fn(x, w, b, stride=s, padding=p, dilation=d)

    _check(conv, ref, rng.normal(size=shape), get_backend(backend_name), params)


@pytest.mark.parametrize("dims", [1, 2])
def test_backward_params_gives_the_same_parameter_gradients(dims, backend_name):
    be = get_backend(backend_name)
    rng = np.random.default_rng(1)
    cls = nn.Conv1d if dims == 1 else nn.Conv2d
    shape = (3, 2, 9) if dims == 1 else (3, 2, 6, 5)
    a, b = (cls(2, 4, 3, 2, 1, rng=0, dtype="float64").to(be) for _ in range(2))
    x, g = be.asarray(rng.normal(size=shape)), None
    y = a(x)
    g = be.asarray(rng.normal(size=tuple(y.shape)))
    a.backward(g)
    b(x)
    assert b.backward_params(g) is None
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(be.to_numpy(pa.grad), be.to_numpy(pb.grad))


POOLS = [
    # (name, ours, torch fn, input shape)
    ("MaxPool1d(2)", lambda: nn.MaxPool1d(2), lambda x: F.max_pool1d(x, 2), (2, 3, 9)),
    ("MaxPool1d(3, 2, 1)", lambda: nn.MaxPool1d(3, 2, 1), lambda x: F.max_pool1d(x, 3, 2, 1), (2, 3, 10)),
    ("MaxPool1d(5) as long as the input", lambda: nn.MaxPool1d(5), lambda x: F.max_pool1d(x, 5), (2, 2, 5)),
    ("MaxPool2d(2)", lambda: nn.MaxPool2d(2), lambda x: F.max_pool2d(x, 2), (2, 3, 6, 7)),
    ("MaxPool2d((3, 2), (1, 2), (1, 0))", lambda: nn.MaxPool2d((3, 2), (1, 2), (1, 0)),
     lambda x: F.max_pool2d(x, (3, 2), (1, 2), (1, 0)), (2, 2, 5, 7)),
    ("AvgPool1d(3, 2, 1)", lambda: nn.AvgPool1d(3, 2, 1), lambda x: F.avg_pool1d(x, 3, 2, 1), (2, 3, 10)),
    ("AvgPool1d(2)", lambda: nn.AvgPool1d(2), lambda x: F.avg_pool1d(x, 2), (2, 3, 9)),
    ("AvgPool2d(2)", lambda: nn.AvgPool2d(2), lambda x: F.avg_pool2d(x, 2), (2, 3, 6, 7)),
    ("AvgPool2d((3, 2), 1, (1, 1))", lambda: nn.AvgPool2d((3, 2), 1, (1, 1)),
     lambda x: F.avg_pool2d(x, (3, 2), 1, (1, 1)), (2, 2, 5, 4)),
    ("GlobalAvgPool 1-D", lambda: nn.GlobalAvgPool(), lambda x: x.mean(dim=2), (3, 4, 7)),
    ("GlobalAvgPool 2-D", lambda: nn.GlobalAvgPool(), lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1),
     (3, 4, 5, 3)),
    ("Flatten", lambda: nn.Flatten(), lambda x: torch.flatten(x, 1), (3, 2, 4, 5)),
]


@pytest.mark.parametrize("name,make,fn,shape", POOLS, ids=[c[0] for c in POOLS])
def test_pooling_matches_torch(name, make, fn, shape, backend_name):
    _check(make(), fn, np.random.default_rng(2).normal(size=shape), get_backend(backend_name))


@pytest.mark.parametrize("dims", [1, 2])
def test_max_pool_ties_send_the_gradient_where_torch_does(dims, backend_name):
    """Few distinct values: most windows hold several equal maxima, overlapping windows share them."""
    shape = (2, 3, 11) if dims == 1 else (2, 2, 7, 6)
    x = np.random.default_rng(3).integers(0, 3, size=shape).astype(np.float64)
    pool = (nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(3, 1, 1)
    fn = (lambda t: F.max_pool1d(t, 3, 1, 1)) if dims == 1 else (lambda t: F.max_pool2d(t, 3, 1, 1))
    _check(pool, fn, x, get_backend(backend_name))


BATCHNORMS = [("BatchNorm1d on (N, C, L)", nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5)),
              ("BatchNorm2d", nn.BatchNorm2d, torch.nn.BatchNorm2d, (3, 3, 4, 5))]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,ours,theirs,shape", BATCHNORMS, ids=[c[0] for c in BATCHNORMS])
def test_batchnorm_on_feature_maps_matches_torch(name, ours, theirs, shape, training, backend_name):
    be = get_backend(backend_name)
    rng = np.random.default_rng(4)
    C = shape[1]
    bn = ours(C, momentum=0.3, dtype="float64")
    bn.weight.data, bn.bias.data = rng.normal(size=C), rng.normal(size=C)
    bn.running_mean, bn.running_var = rng.normal(size=C), rng.uniform(0.5, 2, size=C)
    ref = theirs(C, momentum=0.3).double()
    ref.load_state_dict({k: torch.tensor(v) for k, v in bn.state_dict().items()}, strict=False)
    bn.train(training)
    ref.train(training)
    _check(bn, ref, rng.normal(size=shape) * 3 + 1, be, params=())
    # parameter gradients and the running statistics (unbiased variance over N x spatial values)
    for name_, p in bn.named_parameters():
        np.testing.assert_allclose(be.to_numpy(p.grad), getattr(ref, name_).grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(be.to_numpy(bn.running_mean), ref.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(be.to_numpy(bn.running_var), ref.running_var.numpy(), rtol=1e-12)


def test_dropout_on_feature_maps_keeps_the_shape_and_masks_the_gradient(backend_name):
    be = get_backend(backend_name)
    be.seed(0)
    drop = nn.Dropout(0.5).to(be)
    x = be.asarray(np.ones((4, 3, 5, 6)))
    y = be.to_numpy(drop(x))
    grad = be.to_numpy(drop.backward(be.asarray(np.ones((4, 3, 5, 6)))))
    assert y.shape == (4, 3, 5, 6) and set(np.unique(y)) == {0.0, 2.0}
    np.testing.assert_array_equal(grad, y)


def _torch_cnn(dims):
    T = torch.nn
    conv, pool, bn = (T.Conv1d, T.MaxPool1d, T.BatchNorm1d) if dims == 1 else (T.Conv2d, T.MaxPool2d, T.BatchNorm2d)
    return T.Sequential(conv(2, 4, 3, padding=1), bn(4), T.ReLU(), pool(2), conv(4, 3, 3, stride=2, dilation=1),
                        T.ReLU(), T.Flatten(), T.Linear(3 * (2 if dims == 1 else 4), 5))


def _our_cnn(dims, rng):
    conv, pool, bn = (nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.MaxPool2d,
                                                                                   nn.BatchNorm2d)
    return nn.Sequential(conv(2, 4, 3, padding=1, rng=rng, dtype="float64", init="torch"), bn(4, dtype="float64"),
                         nn.ReLU(), pool(2), conv(4, 3, 3, stride=2, rng=rng, dtype="float64", init="torch"),
                         nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * (2 if dims == 1 else 4), 5, rng=rng, dtype="float64"))


@pytest.mark.parametrize("dims", [1, 2])
def test_state_dict_copies_a_cnn_both_ways_with_torch(dims, backend_name):
    """Same names and shapes as PyTorch: weights go mlpframe -> torch -> mlpframe, and both compute the same."""
    be = get_backend(backend_name)
    rng = np.random.default_rng(5)
    ours, ref = _our_cnn(dims, rng).to(be), _torch_cnn(dims).double()
    state = ours.state_dict()
    torch_state = ref.state_dict()
    assert {k for k in torch_state if not k.endswith("num_batches_tracked")} == set(state)
    ref.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
    x = rng.normal(size=(4, 2, 11) if dims == 1 else (4, 2, 11, 11))
    labels = rng.integers(0, 5, size=4)
    crit = nn.CrossEntropyLoss()
    loss = crit(ours(be.asarray(x)), be.asarray(labels))
    ours.backward(crit.backward())
    tloss = F.cross_entropy(ref(torch.tensor(x)), torch.tensor(labels))
    tloss.backward()
    assert float(be.to_numpy(loss)) == pytest.approx(tloss.item(), rel=1e-10)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(be.to_numpy(p.grad), dict(ref.named_parameters())[name].grad.numpy(),
                                   rtol=RTOL, atol=ATOL)
    # and back: torch's (freshly initialised) weights into mlpframe give torch's outputs
    fresh = _torch_cnn(dims).double().eval()
    ours.load_state_dict({k: v.numpy() for k, v in fresh.state_dict().items() if k in state})
    ours.eval()
    np.testing.assert_allclose(be.to_numpy(ours(be.asarray(x))), fresh(torch.tensor(x)).detach().numpy(),
                               rtol=RTOL, atol=ATOL)
