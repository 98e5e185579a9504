"""Exponential moving average of a model's weights (timm's ModelEma, updated after every optimizer step)."""

from __future__ import annotations

import copy

import paddle
import paddle.nn as nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """``ema = decay * ema + (1 - decay) * weights`` for float tensors; other buffers are copied."""

    def __init__(self, model: nn.Layer, decay: float = 0.9999) -> None:
        self.module = copy.deepcopy(model)
        self.module.eval()
        for p in self.module.parameters():
            p.stop_gradient = True
        self.decay = float(decay)

    @paddle.no_grad()
    def update(self, model: nn.Layer) -> None:
        src = model.state_dict()
        for name, ema_v in self.module.state_dict().items():
            v = src[name]
            if ema_v.dtype in (paddle.float32, paddle.float64, paddle.float16, paddle.bfloat16):
                paddle.assign(ema_v * self.decay + v.astype(ema_v.dtype) * (1.0 - self.decay), output=ema_v)
            else:
                paddle.assign(v, output=ema_v)

    def state_dict(self):
        return self.module.state_dict()

    def set_state_dict(self, state) -> None:
        self.module.set_state_dict(state)
