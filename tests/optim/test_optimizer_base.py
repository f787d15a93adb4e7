"""The Optimizer bookkeeping: groups, validation, zero_grad, skipping, state_dict, no host syncs."""

from __future__ import annotations

import copy
import pathlib
import re

import numpy as np
import pytest

import mlpframe.optim
from mlpframe import optim
from mlpframe.backend import get_backend
from mlpframe.nn import Identity, Parameter, Sequential

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
]
CONFIG_IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]


def feed_grads(be, params, k, dtype):
    for i, p in enumerate(params):
        g = np.random.default_rng([k, i, 7]).standard_normal(p.shape) + 0.3 * be.to_numpy(p.data)
        p.grad = be.asarray(g, dtype=dtype)


# --------------------------------------------------------------- validation
INVALID = [
    ("SGD", dict(lr=-0.1), "lr"),
    ("SGD", dict(lr="fast"), "lr"),
    ("SGD", dict(lr=float("nan")), "lr"),
    ("SGD", dict(lr=float("inf")), "lr"),
    ("SGD", dict(lr=None), "lr"),
    ("SGD", dict(lr=0.1, momentum=-0.5), "momentum"),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=1.5), "dampening"),
    ("SGD", dict(lr=0.1, weight_decay=-1e-4), "weight_decay"),
    ("SGD", dict(lr=0.1, nesterov=True), "nesterov"),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    ("SGD", dict(lr=0.1, nesterov="yes"), "nesterov"),
    ("Adam", dict(lr=-1e-3), "lr"),
    ("Adam", dict(betas=(1.0, 0.999)), "betas[0]"),
    ("Adam", dict(betas=(0.9, -0.1)), "betas[1]"),
    ("Adam", dict(betas=(0.9,)), "betas"),
    ("Adam", dict(betas=0.9), "betas"),
    ("Adam", dict(eps=-1e-8), "eps"),
    ("Adam", dict(weight_decay=-0.1), "weight_decay"),
    ("AdamW", dict(lr=-1.0), "lr"),
    ("AdamW", dict(betas=(0.9, 1.0)), "betas[1]"),
    ("AdamW", dict(weight_decay=float("nan")), "weight_decay"),
]


@pytest.mark.parametrize(("name", "kw", "arg"), INVALID, ids=[f"{n}-{a}-{kw}" for n, kw, a in INVALID])
def test_invalid_hyperparameters_raise_value_error_naming_the_argument(name, kw, arg):
    p = Parameter(np.zeros(3))
    with pytest.raises(ValueError, match="^" + re.escape(arg) + ":"):
        getattr(optim, name)([p], **kw)


def test_invalid_group_override_is_rejected():
    p, q = Parameter(np.zeros(3)), Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="^lr:"):
        optim.SGD([{"params": [p]}, {"params": [q], "lr": -1.0}], lr=0.1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([], "empty"),
        (Parameter(np.zeros(2)), "single Parameter"),
        ([np.zeros(2)], "not a Parameter"),
        ([{"lr": 0.1}], "'params' key"),
        (Sequential(Identity()), "pass model.parameters()"),
    ],
    ids=["empty", "bare-parameter", "array", "group-without-params", "module"],
)
def test_invalid_params_raise_value_error(params, message):
    with pytest.raises(ValueError, match="^params:.*" + re.escape(message)):
        optim.SGD(params, lr=0.1)


def test_duplicate_parameter_is_rejected():
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


