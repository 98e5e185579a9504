"""Optimizers with the official parameter groups, and lr schedules (the one place epochs become iterations)."""

from passl.solver.lr import WarmupCosine, build_lr_scheduler, cosine_schedule  # noqa: F401
from passl.solver.optim import build_optimizer, clip_grad_norm_, param_groups  # noqa: F401
