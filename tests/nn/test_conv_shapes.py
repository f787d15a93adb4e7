"""Convolution and pooling: argument and shape errors name the layer, float32 stays float32."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn

CONSTRUCTOR_CASES = [
    ("in_channels", lambda: nn.Conv1d(0, 3, 3)),
    ("out_channels", lambda: nn.Conv2d(2, -1, 3)),
    ("kernel_size", lambda: nn.Conv1d(2, 3, 0)),
    ("kernel_size", lambda: nn.Conv2d(2, 3, (3, 3, 3))),
    ("stride", lambda: nn.Conv2d(2, 3, 3, stride=(1, 0))),
    ("padding", lambda: nn.Conv1d(2, 3, 3, padding=-1)),
    ("dilation", lambda: nn.Conv1d(2, 3, 3, dilation=0)),
    ("init", lambda: nn.Conv1d(2, 3, 3, init="orthogonal")),
    ("dtype", lambda: nn.Conv2d(2, 3, 3, dtype="float16")),
    ("kernel_size", lambda: nn.MaxPool2d((2,))),
    ("stride", lambda: nn.AvgPool1d(2, stride=0)),
    ("padding", lambda: nn.MaxPool1d(2, padding=2)),  # more than half the kernel, as PyTorch refuses
    ("num_features", lambda: nn.BatchNorm2d(0)),
]


@pytest.mark.parametrize("argument,make", CONSTRUCTOR_CASES,
                         ids=[f"{a}-{i}" for i, (a, _) in enumerate(CONSTRUCTOR_CASES)])
def test_bad_constructor_argument_is_named(argument, make):
    with pytest.raises(ValueError, match=rf"^{argument}:"):
        make()


SHAPE_CASES = [
    # (layer, input shape, what the message must say)
    (lambda: nn.Conv1d(2, 3, 3), (4, 2), r"^x: Conv1d expects shape \(N, 2, L\), got \(4, 2\)"),
    (lambda: nn.Conv1d(2, 3, 3), (4, 3, 9), r"^x: Conv1d expects shape \(N, 2, L\), got \(4, 3, 9\)"),
    (lambda: nn.Conv2d(2, 3, 3), (4, 2, 9), r"^x: Conv2d expects shape \(N, 2, H, W\), got \(4, 2, 9\)"),
    (lambda: nn.Conv2d(3, 3, 3), (4, 1, 9, 9), r"^x: Conv2d expects shape \(N, 3, H, W\)"),
    # a kernel larger than the padded input: span 5 (k 3, dilation 2) over L 4, span 5 over W 2 + 2
    (lambda: nn.Conv1d(2, 3, 3, dilation=2), (1, 2, 4), r"^x: Conv1d .*expects \(N, 2, L\) with L >= \(5,\)"),
    (lambda: nn.Conv2d(1, 1, (3, 5), padding=1), (1, 1, 4, 2),
     r"^x: Conv2d .*expects \(N, 1, H, W\) with H x W >= \(1, 3\), got \(1, 1, 4, 2\)"),
    (lambda: nn.MaxPool2d(2), (4, 3, 8), r"^x: MaxPool2d expects shape \(N, C, H, W\), got \(4, 3, 8\)"),
    (lambda: nn.AvgPool1d(4), (2, 3, 3), r"^x: AvgPool1d .*expects \(N, C, L\) with L >= \(4,\)"),
    (lambda: nn.GlobalAvgPool(), (4, 3), r"^x: GlobalAvgPool expects shape \(N, C, \*spatial\)"),
    (lambda: nn.Flatten(), (4,), r"^x: Flatten expects shape \(N, ...\)"),
    (lambda: nn.BatchNorm1d(3), (4, 3, 2, 2), r"^x: BatchNorm1d expects shape \(N, 3\) or \(N, 3, L\)"),
    (lambda: nn.BatchNorm2d(3), (4, 2, 5, 5), r"^x: BatchNorm2d expects shape \(N, 3, H, W\)"),
]


@pytest.mark.parametrize("make,shape,message", SHAPE_CASES, ids=[f"{i}" for i in range(len(SHAPE_CASES))])
def test_bad_input_shape_names_the_layer_and_the_expected_shape(make, shape, message):
    with pytest.raises(ValueError, match=message):
        make()(np.zeros(shape, dtype=np.float32))


def test_a_kernel_exactly_as_long_as_the_padded_input_is_accepted():
    assert nn.Conv1d(1, 2, 5, padding=1)(np.zeros((1, 1, 3), dtype=np.float32)).shape == (1, 2, 1)


def test_weight_shapes_and_inits_follow_pytorch():
    conv = nn.Conv2d(3, 8, (3, 5), rng=0, init="torch")
    assert conv.weight.shape == (8, 3, 3, 5) and conv.bias.shape == (8,)
    bound = 1 / np.sqrt(3 * 3 * 5)  # PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.bias.data).max() <= bound
    assert np.abs(conv.bias.data).max() > bound / 2  # drawn, not zeros
    kaiming = nn.Conv1d(16, 64, 5, rng=0)  # N(0, 2 / fan_in), zero bias, as Linear
    assert kaiming.weight.data.std() == pytest.approx(np.sqrt(2 / (16 * 5)), rel=0.05)
    assert not kaiming.bias.data.any()
    assert nn.Conv1d(2, 3, 3, bias=False).bias is None
    a, b = nn.Conv1d(2, 3, 3, rng=7), nn.Conv1d(2, 3, 3, rng=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


def _cnn(dims):
    conv, pool, bn = (nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.MaxPool2d,
                                                                                   nn.BatchNorm2d)
    avg = nn.AvgPool1d if dims == 1 else nn.AvgPool2d
    return nn.Sequential(conv(2, 4, 3, stride=2, padding=1, rng=0), bn(4), nn.ReLU(), pool(2), nn.Dropout(0.2),
                         conv(4, 4, 3, padding=1, rng=1), nn.ELU(), avg(2, 1), nn.GlobalAvgPool(),
                         nn.Linear(4, 3, rng=2), nn.Flatten())


@pytest.mark.parametrize("dims", [1, 2])
def test_float32_stays_float32(dims, backend_name):
    be = get_backend(backend_name)
    be.seed(0)
    model = _cnn(dims).to(be)
    f32 = be.dtype("float32")
    x = be.asarray(np.random.default_rng(0).normal(size=(3, 2, 12) if dims == 1 else (3, 2, 12, 10)),
                   dtype="float32")
    outputs, h = [], x
    for layer in model.layers:
        h = layer(h)
        outputs.append(h)
    crit = nn.CrossEntropyLoss()
    outputs.append(crit(h, be.asarray(np.array([0, 1, 2]))))
    grad = crit.backward()
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
        outputs.append(grad)
    outputs += [p.grad for p in model.parameters()] + [b for _, b in model.named_buffers()]
    assert [a.dtype for a in outputs] == [f32] * len(outputs)
    assert tuple(grad.shape) == tuple(x.shape)
