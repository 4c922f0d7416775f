"""Learning-rate schedules as pure functions of the optimiser step.

The rate at step t (0-based, T steps in all, W warm-up steps) is

    warm-up (t < W):  lr · (t + 1) / W
    constant:         lr
    step:             lr · γ^k, k = number of milestones m (in epochs) with m · steps_per_epoch ≤ t
    cosine:           lr · ½ (1 + cos(π (t − W) / (T − W)))            (Loshchilov & Hutter 2017)
    onecycle:         Smith & Topin 2018, as torch's OneCycleLR with cosine annealing: from
                      lr/25 up to lr over the first 30 % of the steps, then down to lr/25/10⁴

Being a function of t alone, the schedule needs no state beyond the step count, which the
checkpoint stores: a resumed run continues on exactly the same curve.
"""

from __future__ import annotations

import math

ONECYCLE_WARM_FRACTION = 0.3
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4


def learning_rate(
    schedule: str,
    lr: float,
    step: int,
    total_steps: int,
    steps_per_epoch: int,
    warmup_steps: int = 0,
    milestones: list[int] | None = None,
    gamma: float = 0.1,
) -> float:
    """The learning rate of optimiser step ``step`` (0-based) under ``schedule``; see the module."""
    if schedule == "onecycle":
        return _one_cycle(lr, step, total_steps)
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "step":
        passed = sum(1 for epoch in milestones or () if step >= epoch * steps_per_epoch)
        return lr * gamma**passed
    if schedule == "cosine":
        span = max(total_steps - warmup_steps, 1)
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / span))
    raise ValueError(f"unknown schedule {schedule!r}")


def default_milestones(epochs: int) -> list[int]:
    """Half and three quarters of the epochs: He et al.'s 82 and 123 of 164 (ResNet §4.2)."""
    return sorted({max(1, epochs // 2), max(1, (3 * epochs) // 4)})


def _one_cycle(lr: float, step: int, total_steps: int) -> float:
    """Cosine up from lr/25 to lr over 30 % of the steps, cosine down to lr/25/10⁴ after."""
    start = lr / ONECYCLE_DIV_FACTOR
    end = start / ONECYCLE_FINAL_DIV_FACTOR
    peak_step = float(ONECYCLE_WARM_FRACTION * total_steps) - 1
    if step <= peak_step:
        return _cosine_between(start, lr, step / peak_step)
    return _cosine_between(lr, end, (step - peak_step) / (total_steps - 1 - peak_step))


def _cosine_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * fraction))
