"""Exponential moving average of a model's weights (timm's ModelEma, updated after every optimizer step)."""

from __future__ import annotations

import copy
from typing import List, Optional, Tuple

import paddle
import paddle.nn as nn

__all__ = ["ModelEMA"]

_FLOAT = (paddle.float32, paddle.float64, paddle.float16, paddle.bfloat16)


class ModelEMA:
    """``ema = decay * ema + (1 - decay) * weights`` for float tensors, in place (one lerp kernel per tensor); other
    buffers are copied. The (EMA tensor, model tensor) pairs are found once. With ``optimizer`` under AMP O2 the
    float32 master weights are averaged, not their float16/bfloat16 copies in the model."""

    def __init__(self, model: nn.Layer, decay: float = 0.9999, optimizer: Optional[paddle.optimizer.Optimizer] = None):
        self.module = copy.deepcopy(model)
        self.module.eval()
        for p in self.module.parameters():
            p.stop_gradient = True
        self.decay = float(decay)
        self.optimizer = optimizer
        self._pairs: Optional[List[Tuple[paddle.Tensor, paddle.Tensor]]] = None
        self._source: Optional[nn.Layer] = None

    def _pairs_for(self, model: nn.Layer) -> List[Tuple[paddle.Tensor, paddle.Tensor]]:
        if self._pairs is None or self._source is not model:
            src = model.state_dict()
            self._pairs = [(ema_v, src[name]) for name, ema_v in self.module.state_dict().items()]
            self._source = model
        return self._pairs

    @paddle.no_grad()
    def update(self, model: nn.Layer) -> None:
        masters = getattr(self.optimizer, "_master_weights", None) or {}
        weight = 1.0 - self.decay
        for ema_v, v in self._pairs_for(model):
            if ema_v.dtype in _FLOAT:
                v = masters.get(v.name, v)
                ema_v.lerp_(v if v.dtype == ema_v.dtype else v.astype(ema_v.dtype), weight)
            else:
                paddle.assign(v, output=ema_v)

    def state_dict(self):
        return self.module.state_dict()

    def set_state_dict(self, state) -> None:
        self.module.set_state_dict(state)
