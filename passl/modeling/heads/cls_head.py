"""Classification head: Linear on the backbone's pooled, normalized feature."""

from __future__ import annotations

from typing import Optional

import paddle
import paddle.nn as nn

from passl.modeling.layers import trunc_normal_, zeros_
from passl.registry import HEADS, ConfigError

__all__ = ["ConvNeXtClsHead"]


@HEADS.register
class ConvNeXtClsHead(nn.Layer):
    """Linear(in_channels, num_classes), truncated-normal(0.02) init, weight and bias scaled by ``head_init_scale``
    (1.0 from scratch, 0.001 when fine-tuning, as the official recipe). ``drop_rate`` adds dropout before the fc.
    ``in_channels`` null is filled in by ``Classification`` with the backbone's feature width."""

    def __init__(
        self,
        in_channels: Optional[int] = None,
        num_classes: int = 1000,
        head_init_scale: float = 1.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels is None:
            raise ConfigError(
                "ConvNeXtClsHead: in_channels is null; it is taken from the backbone when the whole model is built "
                "(passl.modeling.build_model(cfg.model)); to build the head alone give model.head.in_channels "
                "(the backbone's last dims value, e.g. 768 for tiny)"
            )
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(self.in_channels, self.num_classes)
        trunc_normal_(self.fc.weight, std=0.02)
        zeros_(self.fc.bias)
        with paddle.no_grad():
            self.fc.weight.set_value(self.fc.weight * head_init_scale)
            self.fc.bias.set_value(self.fc.bias * head_init_scale)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(self.drop(x))
