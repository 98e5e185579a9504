"""Losses, registered: cross entropy with optional label smoothing, and soft-target cross entropy for mixup."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from passl.registry import LOSSES, ConfigError

__all__ = ["CrossEntropyLoss", "SoftTargetCrossEntropy"]


@LOSSES.register
class CrossEntropyLoss(nn.Layer):
    """Mean cross entropy on integer labels, with label smoothing ``eps``: target = (1-eps) one-hot + eps/K.

    Soft targets ([N, K] floats, e.g. from mixup) are accepted too and use the soft-target form.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"CrossEntropyLoss: label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
        logp = F.log_softmax(logits.astype("float32"), axis=-1)
        if target.ndim == logits.ndim and target.shape[-1] == logits.shape[-1] and target.dtype != paddle.int64:
            return -(target.astype("float32") * logp).sum(axis=-1).mean()
        target = target.reshape([-1]).astype("int64")
        nll = -paddle.take_along_axis(logp, target.unsqueeze(-1), axis=-1).squeeze(-1)
        if self.label_smoothing == 0.0:
            return nll.mean()
        smooth = -logp.mean(axis=-1)
        return ((1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth).mean()


@LOSSES.register
class SoftTargetCrossEntropy(nn.Layer):
    """sum(-target * log_softmax(logits)) averaged over the batch; targets are [N, K] probabilities."""

    def forward(self, logits: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
        if target.ndim != 2:
            raise ValueError(
                f"SoftTargetCrossEntropy needs [N, num_classes] soft targets (from mixup/cutmix), got shape "
                f"{list(target.shape)}; use CrossEntropyLoss for integer labels"
            )
        logp = F.log_softmax(logits.astype("float32"), axis=-1)
        return -(target.astype("float32") * logp).sum(axis=-1).mean()
