"""Learning-rate schedules, configured in epochs and converted to optimizer steps here and nowhere else."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from paddle.optimizer.lr import LRScheduler

from passl.registry import SCHEDULERS, ConfigError

__all__ = ["cosine_schedule", "WarmupCosine", "build_lr_scheduler"]


def cosine_schedule(
    base_value: float,
    final_value: float,
    epochs: int,
    niter_per_ep: int,
    warmup_epochs: float = 0,
    start_warmup_value: float = 0.0,
    warmup_steps: int = -1,
) -> np.ndarray:
    """Per-step values of the official ConvNeXt/BEiT ``cosine_scheduler``: a linear warmup from
    ``start_warmup_value`` to ``base_value`` over the warmup steps (both ends included), then a cosine from
    ``base_value`` down to ``final_value`` over the remaining steps."""
    warmup_iters = int(warmup_epochs * niter_per_ep)
    if warmup_steps > 0:
        warmup_iters = warmup_steps
    warmup = np.linspace(start_warmup_value, base_value, warmup_iters) if warmup_iters > 0 else np.array([])
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    cosine = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / max(len(iters), 1)))
    schedule = np.concatenate((warmup, cosine))
    if len(schedule) != epochs * niter_per_ep:
        raise ConfigError(
            f"lr schedule: warmup ({warmup_iters} steps) is longer than training ({epochs * niter_per_ep} steps); "
            f"lower lr_scheduler.warmup_epochs"
        )
    return schedule


@SCHEDULERS.register
class WarmupCosine(LRScheduler):
    """Paddle LRScheduler over the precomputed per-step values; ``step()`` once per optimizer step."""

    def __init__(
        self,
        learning_rate: float,
        epochs: int,
        steps_per_epoch: int,
        warmup_epochs: float = 0,
        min_lr: float = 1e-6,
        warmup_start_lr: float = 0.0,
        warmup_steps: int = -1,
    ) -> None:
        self.values = cosine_schedule(
            learning_rate, min_lr, epochs, steps_per_epoch, warmup_epochs, warmup_start_lr, warmup_steps
        )
        super().__init__(learning_rate=learning_rate)

    def get_lr(self) -> float:
        i = min(max(self.last_epoch, 0), len(self.values) - 1)
        return float(self.values[i])


@SCHEDULERS.register
class ConstantLR(LRScheduler):
    """A constant learning rate (for debugging and linear probes)."""

    def __init__(self, learning_rate: float, epochs: int = 1, steps_per_epoch: int = 1) -> None:
        super().__init__(learning_rate=learning_rate)

    def get_lr(self) -> float:
        return float(self.base_lr)


def build_lr_scheduler(cfg: Mapping[str, Any], learning_rate: float, epochs: int, steps_per_epoch: int) -> LRScheduler:
    """Build ``cfg`` (``{name: WarmupCosine, warmup_epochs: 20, min_lr: 1.0e-6}``); ``steps_per_epoch`` counts
    optimizer steps (loader batches // accum_steps)."""
    if steps_per_epoch < 1:
        raise ConfigError(
            f"lr schedule: {steps_per_epoch} optimizer steps per epoch; the dataset is smaller than one "
            f"(batch_size x accum_steps x processes); lower data.train.batch_size or train.accum_steps"
        )
    if not math.isfinite(learning_rate) or learning_rate < 0:
        raise ConfigError(f"optimizer.lr must be a non-negative number, got {learning_rate}")
    return SCHEDULERS.build(cfg, learning_rate=learning_rate, epochs=epochs, steps_per_epoch=steps_per_epoch)
