"""Learning-rate schedules against their formulas and torch's own schedulers."""

import math

import pytest
import torch

from cnnkit.train.schedules import default_milestones, learning_rate


def torch_rates(scheduler_factory, steps, lr=0.1):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    scheduler = scheduler_factory(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_constant_and_warmup():
    rates = [learning_rate("constant", 0.1, t, 100, 10, warmup_steps=5) for t in range(10)]
    assert rates[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert rates[5:] == [0.1] * 5


def test_step_matches_multistep_lr():
    steps_per_epoch, milestones = 7, [3, 5]
    ours = [learning_rate("step", 0.1, t, 56, steps_per_epoch, milestones=milestones, gamma=0.1) for t in range(56)]
    theirs = torch_rates(
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [m * steps_per_epoch for m in milestones], 0.1), 56
    )
    assert ours == pytest.approx(theirs, rel=1e-12)


def test_cosine_matches_cosine_annealing_lr():
    ours = [learning_rate("cosine", 0.1, t, 50, 10) for t in range(50)]
    theirs = torch_rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50), 50)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    assert ours[25] == pytest.approx(0.05)


def test_cosine_after_warmup_follows_the_formula():
    warm, total = 10, 60
    for t in range(warm, total):
        expected = 0.1 * 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))
        assert learning_rate("cosine", 0.1, t, total, 10, warmup_steps=warm) == pytest.approx(expected)


def test_onecycle_matches_torch():
    ours = [learning_rate("onecycle", 0.1, t, 100, 10) for t in range(100)]
    theirs = torch_rates(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=100, cycle_momentum=False), 100
    )
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def test_default_milestones_are_he_et_al():
    assert default_milestones(164) == [82, 123]
