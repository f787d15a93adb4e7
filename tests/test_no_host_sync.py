"""GPU readiness on the CPU: a training step converts nothing to the host.

On CuPy every ``float(x)``, ``x.item()``, ``if x:`` or ``backend.to_numpy(x)``
waits for the GPU; on NumPy the same line costs nothing, so it would go unnoticed.
Here data and parameters are :class:`DeviceOnly` arrays — a NumPy subclass whose
host conversions raise while the trap is armed — and ``Backend.to_numpy`` raises
too. Everything computed from them stays a ``DeviceOnly`` array (NumPy keeps the
subclass through ufuncs, matmul, reductions and ``take``), so a conversion
anywhere in forward, loss, backward, clipping or the optimizer step fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import backend as backend_module
from mlpframe import get_backend, nn, optim
from mlpframe.backend import Backend

ARMED = [True]


class HostSyncError(AssertionError):
    """A device-to-host conversion happened where none may."""


def _trap(name: str):
    def method(self, *args, **kwargs):
        if ARMED[0]:
            raise HostSyncError(f"host sync: {name}() on a device array inside the training step")
        return getattr(np.ndarray, name)(np.asarray(self), *args, **kwargs)
    return method


class DeviceOnly(np.ndarray):
    """A NumPy array that behaves like a device array: no silent trip to the host."""

    __float__ = _trap("__float__")
    __int__ = _trap("__int__")
    __index__ = _trap("__index__")
    __bool__ = _trap("__bool__")
    __complex__ = _trap("__complex__")
    item = _trap("item")
    tolist = _trap("tolist")


def device_only(a: np.ndarray) -> DeviceOnly:
    return a.view(DeviceOnly)


class _DeviceNumPy:
    """NumPy as layer code sees it here: new and joined arrays are DeviceOnly, as a device library's are.

    Without this, a buffer from ``xp.empty`` or a result of ``xp.concat``/``xp.stack``
    (which drop NumPy subclasses) would be a plain array, and a sync downstream of it
    (a recurrent layer's outputs, say) would go unnoticed.
    """

    __name__ = "numpy"
    MAKES_ARRAYS = {"empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ones_like", "full_like",
                    "arange", "eye", "linspace", "concat", "stack"}

    def __getattr__(self, name):
        f = getattr(np, name)
        if name in self.MAKES_ARRAYS:
            return lambda *args, **kwargs: device_only(np.asarray(f(*args, **kwargs)))
        return f


DEVICE_NUMPY = _DeviceNumPy()


@pytest.fixture
def traps(monkeypatch):
    """Arm the traps; the namespace lookup treats DeviceOnly as NumPy (its fast path is exact-type)."""
    real_lookup = backend_module._namespace_for_type
    monkeypatch.setattr(backend_module, "_namespace_for_type",
                        lambda t: DEVICE_NUMPY if issubclass(t, DeviceOnly) else real_lookup(t))
    real_to_numpy = Backend.to_numpy
    transfers = []

    def to_numpy(self, a):
        if ARMED[0]:
            raise HostSyncError("host sync: backend.to_numpy() inside the training step")
        transfers.append(getattr(a, "shape", ()))
        return real_to_numpy(self, np.asarray(a))

    monkeypatch.setattr(Backend, "to_numpy", to_numpy)
    ARMED[0] = True
    yield transfers
    ARMED[0] = True


def _model(norm=None, dropout=0.0):
    be = get_backend("numpy")
    model = nn.MLP(8, [16, 16], 4, activation="relu", norm=norm, dropout=dropout, rng=0).to(be)
    for p in model.parameters():
        p.data = device_only(p.data)
    return model


def _batch(seed=0, n=32):
    rng = np.random.default_rng(seed)
    x = device_only(rng.standard_normal((n, 8), dtype=np.float32))
    y = device_only(rng.integers(0, 4, size=n))
    return x, y


def _step(model, crit, opt, x, y, clip=None):
    opt.zero_grad()
    loss = crit(model(x), y)
    model.backward(crit.backward())
    if clip is not None:
        optim.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss


@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=1e-3),
    lambda ps: optim.AdamW(ps, lr=1e-3),
], ids=["sgd", "nesterov", "adam", "adamw"])
@pytest.mark.parametrize("norm,dropout", [(None, 0.0), ("batch", 0.2), ("layer", 0.0)])
def test_training_step_converts_nothing_to_host(traps, make_opt, norm, dropout):
    model = _model(norm, dropout)
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    opt = make_opt(model.parameters())
    before = [np.array(p.data) for p in model.parameters()]
    for i in range(3):
        x, y = _batch(i)
        loss = _step(model, crit, opt, x, y, clip=1.0)
    # the trap did not just silence the step: it ran, and its results are still device arrays
    assert isinstance(loss, DeviceOnly)
    assert all(isinstance(p.data, DeviceOnly) for p in model.parameters())
    assert any(not np.array_equal(b, np.asarray(p.data)) for b, p in zip(before, model.parameters()))
    assert traps == []


def test_backward_params_step_converts_nothing_to_host(traps):
    """The benchmark's step: the model's input gradient is skipped."""
    model = _model()
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = _batch()
    opt.zero_grad()
    crit(model(x), y)
    model.backward_params(crit.backward())
    opt.step()
    assert all(isinstance(p.grad, DeviceOnly) for p in model.parameters())


@pytest.mark.parametrize("dims", [1, 2])
def test_cnn_step_converts_nothing_to_host(traps, dims):
    """Convolution, pooling, BatchNorm on feature maps and Flatten: forward, backward, step."""
    conv, bn, maxpool, avgpool = ((nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d) if dims == 1 else
                                  (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d))
    model = nn.Sequential(conv(2, 4, 3, stride=2, padding=1, rng=0), bn(4), nn.ReLU(), maxpool(2, padding=1),
                          conv(4, 4, 3, padding=1, rng=1), nn.ReLU(), avgpool(2), nn.Flatten(),
                          nn.Linear(4 * 2 ** dims, 4, rng=2), nn.Dropout(0.1)).to(get_backend("numpy"))
    for p in model.parameters():
        p.data = device_only(p.data)
    rng = np.random.default_rng(0)
    x = device_only(rng.standard_normal((8, 2, *(12,) * dims), dtype=np.float32))
    y = device_only(rng.integers(0, 4, size=8))
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for backward in (model.backward, model.backward_params):
        opt.zero_grad()
        loss = crit(model(x), y)
        backward(crit.backward())
        opt.step()
    gap = nn.GlobalAvgPool()
    gap.backward(gap(x))
    assert isinstance(loss, DeviceOnly)
    assert all(isinstance(p.data, DeviceOnly) and isinstance(p.grad, DeviceOnly) for p in model.parameters())
    assert traps == []


@pytest.mark.parametrize("sync", [
    lambda loss: float(loss),
    lambda loss: loss.item(),
    lambda loss: bool(loss > 0),
    lambda loss: get_backend("numpy").to_numpy(loss),
    lambda loss: loss.tolist(),
], ids=["float", "item", "if", "to_numpy", "tolist"])
def test_an_added_sync_in_the_step_is_caught(traps, sync):
    """The harness itself: a step with ``float(loss)`` (or the like) must fail."""
    model = _model()
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = _batch()
    with pytest.raises(HostSyncError):
        sync(_step(model, crit, opt, x, y))


def test_a_sync_inside_a_layer_is_caught(traps, monkeypatch):
    model = _model()
    real = nn.ReLU.forward

    def chatty(self, x):
        y = real(self, x)
        if get_backend("numpy").xp.max(y) > 100:  # an innocent-looking check is a host sync on a GPU
            pass
        return y

    monkeypatch.setattr(nn.ReLU, "forward", chatty)
    with pytest.raises(HostSyncError):
        model(_batch()[0])


def test_trainer_syncs_once_per_log_interval(traps, monkeypatch):
    """Between log intervals the Trainer's inner step converts nothing to the host."""
    from mlpframe.data.loader import DataLoader
    from mlpframe.engine import Trainer
    from mlpframe.engine.metrics import Accumulator

    be = get_backend("numpy")
    rng = np.random.default_rng(0)
    n, batch, every = 16 * 7, 16, 3  # 7 steps: syncs after steps 3, 6 and the last one, 7
    loader = DataLoader(rng.standard_normal((n, 8)), rng.integers(0, 4, size=n), batch, be, shuffle=True,
                        drop_last=True)
    loader.X, loader.y = device_only(loader.X), device_only(loader.y)
    model = _model()
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9), be,
                      max_epochs=1, grad_clip=1.0, log_every_n_steps=every)
    synced_at, loop_transfers = [], []
    real_sync, real_epoch = Accumulator.sync, Trainer._train_epoch

    def sync(self):  # the deliberate, marked host sync
        synced_at.append(trainer.state.global_step)
        ARMED[0] = False
        try:
            return real_sync(self)
        finally:
            ARMED[0] = True

    def train_epoch(self, loader):  # armed only inside the training loop
        ARMED[0] = True
        start = len(traps)
        try:
            return real_epoch(self, loader)
        finally:
            ARMED[0] = False
            loop_transfers.extend(traps[start:])

    monkeypatch.setattr(Accumulator, "sync", sync)
    monkeypatch.setattr(Trainer, "_train_epoch", train_epoch)
    ARMED[0] = False
    result = trainer.fit(loader)
    assert result.status == "completed"
    assert synced_at == [3, 6, 7]
    assert len(loop_transfers) == len(synced_at)  # one transfer per sync, none elsewhere in the loop


