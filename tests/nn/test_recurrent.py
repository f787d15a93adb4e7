"""GRU, LSTM and LastStep: PyTorch autograd in float64, initial states, shapes, errors, learning."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import get_backend, gradcheck, nn, optim
from mlpframe.nn.module import Module

LAYERS = {"GRU": nn.GRU, "LSTM": nn.LSTM}
# (input_size, hidden_size, T, N, bidirectional, bias, with initial state)
CONFIGS = [
    (1, 6, 40, 5, True, True, False),  # the MNIST-1D paper's GRU shape
    (1, 6, 40, 3, True, True, True),
    (3, 1, 7, 2, False, True, True),
    (2, 16, 12, 3, True, False, True),
    (4, 16, 40, 2, False, False, False),
    (5, 4, 1, 3, True, True, True),  # a single step
    (2, 9, 25, 4, False, True, False),
]


def _torch_name(name: str) -> str:
    """mlpframe's ``weight_ih_reverse`` is PyTorch's ``weight_ih_l0_reverse``."""
    if name.endswith("_reverse"):
        return name[: -len("_reverse")] + "_l0_reverse"
    return name + "_l0"


def _torch_peer(layer, torch):
    cls = getattr(torch.nn, type(layer).__name__)
    ref = cls(layer.input_size, layer.hidden_size, bias=layer.bias, bidirectional=layer.bidirectional,
              batch_first=True).double()
    ref.load_state_dict({_torch_name(k): torch.tensor(v) for k, v in layer.state_dict().items()})
    return ref


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "I{}-H{}-T{}-N{}-{}-{}-{}".format(
    *c[:4], "bi" if c[4] else "uni", "bias" if c[5] else "nobias", "h0" if c[6] else "zero"))
@pytest.mark.parametrize("kind", LAYERS)
def test_matches_torch_autograd(kind, config, backend_name):
    torch = pytest.importorskip("torch")
    I, H, T, N, bidirectional, bias, with_state = config
    be = get_backend(backend_name)
    rng = np.random.default_rng(H * 100 + T)
    layer = LAYERS[kind](I, H, bias=bias, bidirectional=bidirectional, rng=rng, dtype="float64")
    ref = _torch_peer(layer, torch)
    layer.to(be)
    D = 2 if bidirectional else 1
    x = rng.normal(size=(N, T, I))
    states = {name: rng.normal(size=(D, N, H)) if with_state else np.zeros((D, N, H)) for name in layer.STATES}
    tx = torch.tensor(x, requires_grad=True)
    tstates = {k: torch.tensor(v, requires_grad=True) for k, v in states.items()}
    hx = (tstates["h0"], tstates["c0"]) if kind == "LSTM" else tstates["h0"]
    ty, _ = ref(tx, hx)
    y = layer(be.asarray(x), **({k: be.asarray(v) for k, v in states.items()} if with_state else {}))
    assert tuple(y.shape) == (N, T, D * H)
    np.testing.assert_allclose(be.to_numpy(y), ty.detach().numpy(), rtol=1e-6, atol=1e-12)

    g = rng.normal(size=(N, T, D * H))
    ty.backward(torch.tensor(g))
    grad_x = layer.backward(be.asarray(g))
    np.testing.assert_allclose(be.to_numpy(grad_x), tx.grad.numpy(), rtol=1e-6, atol=1e-12)
    for name in layer.STATES:
        np.testing.assert_allclose(be.to_numpy(getattr(layer, "grad_" + name)), tstates[name].grad.numpy(),
                                   rtol=1e-6, atol=1e-12, err_msg=name)
    tparams = dict(ref.named_parameters())
    names = [n for n, _ in layer.named_parameters()]
    assert sorted(_torch_name(n) for n in names) == sorted(tparams)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(be.to_numpy(p.grad), tparams[_torch_name(name)].grad.numpy(),
                                   rtol=1e-6, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", LAYERS)
def test_parameter_names_shapes_and_init_follow_torch(kind):
    torch = pytest.importorskip("torch")
    H, I = 5, 3
    layer = LAYERS[kind](I, H, bidirectional=True, rng=0)
    ref = getattr(torch.nn, kind)(I, H, bidirectional=True, batch_first=True)
    ours = {_torch_name(n): p.shape for n, p in layer.named_parameters()}
    assert ours == {n: tuple(p.shape) for n, p in ref.named_parameters()}
    values = np.concatenate([p.data.ravel() for p in layer.parameters()])
    assert values.dtype == np.float32
    bound = 1 / np.sqrt(H)
    assert np.all(np.abs(values) <= bound) and values.max() > 0.9 * bound and values.min() < -0.9 * bound
    again = LAYERS[kind](I, H, bidirectional=True, rng=0)
    assert all(np.array_equal(a, b) for a, b in zip(layer.state_dict().values(), again.state_dict().values()))


class _StateAsInput(Module):
    """The layer as a function of its initial state(s), for the finite-difference check."""

    def __init__(self, layer, x, name):
        super().__init__()
        self.layer, self.x, self.name = layer, x, name

    def forward(self, state):
        xp = self.layer.backend.xp
        other = {n: xp.full(state.shape, 0.3, dtype=state.dtype, device=state.device)
                 for n in self.layer.STATES if n != self.name}
        return self.layer(self.layer.backend.asarray(self.x), **{self.name: state}, **other)

    def backward(self, grad_y):
        self.layer.backward(grad_y)
        return getattr(self.layer, "grad_" + self.name)


@pytest.mark.parametrize("kind,state", [("GRU", "h0"), ("LSTM", "h0"), ("LSTM", "c0")])
def test_initial_state_gradient_matches_finite_differences(kind, state, backend_name):
    rng = np.random.default_rng(5)
    layer = LAYERS[kind](2, 3, bidirectional=True, rng=rng, dtype="float64")
    module = _StateAsInput(layer, rng.normal(size=(4, 6, 2)), state)
    results = gradcheck.check_module(module, rng.normal(size=(2, 4, 3)), backend=backend_name, name=kind)
    failures = [str(r) for r in results if not r.passed]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("kind", LAYERS)
def test_backward_params_gives_the_same_parameter_gradients(kind):
    rng = np.random.default_rng(2)
    layer = LAYERS[kind](3, 4, bidirectional=True, rng=rng, dtype="float64")
    x, g = rng.normal(size=(5, 7, 3)), rng.normal(size=(5, 7, 8))
    layer(x)
    layer.backward(g)
    full = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer.zero_grad()
    layer(x)
    assert layer.backward_params(g) is None
    for n, p in layer.named_parameters():
        np.testing.assert_array_equal(p.grad, full[n], err_msg=n)


@pytest.mark.parametrize("kind", LAYERS)
def test_float32_stays_float32(kind):
    layer = LAYERS[kind](2, 4, bidirectional=True, rng=0)
    y = layer(np.ones((3, 5, 2), dtype=np.float32))
    assert y.dtype == np.float32
    assert layer.backward(np.ones((3, 5, 8), dtype=np.float32)).dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())


def test_last_step_is_out_minus_one():
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    step = nn.LastStep()
    np.testing.assert_array_equal(step(x), x[:, -1])
    grad_x = step.backward(np.ones((3, 5)))
    assert grad_x.shape == (3, 4, 5) and grad_x[:, -1].sum() == 15 and grad_x[:, :-1].sum() == 0


@pytest.mark.parametrize("kind", LAYERS)
def test_bad_shapes_name_the_layer_and_the_expected_shape(kind):
    layer = LAYERS[kind](3, 4, bidirectional=True, rng=0)
    with pytest.raises(ValueError, match=rf"^x: {kind}\(input_size=3, hidden_size=4\) expected shape \(N, T, 3\)"):
        layer(np.zeros((2, 5, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^x: .*got \(2, 3\)"):
        layer(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^x: .*T >= 1"):
        layer(np.zeros((2, 0, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=rf"^h0: {kind}.* expected shape \(2, 2, 4\)"):
        layer(np.zeros((2, 5, 3), dtype=np.float32), h0=np.zeros((1, 2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^x: LastStep expected shape \(N, T, F\)"):
        nn.LastStep()(np.zeros((2, 3), dtype=np.float32))


@pytest.mark.parametrize("argument,make", [
    ("input_size", lambda: nn.GRU(0, 3)), ("hidden_size", lambda: nn.LSTM(2, -1)),
    ("bidirectional", lambda: nn.GRU(2, 3, bidirectional=2)), ("bias", lambda: nn.LSTM(2, 3, bias=None)),
    ("dtype", lambda: nn.GRU(2, 3, dtype="float16")),
])
def test_bad_constructor_argument_is_named(argument, make):
    with pytest.raises(ValueError, match=rf"^{argument}:"):
        make()


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before forward"):
        nn.GRU(2, 3).backward(np.zeros((1, 1, 3), dtype=np.float32))


class _FlattenSteps(Module):
    """(N, T, F) -> (N, T*F), as the paper's GRU ends (nn.Flatten's job in a model)."""

    def forward(self, x):
        self.cache["shape"] = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_y):
        return grad_y.reshape(self.cache["shape"])


def test_paper_gru_learns_mnist1d_subset():
    """The MNIST-1D paper's GRU (bidirectional, hidden 6, all steps -> Linear(480, 10)), Adam 1e-2."""
    from mlpframe.data.mnist1d import generate_mnist1d

    data = generate_mnist1d()
    x = data["x"][:1000, :, None].astype(np.float32)  # (N, 40, 1) sequences
    y = data["y"][:1000]
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.GRU(1, 6, bidirectional=True, rng=rng), _FlattenSteps(),
                          nn.Linear(480, 10, rng=rng, init="torch"))
    crit = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for epoch in range(6):
        for i in range(0, 1000, 100):
            opt.zero_grad()
            losses.append(float(crit(model(x[i:i + 100]), y[i:i + 100])))
            model.backward_params(crit.backward())
            opt.step()
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert np.isfinite(losses).all()
    assert last < 0.8 * first, f"loss {first:.3f} -> {last:.3f}"


def test_gradcheck_suite_covers_the_recurrent_modules():
    names = [name for name, _ in gradcheck.module_cases()]
    for cls in (nn.GRU, nn.LSTM, nn.LastStep):
        assert any(n.startswith(cls.__name__) for n in names), f"{cls.__name__} is not in python -m mlpframe gradcheck"
    assert "GRU(bidirectional, bias=False)" in names and "LSTM(bidirectional, bias=False)" in names
