"""The CNN builder: the layers it stacks, the shapes it computes, PyTorch's network for the same lists."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, gradcheck, nn


def test_mnist1d_paper_cnn():
    model = nn.CNN((1, 40), [25, 25, 25], kernel_size=[5, 3, 3], stride=2, padding=1, rng=0)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Conv1d", "ReLU", "Conv1d", "ReLU", "Conv1d", "ReLU", "Flatten", "Linear"]
    assert model.layers[-1].in_features == 125  # 40 -> 19 -> 10 -> 5 positions of 25 channels
    assert [m.kernel_size for m in model.layers[::2][:3]] == [(5,), (3,), (3,)]
    y = model(np.zeros((4, 1, 40), dtype=np.float32))
    assert y.shape == (4, 10) and y.dtype == np.float32


def test_2d_blocks_with_norm_pool_global_head_and_dropout():
    model = nn.CNN((3, 32, 32), [8, 16, 16], out_features=7, pool=[2, 2, None], norm="batch", head="global_avg",
                   dropout=0.1, activation="elu", rng=0)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Conv2d", "BatchNorm2d", "ELU", "MaxPool2d"] * 2 + ["Conv2d", "BatchNorm2d", "ELU",
                                                                         "GlobalAvgPool", "Dropout", "Linear"]
    assert model.layers[0].bias is None  # BatchNorm's shift makes a conv bias redundant
    assert model.layers[-1].in_features == 16
    assert model(np.zeros((2, 3, 32, 32), dtype=np.float32)).shape == (2, 7)


def test_flatten_width_follows_padding_stride_and_pool():
    model = nn.CNN((2, 11, 9), [4, 6], kernel_size=(3, 2), stride=[1, 2], padding=[None, 0], pool=[(2, 1), None],
                   pool_type="avg", rng=0)
    x = np.zeros((3, 2, 11, 9), dtype=np.float32)
    h = x
    for layer in model.layers[:-1]:
        h = layer(h)
    assert model.layers[-1].in_features == h.shape[1]
    assert model(x).shape == (3, 10)


def test_matches_the_same_torch_network():
    torch = pytest.importorskip("torch")
    T = torch.nn
    rng = np.random.default_rng(0)
    ours = nn.CNN((2, 12, 10), [4, 5], kernel_size=3, pool=2, rng=rng, dtype="float64")
    ref = T.Sequential(T.Conv2d(2, 4, 3, padding=1), T.ReLU(), T.MaxPool2d(2), T.Conv2d(4, 5, 3, padding=1), T.ReLU(),
                       T.MaxPool2d(2), T.Flatten(), T.Linear(5 * 3 * 2, 10)).double()
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = rng.normal(size=(3, 2, 12, 10))
    np.testing.assert_allclose(ours(x), ref(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_backward_matches_finite_differences(backend_name):
    rng = np.random.default_rng(1)
    model = nn.CNN((2, 7), [3, 2], kernel_size=[3, 2], pool=[2, None], norm="batch", out_features=3, rng=rng,
                   dtype="float64")
    results = gradcheck.check_module(model, rng.normal(size=(4, 2, 7)), backend=get_backend(backend_name))
    assert all(r.passed for r in results), "\n".join(str(r) for r in results if not r.passed)


@pytest.mark.parametrize("argument,kwargs", [
    ("input_shape", {"input_shape": (40,)}),
    ("channels", {"channels": []}),
    ("channels", {"channels": [8, 0]}),
    ("kernel_size", {"kernel_size": [3, 3, 3]}),
    ("activation", {"activation": "swish"}),
    ("norm", {"norm": "layer"}),
    ("head", {"head": "max"}),
    ("pool_type", {"pool_type": "median"}),
    ("dropout", {"dropout": 1.0}),
    ("input_shape", {"input_shape": (1, 4), "channels": [4, 4, 4], "pool": 2}),  # nothing left after 3 pools
])
def test_bad_argument_is_named(argument, kwargs):
    args = {"input_shape": (1, 40), "channels": [8, 8], **kwargs}
    with pytest.raises(ValueError, match=rf"^{argument}:"):
        nn.CNN(**args)