def test_trainer_with_a_sync_in_the_step_fails(traps, monkeypatch):
    from mlpframe.data.loader import DataLoader
    from mlpframe.engine import Trainer

    be = get_backend("numpy")
    rng = np.random.default_rng(0)
    loader = DataLoader(rng.standard_normal((32, 8)), rng.integers(0, 4, size=32), 16, be)
    loader.X, loader.y = device_only(loader.X), device_only(loader.y)
    model = _model()

    class SyncingLoss(nn.CrossEntropyLoss):
        def forward(self, inputs, targets):
            loss = super().forward(inputs, targets)
            print(f"loss {float(loss):.3f}")  # the bug this test exists for
            return loss

    trainer = Trainer(model, SyncingLoss(), optim.SGD(model.parameters(), lr=0.1), be, max_epochs=1,
                      log_every_n_steps=100)
    with pytest.raises(HostSyncError):
        trainer.fit(loader)


class _FlattenSteps(nn.Module):
    """(N, T, F) -> (N, T*F) for the recurrent step below."""

    def forward(self, x):
        self.cache["shape"] = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_y):
        return grad_y.reshape(self.cache["shape"])


@pytest.mark.parametrize("head", ["flatten", "last_step"])
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_recurrent_training_step_converts_nothing_to_host(traps, kind, head):
    """GRU/LSTM forward, backward through time (with and without grad_x) and Adam: no host sync."""
    rng = np.random.default_rng(0)
    N, T, I, H = 8, 6, 2, 3
    rnn = getattr(nn, kind)(I, H, bidirectional=True, rng=rng)
    tail = (_FlattenSteps(), nn.Linear(T * 2 * H, 4, rng=rng)) if head == "flatten" else (
        nn.LastStep(), nn.Linear(2 * H, 4, rng=rng))
    model = nn.Sequential(rnn, *tail)
    for p in model.parameters():
        p.data = device_only(p.data)
    crit = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    before = [np.array(p.data) for p in model.parameters()]
    for i in range(2):
        x = device_only(rng.standard_normal((N, T, I), dtype=np.float32))
        y = device_only(rng.integers(0, 4, size=N))
        h0 = device_only(rng.standard_normal((2, N, H), dtype=np.float32))
        opt.zero_grad()
        loss = crit(model[2](model[1](rnn(x, h0=h0))), y)
        grad_x = model.backward(crit.backward())
        opt.step()
        opt.zero_grad()
        crit(model(x), y)
        model.backward_params(crit.backward())
        opt.step()
    assert isinstance(loss, DeviceOnly) and isinstance(grad_x, DeviceOnly)
    assert isinstance(rnn.grad_h0, DeviceOnly)
    assert all(isinstance(p.data, DeviceOnly) for p in model.parameters())
    assert any(not np.array_equal(b, np.asarray(p.data)) for b, p in zip(before, model.parameters()))
    assert traps == []


def test_a_sync_on_a_recurrent_layers_buffers_is_caught(traps, monkeypatch):
    """The gate-gradient buffers come from ``xp.empty``: a check on them must still trip the trap."""
    rng = np.random.default_rng(0)
    rnn = nn.GRU(2, 3, bidirectional=True, rng=rng)
    for p in rnn.parameters():
        p.data = device_only(p.data)
    real = nn.GRU._backward_loop

    def chatty(self, grad_out):
        grad_gi, grad_gh = real(self, grad_out)
        if np.max(grad_gi) > 100:  # an innocent-looking check is a host sync on a GPU
            pass
        return grad_gi, grad_gh

    monkeypatch.setattr(nn.GRU, "_backward_loop", chatty)
    y = rnn(device_only(rng.standard_normal((4, 5, 2), dtype=np.float32)))
    with pytest.raises(HostSyncError):
        rnn.backward(y)
