"""The learning-rate schedule of a run, stepped once per epoch.

- ``plateau`` (the reference recipe's): the rate is halved (``plateau_factor``) when the
  validation loss has not improved for ``plateau_patience`` epochs.
- ``cosine``: a linear warm-up over ``warmup_epochs`` from a tenth of the rate, then a cosine
  decay that reaches ``lr_floor`` times the rate as the run ends.
- ``exponential``: the same warm-up, then a geometric decay that reaches ``lr_floor`` times the
  rate as the run ends (WeSpeaker's recipes: warm-up + exponential decay).
- ``onecycle``: PyTorch's one-cycle: up from a 25th of the rate over the first 30 % of the
  epochs, then a cosine decay to ``lr_floor`` times the rate.

A schedule that knows the run's length (all but ``plateau``) spends the whole budget: the rate
reaches its floor as the last epoch ends. Its state goes into every checkpoint, so a resumed run
continues the same curve bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
)

from cryprint.training.config import TrainConfig

# The warm-up starts from this fraction of the rate.
WARMUP_START = 0.1
# The one-cycle schedule's rising share of the run, and its starting fraction of the rate.
ONECYCLE_RISE = 0.3
ONECYCLE_START = 1 / 25

Scheduler = Any  # a torch LR scheduler, or ReduceLROnPlateau (which is not one)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Scheduler:
    """The schedule ``config.schedule`` names, over ``config.epochs`` epochs; the optimizer's
    rate is set to the first epoch's."""
    if config.schedule == "plateau":
        return ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
        )
    if config.schedule == "onecycle":
        return OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=config.epochs + 1,  # stepped after each epoch, the last one included
            pct_start=ONECYCLE_RISE,
            div_factor=1 / ONECYCLE_START,
            final_div_factor=ONECYCLE_START / config.lr_floor,
            cycle_momentum=False,  # Adam's betas stay as they are
        )
    warmup = min(config.warmup_epochs, config.epochs - 1)
    decay_epochs = max(1, config.epochs - warmup)
    if config.schedule == "cosine":
        decay = CosineAnnealingLR(
            optimizer, T_max=decay_epochs, eta_min=config.lr * config.lr_floor
        )
    else:
        decay = ExponentialLR(optimizer, gamma=config.lr_floor ** (1 / decay_epochs))
    if warmup == 0:
        return decay
    rise = LinearLR(optimizer, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [rise, decay], milestones=[warmup])


def step_scheduler(scheduler: Scheduler, validation_loss: float) -> None:
    """Advance the schedule after an epoch (the plateau looks at the validation loss)."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(validation_loss)
    else:
        scheduler.step()
