"""float32 in, float32 out: nothing creeps up to float64."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, nn


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("activation", list(nn.ACTIVATIONS))
def test_float32_everywhere(activation, norm, backend_name):
    be = get_backend(backend_name)
    be.seed(0)
    model = nn.MLP(6, [8, 7], 4, activation=activation, norm=norm, dropout=0.2, rng=0).to(be)
    f32 = be.dtype("float32")
    x = be.asarray(np.random.default_rng(0).normal(size=(5, 6)), dtype="float32")
    outputs = []
    h = x
    for layer in model.layers:
        h = layer(h)
        outputs.append(h)
    for crit, t in ((nn.CrossEntropyLoss(label_smoothing=0.1), be.asarray(np.array([0, 1, 2, 3, 0]))),
                    (nn.MSELoss(), be.asarray(np.zeros((5, 4)), dtype="float32"))):
        loss = crit(h, t)
        model.zero_grad()
        grad_x = model.backward(crit.backward())
        outputs += [loss, grad_x]
        outputs += [p.grad for p in model.parameters()]
    outputs += [p.data for p in model.parameters()] + [b for _, b in model.named_buffers()]
    assert [a.dtype for a in outputs] == [f32] * len(outputs)


def test_softmax_then_probability_cross_entropy_stays_float32(backend_name):
    be = get_backend(backend_name)
    z = be.asarray(np.random.default_rng(0).normal(size=(3, 4)), dtype="float32")
    sm, ce = nn.Softmax(), nn.CrossEntropyLoss(from_logits=False)
    loss = ce(sm(z), be.asarray(np.array([0, 1, 3])))
    assert loss.dtype == be.dtype("float32")
    assert sm.backward(ce.backward()).dtype == be.dtype("float32")
