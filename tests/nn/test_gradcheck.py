"""Every layer and loss: hand-written backward vs float64 central differences, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import gradcheck, nn

MODULE_CASES = gradcheck.module_cases()
LOSS_CASES = gradcheck.loss_cases()


@pytest.mark.parametrize("name,make", MODULE_CASES, ids=[c[0] for c in MODULE_CASES])
def test_module_backward_matches_finite_differences(name, make, backend_name):
    module, x = make(np.random.default_rng(3))
    results = gradcheck.check_module(module, x, backend=backend_name, name=name, seed=3)
    assert {r.wrt for r in results} == {"input", *(n for n, _ in module.named_parameters())}
    failures = [str(r) for r in results if not r.passed]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name,make", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_backward_matches_finite_differences(name, make, backend_name):
    loss, x, t = make(np.random.default_rng(4))
    result = gradcheck.check_loss(loss, x, t, backend=backend_name, name=name)
    assert result.passed, str(result)


class _WrongLinear(nn.Linear):
    """grad_W off by 1 %: the check must notice and point at the weight."""

    def backward(self, grad_y):
        grad_x = super().backward(grad_y)
        self.weight.grad = self.weight.grad * 1.01
        return grad_x


def test_gradcheck_catches_a_wrong_backward_and_names_the_tensor():
    rng = np.random.default_rng(0)
    results = gradcheck.check_module(_WrongLinear(4, 3, rng=rng, dtype="float64"), rng.normal(size=(5, 4)))
    by_wrt = {r.wrt: r for r in results}
    assert by_wrt["input"].passed and by_wrt["bias"].passed
    wrong = by_wrt["weight"]
    assert not wrong.passed and 1e-3 < wrong.rel_error < 1e-2
    assert "weight" in str(wrong) and "FAIL" in str(wrong)
    # the worst element is where 1 % of the gradient is largest in absolute terms
    assert abs(wrong.worst_analytic - 1.01 * wrong.worst_numeric) < 1e-6 * max(1.0, abs(wrong.worst_numeric))


def test_gradcheck_catches_a_wrong_loss_gradient():
    class HalfMSE(nn.MSELoss):
        def backward(self, grad_loss=1.0):
            return super().backward(grad_loss) / 2

    rng = np.random.default_rng(0)
    result = gradcheck.check_loss(HalfMSE(), rng.normal(size=(3, 2)), rng.normal(size=(3, 2)))
    assert not result.passed and result.rel_error > 0.3


def test_check_all_covers_every_exported_layer_and_loss():
    covered = " ".join(name for name, _ in MODULE_CASES + LOSS_CASES)
    for cls in (nn.Linear, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Identity,
                nn.Softmax, nn.BatchNorm1d, nn.LayerNorm, nn.Dropout, nn.MLP, nn.CrossEntropyLoss, nn.MSELoss,
                nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.GlobalAvgPool,
                nn.Flatten, nn.BatchNorm2d):
        assert cls.__name__ in covered, f"{cls.__name__} has no gradient check"
    results = gradcheck.check_all("numpy")
    assert results and all(r.passed for r in results), "\n".join(str(r) for r in results if not r.passed)
