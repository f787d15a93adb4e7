"""Learning-rate schedules: closed forms, PyTorch's sequences, checkpoints, validation."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest

from mlpframe import optim
from mlpframe.nn import Parameter

EPOCHS = 25
BASE_LRS = (0.1, 0.03)


def make_opt(base_lrs=BASE_LRS):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in base_lrs]
    return optim.SGD(groups, lr=base_lrs[0], momentum=0.9)


def lr_sequence(opt, sched, epochs=EPOCHS):
    """lr of every group after construction, then after each step(); checks get_last_lr agrees."""
    out = []
    for epoch in range(epochs + 1):
        if epoch:
            sched.step()
        lrs = [g["lr"] for g in opt.param_groups]
        assert sched.get_last_lr() == lrs
        out.append(lrs)
    return np.array(out)


# (name, our constructor, closed form lr(base, epoch), torch constructor)
def _warmup_then(inner_ours, inner_closed, inner_torch, W=4, sf=0.25):
    def ours(o):
        return optim.LinearWarmup(o, W, start_factor=sf, after=inner_ours(o) if inner_ours else None)

    def closed(b, e):
        if e < W:
            return b * (sf + (1 - sf) * e / W)
        return inner_closed(b, e - W) if inner_closed else b

    def torch_(o, lr_scheduler):
        warm = lr_scheduler.LinearLR(o, start_factor=sf, end_factor=1.0, total_iters=W)
        if inner_torch is None:
            return warm
        return lr_scheduler.SequentialLR(o, [warm, inner_torch(o, lr_scheduler)], milestones=[W])

    return ours, closed, torch_


CASES = {
    "constant": (lambda o: optim.LRScheduler(o), lambda b, e: b, None),
    "step": (
        lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
        lambda b, e: b * 0.5 ** (e // 3),
        lambda o, s: s.StepLR(o, step_size=3, gamma=0.5),
    ),
    "step-default-gamma": (
        lambda o: optim.StepLR(o, step_size=10),
        lambda b, e: b * 0.1 ** (e // 10),
        lambda o, s: s.StepLR(o, step_size=10),
    ),
    "cosine": (
        lambda o: optim.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
        lambda b, e: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * e / 7)) / 2,
        lambda o, s: s.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    ),
    "cosine-to-zero": (
        lambda o: optim.CosineAnnealingLR(o, T_max=EPOCHS),
        lambda b, e: b * (1 + math.cos(math.pi * e / EPOCHS)) / 2,
        lambda o, s: s.CosineAnnealingLR(o, T_max=EPOCHS),
    ),
    "warmup-constant": _warmup_then(None, None, None),
    "warmup-step": _warmup_then(
        lambda o: optim.StepLR(o, step_size=5, gamma=0.3),
        lambda b, e: b * 0.3 ** (e // 5),
        lambda o, s: s.StepLR(o, step_size=5, gamma=0.3),
    ),
    "warmup-cosine": _warmup_then(
        lambda o: optim.CosineAnnealingLR(o, T_max=12),
        lambda b, e: b * (1 + math.cos(math.pi * e / 12)) / 2,
        lambda o, s: s.CosineAnnealingLR(o, T_max=12),
        W=5, sf=0.1,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_closed_form(case):
    ours, closed, _ = CASES[case]
    opt = make_opt()
    got = lr_sequence(opt, ours(opt))
    expected = np.array([[closed(b, e) for b in BASE_LRS] for e in range(EPOCHS + 1)])
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


@pytest.mark.torch
@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][2] is not None or c == "warmup-constant"])
def test_matches_torch_sequence(case):
    torch = pytest.importorskip("torch")
    ours, _, make_torch = CASES[case]
    opt = make_opt()
    got = lr_sequence(opt, ours(opt))

    params = [torch.zeros(2, requires_grad=True) for _ in BASE_LRS]
    topt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)], lr=BASE_LRS[0])
    tsched = make_torch(topt, torch.optim.lr_scheduler)
    expected = [[g["lr"] for g in topt.param_groups]]
    for _ in range(EPOCHS):
        topt.step()  # (no gradients: a no-op that keeps torch from warning about the call order)
        tsched.step()
        expected.append([g["lr"] for g in topt.param_groups])
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", list(CASES))
def test_state_dict_round_trip_resumes_the_sequence(case):
    ours, _, _ = CASES[case]
    opt = make_opt()
    straight = lr_sequence(opt, ours(opt))

    opt = make_opt()
    sched = ours(opt)
    for _ in range(9):
        sched.step()
    saved = copy.deepcopy(sched.state_dict())
    opt_sd = copy.deepcopy(opt.state_dict())
    assert "state" not in saved and all(not isinstance(v, np.ndarray) for v in saved.values())

    opt2 = make_opt()
    sched2 = ours(opt2)
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(saved)
    assert sched2.last_epoch == 9
    resumed = [[g["lr"] for g in opt2.param_groups]]
    for _ in range(EPOCHS - 9):
        sched2.step()
        resumed.append([g["lr"] for g in opt2.param_groups])
    np.testing.assert_array_equal(np.array(resumed), straight[9:])


def test_scheduler_lr_reaches_the_update():
    """The optimizer reads group["lr"] at each step: a scheduled lr changes the update."""
    p = Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    moves = []
    for _ in range(3):
        before = p.data.copy()
        p.grad = np.ones(1)
        opt.step()
        moves.append(float(before[0] - p.data[0]))
        sched.step()
    assert moves == [1.0, 0.5, 0.25]


def test_initial_lr_is_shared_between_schedulers():
    opt = make_opt()
    inner = optim.CosineAnnealingLR(opt, T_max=4)
    warm = optim.LinearWarmup(opt, 2, start_factor=0.5, after=inner)
    assert [g["initial_lr"] for g in opt.param_groups] == list(BASE_LRS)
    assert warm.base_lrs == inner.base_lrs == list(BASE_LRS)
    assert warm.get_last_lr() == [0.05, 0.015]


INVALID = [
    (lambda o: optim.StepLR(o, step_size=0), "step_size"),
    (lambda o: optim.StepLR(o, step_size=2.5), "step_size"),
    (lambda o: optim.StepLR(o, step_size=True), "step_size"),
    (lambda o: optim.StepLR(o, step_size=2, gamma=-0.5), "gamma"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=0), "T_max"),
    (lambda o: optim.CosineAnnealingLR(o, T_max="10"), "T_max"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=10, eta_min=-1e-3), "eta_min"),
    (lambda o: optim.LinearWarmup(o, warmup_epochs=0), "warmup_epochs"),
    (lambda o: optim.LinearWarmup(o, warmup_epochs=3, start_factor=1.5), "start_factor"),
    (lambda o: optim.LinearWarmup(o, warmup_epochs=3, start_factor=-0.1), "start_factor"),
    (lambda o: optim.LinearWarmup(o, 3, after=optim.StepLR(make_opt(), 2)), "after"),
    (lambda o: optim.StepLR(object(), step_size=2), "optimizer"),
]


@pytest.mark.parametrize(("build", "arg"), INVALID, ids=[a + str(i) for i, (_, a) in enumerate(INVALID)])
def test_invalid_arguments_raise_value_error_naming_the_argument(build, arg):
    with pytest.raises(ValueError, match="^" + re.escape(arg) + ":"):
        build(make_opt())


def test_load_state_dict_rejects_a_mismatch():
    opt = make_opt()
    sched = optim.StepLR(opt, step_size=2)
    with pytest.raises(ValueError, match="expects the keys"):
        sched.load_state_dict(optim.CosineAnnealingLR(make_opt(), T_max=3).state_dict())
    with pytest.raises(ValueError, match="base lr"):
        sched.load_state_dict(optim.StepLR(make_opt(base_lrs=(0.1,)), step_size=2).state_dict())
    warm = optim.LinearWarmup(opt, 2, after=optim.StepLR(opt, 2))
    other = optim.LinearWarmup(opt, 2)  # constant after the warm-up, not StepLR
    with pytest.raises(ValueError, match="after the warm-up"):
        warm.load_state_dict(other.state_dict())
