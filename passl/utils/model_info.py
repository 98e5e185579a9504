"""Parameter and MAC counting. MACs are multiply-accumulates (the official README's "FLOPs" column):
convolutions and linear layers, counted from the shapes seen in one forward pass."""

from __future__ import annotations

from typing import Dict, Sequence

import paddle
import paddle.nn as nn

__all__ = ["count_params", "count_macs"]


def count_params(model: nn.Layer, trainable_only: bool = False) -> int:
    return int(sum(int(p.size) for p in model.parameters() if not (trainable_only and p.stop_gradient)))


def count_macs(model: nn.Layer, input_shape: Sequence[int] = (1, 3, 224, 224)) -> Dict[str, int]:
    """MACs per sample of one forward pass at ``input_shape``, split by layer kind, plus ``total``."""
    counts = {"conv": 0, "linear": 0}
    handles = []

    def conv_hook(layer, inputs, output):
        w = layer.weight  # [out, in/groups, kh, kw]
        kernel = int(w.shape[1]) * int(w.shape[2]) * int(w.shape[3])
        counts["conv"] += int(output.size) * kernel

    def linear_hook(layer, inputs, output):
        counts["linear"] += int(output.size) * int(layer.weight.shape[0])

    for layer in model.sublayers(include_self=True):
        if isinstance(layer, nn.Conv2D):
            handles.append(layer.register_forward_post_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_post_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(list(input_shape), dtype="float32"))
    finally:
        for h in handles:
            h.remove()
        if was_training:
            model.train()
    batch = int(input_shape[0])
    out = {k: v // batch for k, v in counts.items()}
    out["total"] = sum(out.values())
    return out