# ------------------------------------------------------------------- groups
def test_param_groups_fill_defaults_and_use_their_own_lr(be):
    p = Parameter(be.asarray(np.ones(2), dtype="float64"))
    q = Parameter(be.asarray(np.ones(2), dtype="float64"))
    opt = optim.SGD([{"params": [p]}, {"params": q, "lr": 1.0, "momentum": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert [g["momentum"] for g in opt.param_groups] == [0.0, 0.5]
    p.grad = be.asarray(np.ones(2), dtype="float64")
    q.grad = be.asarray(np.ones(2), dtype="float64")
    opt.step()
    np.testing.assert_allclose(be.to_numpy(p.data), [0.9, 0.9])
    np.testing.assert_allclose(be.to_numpy(q.data), [0.0, 0.0])


def test_zero_grad_sets_none_and_step_skips_parameters_without_grad(be):
    p = Parameter(be.asarray(np.ones(2), dtype="float32"))
    q = Parameter(be.asarray(np.ones(2), dtype="float32"))
    opt = optim.Adam([p, q], lr=0.1)
    p.grad = be.asarray(np.ones(2), dtype="float32")
    opt.step()
    assert p in opt.state and q not in opt.state
    np.testing.assert_array_equal(be.to_numpy(q.data), [1.0, 1.0])
    opt.zero_grad()
    assert p.grad is None and q.grad is None
    before = be.to_numpy(p.data).copy()
    opt.step()  # nothing has a gradient: nothing moves, no step is counted
    np.testing.assert_array_equal(be.to_numpy(p.data), before)
    assert opt.state[p]["step"] == 1


def test_step_writes_parameters_in_place(be):
    p = Parameter(be.asarray(np.ones(2), dtype="float32"))
    data = p.data
    for opt in (optim.SGD([p], lr=0.1, momentum=0.9), optim.Adam([p]), optim.AdamW([p])):
        p.grad = be.asarray(np.ones(2), dtype="float32")
        opt.step()
        assert p.data is data


# --------------------------------------------------------------- state_dict
def assert_plain(obj, where="state_dict"):
    """Only str keys, Python scalars/lists/tuples and host NumPy arrays: writable without pickle."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert type(k) is str, f"{where}: key {k!r} is {type(k).__name__}"
            assert_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            assert_plain(v, f"{where}[{i}]")
    elif isinstance(obj, np.ndarray):
        assert obj.dtype.kind == "f", f"{where}: array of dtype {obj.dtype}"
    else:
        assert type(obj) in (bool, int, float, str, type(None)), f"{where}: {type(obj).__name__}"


@pytest.mark.parametrize(("name", "kw"), CONFIGS, ids=CONFIG_IDS)
def test_state_dict_is_plain_data_and_a_copy(name, kw, be, make_params):
    params, _ = make_params(be, "float32")
    opt = getattr(optim, name)(params, **kw)
    for k in range(2):
        feed_grads(be, params, k, "float32")
        opt.step()
    sd = opt.state_dict()
    assert_plain(sd)
    assert sd["param_groups"][0]["params"] == [0, 1, 2]
    stateless = name == "SGD" and not kw.get("momentum")
    assert set(sd["state"]) == (set() if stateless else {"0", "1", "2"})
    for entry in sd["state"].values():
        for v in entry.values():
            if isinstance(v, np.ndarray):
                assert v.dtype == np.float32
    frozen = copy.deepcopy(sd)
    feed_grads(be, params, 5, "float32")
    opt.step()
    for key, entry in sd["state"].items():
        for name_, v in entry.items():
            np.testing.assert_array_equal(v, frozen["state"][key][name_], err_msg=f"{key}.{name_} changed")


@pytest.mark.parametrize(("name", "kw"), CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("target", ["same", "array_api_strict"])
def test_state_dict_round_trip_continues_identically(name, kw, target, be, make_params):
    """k steps, save, a new optimizer loads it, k more steps == 2k steps straight (bit for bit)."""
    k = 3
    straight, _ = make_params(be, "float32", seed=1)
    opt = getattr(optim, name)(straight, **kw)
    for step in range(2 * k):
        if step == k:
            opt.param_groups[0]["lr"] *= 0.5  # a scheduler's change must be saved too
        feed_grads(be, straight, step, "float32")
        opt.step()

    first, _ = make_params(be, "float32", seed=1)
    opt = getattr(optim, name)(first, **kw)
    for step in range(k):
        feed_grads(be, first, step, "float32")
        opt.step()
    opt.param_groups[0]["lr"] *= 0.5
    sd = opt.state_dict()
    frozen = copy.deepcopy(sd)
    weights = [be.to_numpy(p.data).copy() for p in first]

    be2 = be if target == "same" else get_backend(target)
    resumed = [Parameter(be2.asarray(w, dtype="float32")) for w in weights]
    opt2 = getattr(optim, name)(resumed, **kw)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for step in range(k, 2 * k):
        feed_grads(be2, resumed, step, "float32")
        opt2.step()
    for i, (a, b) in enumerate(zip(resumed, straight)):
        np.testing.assert_array_equal(be2.to_numpy(a.data), be.to_numpy(b.data), err_msg=f"parameter {i}")
    # the loaded arrays were copied: stepping did not write into the dict they came from
    for key, entry in sd["state"].items():
        for name_, v in entry.items():
            np.testing.assert_array_equal(v, frozen["state"][key][name_], err_msg=f"{key}.{name_} was written")


def test_load_state_dict_casts_to_the_parameter_dtype_and_backend(be):
    p = Parameter(be.asarray(np.ones((2, 2)), dtype="float32"))
    opt = optim.Adam([p])
    sd = {
        "state": {"0": {"step": np.int64(4), "m": np.full((2, 2), 0.5), "v": np.full((2, 2), 0.25)}},
        "param_groups": [{"lr": np.float64(0.01), "betas": [0.8, 0.9], "eps": 1e-8, "weight_decay": 0.0,
                          "params": [0]}],
    }
    opt.load_state_dict(sd)
    st = opt.state[p]
    assert type(st["step"]) is int and st["step"] == 4
    assert st["m"].dtype == be.dtype("float32") and type(st["m"]) is type(p.data)
    assert type(opt.param_groups[0]["lr"]) is float
    assert opt.param_groups[0]["betas"] == (0.8, 0.9)
    p.grad = be.asarray(np.ones((2, 2)), dtype="float32")
    opt.step()
    np.testing.assert_array_equal(sd["state"]["0"]["m"], np.full((2, 2), 0.5))  # not aliased


def _adam_state_dict(p):
    opt = optim.Adam([p])
    p.grad = np.ones_like(p.data)
    opt.step()
    return opt.state_dict()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda sd: sd.pop("state"), "expected the keys"),
        (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), "2 param group"),
        (lambda sd: sd["param_groups"][0].update(params=[0, 1]), "2 parameter"),
        (lambda sd: sd["state"]["0"].update(m=np.zeros(5)), "shape"),
        (lambda sd: sd["state"]["0"].pop("v"), "keeps"),
        (lambda sd: sd["state"]["0"].update(momentum_buffer=np.zeros(3)), "keeps"),
        (lambda sd: sd["state"].update({"7": sd["state"]["0"]}), "no param group lists"),
        (lambda sd: sd["param_groups"][0].update(lr=-1.0), "lr:"),
        (lambda sd: sd["state"]["0"].update(step="three"), "expected a number"),
    ],
    ids=["no-state", "groups", "params", "shape", "missing-v", "foreign-key", "bad-index", "bad-lr", "bad-step"],
)
def test_load_state_dict_rejects_mismatches_and_changes_nothing(mutate, message):
    p = Parameter(np.ones(3))
    sd = _adam_state_dict(p)
    mutate(sd)
    opt = optim.Adam([p], lr=0.5)
    p.grad = np.ones(3)
    opt.step()
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=re.escape(message)):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    np.testing.assert_array_equal(after["state"]["0"]["m"], before["state"]["0"]["m"])


# ------------------------------------------------------------ no host syncs
@pytest.fixture
def strict_sync_guard(monkeypatch):
    """Make every device-to-host conversion of an array_api_strict array raise."""
    import array_api_strict

    Array = type(array_api_strict.asarray(0.0))

    def forbidden(self, *args, **kwargs):
        raise AssertionError("host sync: an array was converted to a Python value or a NumPy array")

    for name in ("__float__", "__int__", "__bool__", "__index__", "__complex__", "__array__", "item", "tolist"):
        if hasattr(Array, name):
            monkeypatch.setattr(Array, name, forbidden)
    return get_backend("array_api_strict")


@pytest.mark.parametrize(("name", "kw"), CONFIGS, ids=CONFIG_IDS)
def test_step_never_syncs(name, kw, strict_sync_guard):
    be = strict_sync_guard
    rng = np.random.default_rng(0)
    params = [Parameter(be.asarray(rng.standard_normal(s), dtype="float32")) for s in [(3, 2), (2,)]]
    grads = [be.asarray(rng.standard_normal(p.shape), dtype="float32") for p in params]
    opt = getattr(optim, name)(params, **kw)
    for _ in range(3):
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        optim.clip_grad_norm_(params, 0.5)


def test_sync_guard_catches_a_sync(strict_sync_guard):
    x = strict_sync_guard.asarray(np.ones(2), dtype="float32")
    with pytest.raises(AssertionError, match="host sync"):
        float(strict_sync_guard.xp.sum(x))
    with pytest.raises(AssertionError, match="host sync"):
        strict_sync_guard.to_numpy(x)


# -------------------------------------------------------------------- style
def test_optim_sources_import_no_array_library():
    """One code path: optimizers take the namespace from the data, never numpy or cupy directly."""
    folder = pathlib.Path(mlpframe.optim.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert files
    pattern = re.compile(r"^\s*(import|from)\s+(numpy|cupy)\b", re.MULTILINE)
    offenders = [f.name for f in files if pattern.search(f.read_text())]
    assert not offenders, f"these optim files import numpy/cupy: {offenders}"
