"""A user's own layers, written outside mlpframe, checked with mlpframe.gradcheck.

The package below is what a new user writes in a folder of their own: a Softplus
(no parameters) and a LogScale (one parameter), each with a hand-derived backward,
and the same two with a plausible mistake. The public check must pass the right
ones on NumPy and array_api_strict and fail the wrong ones, naming the tensor and
its worst element.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlpframe import gradcheck

REPO = Path(__file__).resolve().parents[1]

LAYERS = '''
import numpy as np

from mlpframe.backend import array_namespace
from mlpframe.nn import Module, Parameter


class Softplus(Module):
    """y = log(1 + exp(x));  grad_x = grad_y * sigmoid(x)."""

    def forward(self, x):
        xp = array_namespace(x)
        self.cache["x"] = x
        # max(x, 0) + log1p(exp(-|x|)): exp never overflows
        return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, grad_y):
        xp = array_namespace(grad_y)
        x = self.cached("x")
        e = xp.exp(-xp.abs(x))
        sigmoid = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return grad_y * sigmoid


class LogScale(Module):
    """y = x * exp(s), s of shape (D,);  grad_x = grad_y * exp(s),  grad_s = sum_n grad_y * y."""

    def __init__(self, num_features, *, rng=None, dtype="float32"):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.log_scale = Parameter(rng.normal(0.0, 0.1, size=(num_features,)).astype(dtype))

    def forward(self, x):
        y = x * array_namespace(x).exp(self.log_scale.data)
        self.cache["y"] = y
        return y

    def backward(self, grad_y):
        xp = array_namespace(grad_y)
        self.log_scale.accumulate_grad(xp.sum(grad_y * self.cached("y"), axis=0))
        return grad_y * xp.exp(self.log_scale.data)


class WrongSoftplus(Softplus):
    """The classic slip: the derivative of softplus taken as sigmoid(-x)."""

    def backward(self, grad_y):
        xp = array_namespace(grad_y)
        return grad_y / (1 + xp.exp(self.cached("x")))


class WrongLogScale(LogScale):
    """grad_s forgets the factor exp(s): sum_n grad_y * x instead of grad_y * y."""

    def backward(self, grad_y):
        xp = array_namespace(grad_y)
        x = self.cached("y") / xp.exp(self.log_scale.data)
        self.log_scale.accumulate_grad(xp.sum(grad_y * x, axis=0))
        return grad_y * xp.exp(self.log_scale.data)
'''

USER_TEST = '''
import numpy as np
import pytest

from mlpframe.gradcheck import assert_gradients_match
from mynets.layers import LogScale, Softplus, WrongLogScale


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_softplus(backend):
    assert_gradients_match(Softplus(), np.random.default_rng(0).normal(size=(4, 6)), backends=backend)


def test_log_scale():
    assert_gradients_match(LogScale(6, rng=0, dtype="float64"), np.random.default_rng(1).normal(size=(4, 6)))


def test_wrong_log_scale():
    assert_gradients_match(WrongLogScale(6, rng=0, dtype="float64"), np.random.default_rng(1).normal(size=(4, 6)))
'''


@pytest.fixture
def mynets(tmp_path, monkeypatch):
    """The user's package ``mynets`` in a fresh folder outside the repository, importable."""
    pkg = tmp_path / "mynets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "layers.py").write_text(textwrap.dedent(LAYERS))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "mynets" or m.startswith("mynets.")]:
        monkeypatch.delitem(sys.modules, name)
    import mynets.layers

    return mynets.layers


def _x(shape=(4, 6), seed=0):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_a_users_layers_pass_check_module(mynets, backend):
    for module in (mynets.Softplus(), mynets.LogScale(6, rng=0, dtype="float64")):
        results = gradcheck.check_module(module, _x(), backend=backend)
        assert {r.wrt for r in results} == {"input", *(n for n, _ in module.named_parameters())}
        assert all(r.passed for r in results), "\n".join(map(str, results))


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_a_wrong_backward_fails_check_module_with_the_tensor_named(mynets, backend):
    (bad_x,) = [r for r in gradcheck.check_module(mynets.WrongSoftplus(), _x(), backend=backend) if not r.passed]
    assert bad_x.wrt == "input"
    results = gradcheck.check_module(mynets.WrongLogScale(6, rng=0, dtype="float64"), _x(), backend=backend)
    assert [r.wrt for r in results if not r.passed] == ["log_scale"]


def test_assert_gradients_match_returns_the_results_of_every_backend(mynets):
    module = mynets.LogScale(6, rng=0, dtype="float64")
    results = gradcheck.assert_gradients_match(module, _x())
    assert len(results) == 2 * len(gradcheck.available_backends())
    assert module.backend.name == "numpy"  # back where it started


def test_assert_gradients_match_names_the_worst_element(mynets):
    x = _x()
    with pytest.raises(AssertionError) as info:
        gradcheck.assert_gradients_match(mynets.WrongSoftplus(), x, backends=("numpy", "array_api_strict"))
    message = str(info.value)
    assert message.startswith("WrongSoftplus.backward disagrees with central differences")
    assert "on numpy: WrongSoftplus d/dinput" in message and "on array_api_strict: WrongSoftplus d/dinput" in message
    # the element named is where analytic and numeric differ most: |sigmoid(-x) - sigmoid(x)| peaks at the largest |x|
    sigmoid = 1 / (1 + np.exp(-x))
    R = np.random.default_rng(1).normal(size=x.shape)  # check_module's projection for seed 0
    worst = np.unravel_index(np.argmax(np.abs(R * (1 - 2 * sigmoid))), x.shape)
    assert f"worst element {[int(i) for i in worst]}" in message


def test_assert_gradients_match_refuses_float32_parameters(mynets):
    with pytest.raises(ValueError, match=r"float64 parameters; build LogScale with dtype='float64'"):
        gradcheck.assert_gradients_match(mynets.LogScale(6, rng=0), _x())


def test_a_new_user_runs_the_check_with_pytest_in_their_own_folder(tmp_path):
    """The whole path from outside the repository: a package, a test file, ``pytest``."""
    (tmp_path / "mynets").mkdir()
    (tmp_path / "mynets" / "__init__.py").write_text("")
    (tmp_path / "mynets" / "layers.py").write_text(textwrap.dedent(LAYERS))
    (tmp_path / "test_layers.py").write_text(textwrap.dedent(USER_TEST))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_layers.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "3 passed" in out and "1 failed" in out, out
    assert "FAILED test_layers.py::test_wrong_log_scale" in out, out
    assert "WrongLogScale d/dlog_scale: rel error" in out and "worst element [" in out, out
