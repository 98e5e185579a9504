"""Optimizers with the official ConvNeXt parameter groups: no weight decay on 1-D parameters (biases, norms,
gamma) nor on parameters named ``*.bias``, ``*.gamma`` or ``*.beta`` (V2's GRN, as the official V2 fine-tuning
code), and optional layer-wise lr decay driven by the model's own ``get_layer_id`` (rule ``group`` or ``single``);
optional gradient clipping by the global norm over all groups."""

from __future__ import annotations

import functools
import logging
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn

from passl.registry import OPTIMIZERS, ConfigError

__all__ = ["param_groups", "build_optimizer", "layer_id_of", "clip_grad_norm_", "AdamW", "Momentum", "SGD"]

logger = logging.getLogger("passl.solver")
_NO_DECAY_SUFFIXES = (".bias", ".gamma", ".beta")  # official V2 fine-tuning: biases, layer scale, GRN gamma/beta


def layer_id_of(model: nn.Layer, name: str, decay_type: Optional[str] = None) -> Tuple[int, int]:
    """(layer id, number of layer ids) of a parameter for layer-wise lr decay.

    The backbone (any sublayer named ``backbone`` with a ``get_layer_id(name)`` method, or the model itself)
    decides; parameters outside the backbone (the head) get the last id. ``decay_type`` picks the backbone's rule
    (ConvNeXt: ``group`` or ``single``); None takes the backbone's default (V1 ``group``, V2 ``single``).
    """
    backbone = getattr(model, "backbone", model)
    if not hasattr(backbone, "get_layer_id"):
        raise ConfigError(
            f"optimizer.layer_decay is set but {type(backbone).__name__} has no get_layer_id(); set layer_decay: null"
        )
    decay_type = decay_type or getattr(backbone, "default_layer_decay_type", None)
    if decay_type is None:  # a backbone with a single rule
        num, get = backbone.num_layer_ids, backbone.get_layer_id
    else:
        num = backbone.layer_id_count(decay_type)
        get = functools.partial(backbone.get_layer_id, decay_type=decay_type)
    if backbone is model:
        return get(name), num
    if name.startswith("backbone."):
        return get(name[len("backbone.") :]), num
    return num - 1, num


