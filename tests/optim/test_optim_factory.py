"""build_optimizer / build_scheduler: the names the command line uses."""

from __future__ import annotations

import numpy as np
import pytest

from mlpframe import optim
from mlpframe.nn import Parameter


def params():
    return [Parameter(np.zeros(3)), Parameter(np.zeros(2))]


@pytest.mark.parametrize(("name", "cls"), [("sgd", optim.SGD), ("adam", optim.Adam), ("adamw", optim.AdamW),
                                           ("AdamW", optim.AdamW)])
def test_build_optimizer_by_name(name, cls):
    opt = optim.build_optimizer(name, params(), lr=0.05)
    assert type(opt) is cls and opt.param_groups[0]["lr"] == 0.05


def test_build_optimizer_passes_arguments_and_yaml_lists():
    opt = optim.build_optimizer("adam", params(), lr=0.01, betas=[0.8, 0.9], weight_decay=0.1)
    assert opt.param_groups[0]["betas"] == (0.8, 0.9) and opt.param_groups[0]["weight_decay"] == 0.1
    opt = optim.build_optimizer("sgd", params(), lr=0.1, momentum=0.9, nesterov=True)
    assert opt.param_groups[0]["nesterov"] is True


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("rmsprop", dict(lr=0.1), "choose from sgd, adam, adamw"),
        ("sgd", dict(lr=0.1, betas=(0.9, 0.99)), "takes no argument betas"),
        ("sgd", dict(), "needs lr"),
        ("adam", dict(lr=-1.0), "lr:"),
    ],
)
def test_build_optimizer_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        optim.build_optimizer(name, params(), **kwargs)


def test_build_scheduler_by_name():
    opt = optim.build_optimizer("sgd", params(), lr=0.1)
    assert type(optim.build_scheduler("none", opt)) is optim.LRScheduler
    assert type(optim.build_scheduler("step", opt, step_size=3, gamma=0.5)) is optim.StepLR
    assert type(optim.build_scheduler("cosine", opt, T_max=10)) is optim.CosineAnnealingLR


def test_build_scheduler_with_warmup_hands_over():
    opt = optim.build_optimizer("sgd", params(), lr=0.1)
    sched = optim.build_scheduler("cosine", opt, T_max=4, eta_min=0.0, warmup_epochs=2, warmup_start_factor=0.5)
    assert isinstance(sched, optim.LinearWarmup) and isinstance(sched.after, optim.CosineAnnealingLR)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(6):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    np.testing.assert_allclose(lrs, [0.05, 0.075, 0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05,
                                     0.1 * (1 + np.cos(3 * np.pi / 4)) / 2, 0.0], atol=1e-15)
    const = optim.build_scheduler("none", optim.build_optimizer("sgd", params(), lr=0.1), warmup_epochs=3)
    assert isinstance(const, optim.LinearWarmup) and type(const.after) is optim.LRScheduler


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("exponential", dict(), "choose from none, step, cosine"),
        ("step", dict(step_size=2, T_max=3), "takes no argument T_max"),
        ("cosine", dict(), "needs T_max"),
        ("none", dict(gamma=0.1), "takes no argument gamma"),
        ("step", dict(step_size=2, warmup_epochs=-1), "warmup_epochs:"),
        ("step", dict(step_size=0), "step_size:"),
    ],
)
def test_build_scheduler_errors(name, kwargs, message):
    opt = optim.build_optimizer("sgd", params(), lr=0.1)
    with pytest.raises(ValueError, match=message):
        optim.build_scheduler(name, opt, **kwargs)