def param_groups(
    model: nn.Layer,
    weight_decay: float,
    layer_decay: Optional[float] = None,
    no_weight_decay: Sequence[str] = (),
    layer_decay_type: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """Groups of parameters sharing (weight decay, lr scale). Decay is 0 for every parameter with ndim <= 1, for
    names ending in ``.bias``, ``.gamma`` or ``.beta`` and for names containing any of ``no_weight_decay``; the lr
    scale is ``layer_decay ** (last_id - id)`` with the backbone's ``layer_decay_type`` rule."""
    groups: Dict[Tuple[float, float], Dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if p.stop_gradient:
            continue
        no_wd = p.ndim <= 1 or name.endswith(_NO_DECAY_SUFFIXES) or any(k in name for k in no_weight_decay)
        wd = 0.0 if no_wd else float(weight_decay)
        scale = 1.0
        if layer_decay is not None:
            lid, num = layer_id_of(model, name, layer_decay_type)
            scale = float(layer_decay) ** (num - 1 - lid)
        g = groups.setdefault((wd, scale), {"params": [], "names": [], "weight_decay": wd, "learning_rate": scale})
        g["params"].append(p)
        g["names"].append(name)
    return list(groups.values())


@paddle.no_grad()
def clip_grad_norm_(parameters: Iterable[paddle.Tensor], max_norm: float) -> Optional[paddle.Tensor]:
    """Scale the gradients of ``parameters`` in place so that their joint L2 norm is at most ``max_norm``.

    Same rule as ``paddle.nn.ClipGradByGlobalNorm`` (``grad *= max_norm / max(norm, max_norm)``, the norm summed
    in float32 so float16/bfloat16 gradients do not overflow). Returns the norm before clipping as a float32 tensor
    (no host synchronisation), or None when no parameter has a gradient.
    """
    grads = [p.grad for p in parameters if not p.stop_gradient and p.grad is not None]
    if not grads:
        return None
    norm = paddle.sqrt(paddle.add_n([paddle.sum(paddle.square(g.astype("float32"))) for g in grads]))
    coef = float(max_norm) / paddle.clip(norm, min=float(max_norm))
    for g in grads:
        g.multiply_(coef.astype(g.dtype))
    return norm


class _GlobalNormClip:
    """Gradient clipping by the norm over *all* parameter groups, applied at the start of ``step()``.

    Paddle hands an optimizer's ``grad_clip`` to each parameter group separately, so a ``ClipGradByGlobalNorm``
    would clip every group (decay / no decay, each layer-decay scale) by that group's own norm. Under AMP,
    ``GradScaler.step`` unscales the gradients before it calls ``step()``, so the clip sees true gradients; when
    the scaler found inf/nan gradients, Paddle skips the update that follows.
    """

    clip_grad: Optional[float] = None
    grad_norm: Optional[paddle.Tensor] = None  # the norm before clipping at the last step (when clipping)

    def step(self) -> None:
        if self.clip_grad:
            groups = self._param_groups
            params = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
            self.grad_norm = clip_grad_norm_(params, self.clip_grad)
        super().step()


class AdamW(_GlobalNormClip, paddle.optimizer.AdamW):
    """``paddle.optimizer.AdamW`` with global-norm ``clip_grad``."""


class Momentum(_GlobalNormClip, paddle.optimizer.Momentum):
    """``paddle.optimizer.Momentum`` with global-norm ``clip_grad``."""


class SGD(_GlobalNormClip, paddle.optimizer.SGD):
    """``paddle.optimizer.SGD`` with global-norm ``clip_grad``."""


def _with_clip(optimizer: _GlobalNormClip, clip_grad: Optional[float]) -> _GlobalNormClip:
    optimizer.clip_grad = float(clip_grad) if clip_grad else None
    return optimizer


def _adamw(params, learning_rate, weight_decay, betas=(0.9, 0.999), epsilon=1e-8, clip_grad=None, **_):
    opt = AdamW(
        learning_rate=learning_rate,
        parameters=params,
        beta1=betas[0],
        beta2=betas[1],
        epsilon=epsilon,
        weight_decay=weight_decay,
    )
    return _with_clip(opt, clip_grad)


def _momentum(params, learning_rate, weight_decay, momentum=0.9, nesterov=False, clip_grad=None, **_):
    opt = Momentum(
        learning_rate=learning_rate,
        parameters=params,
        momentum=momentum,
        use_nesterov=nesterov,
        weight_decay=weight_decay,
    )
    return _with_clip(opt, clip_grad)


def _sgd(params, learning_rate, weight_decay, clip_grad=None, **_):
    return _with_clip(SGD(learning_rate=learning_rate, parameters=params, weight_decay=weight_decay), clip_grad)


OPTIMIZERS.register(_adamw, name="AdamW")
OPTIMIZERS.register(_momentum, name="Momentum")
OPTIMIZERS.register(_sgd, name="SGD")

_COMMON = {"name", "lr", "weight_decay", "layer_decay", "layer_decay_type", "clip_grad", "no_weight_decay"}
_SPECIFIC = {"AdamW": {"betas", "epsilon"}, "Momentum": {"momentum", "nesterov"}, "SGD": set()}


def build_optimizer(cfg: Mapping[str, Any], model: nn.Layer, lr_scheduler) -> paddle.optimizer.Optimizer:
    """Build the optimizer of ``cfg`` (the ``optimizer`` section) over ``model``'s parameter groups."""
    name = cfg.get("name", "AdamW")
    OPTIMIZERS.get(name)  # unknown names fail here with close matches
    unknown = set(cfg) - _COMMON - _SPECIFIC.get(name, set())
    if unknown:
        raise ConfigError(
            f"optimizer ({name}) has unknown key(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(_COMMON | _SPECIFIC.get(name, set())))}"
        )
    decay_type = cfg.get("layer_decay_type")
    if decay_type not in (None, "group", "single"):
        raise ConfigError(f"optimizer.layer_decay_type must be group, single or null, got {decay_type!r}")
    groups = param_groups(
        model,
        float(cfg.get("weight_decay", 0.0)),
        cfg.get("layer_decay"),
        tuple(cfg.get("no_weight_decay") or ()),
        decay_type,
    )
    for g in groups:
        logger.debug(
            "param group wd=%s lr_scale=%.4g: %d tensors", g["weight_decay"], g["learning_rate"], len(g["names"])
        )
    clip = cfg.get("clip_grad")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip < 0):
        raise ConfigError(f"optimizer.clip_grad must be a non-negative number or null (off), got {clip!r}")
    kwargs = {k: v for k, v in cfg.items() if k in _SPECIFIC.get(name, set())}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    paddle_groups = [{k: v for k, v in g.items() if k != "names"} for g in groups]
    return OPTIMIZERS.get(name)(
        paddle_groups, lr_scheduler, float(cfg.get("weight_decay", 0.0)), clip_grad=clip, **kwargs
    )
