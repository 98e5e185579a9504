"""The library from Python in one line, on the same registries and zoo as the configs (docs/finetune.md):

    import passl
    passl.list_models("convnext*")                     # ['convnext_atto', ..., 'convnext_xlarge']
    passl.list_models(pretrained=True)                 # the zoo's weight names
    model = passl.create_model("convnext_tiny", pretrained=True, num_classes=5)   # new 5-class head
    model = passl.create_model("convnext_base_22k_1k_224", pretrained=True)       # a weight name
    transform = passl.create_transform("convnext_base_22k_1k_384")               # its eval preprocessing

A *model name* is ``<backbone>_<arch>`` in lower case (``convnext_tiny``): every registered backbone that carries
an arch table (``ConvNeXt`` has ``CONVNEXT_ARCHS``) contributes its archs, so a new family is listed the day it is
registered. A *weight name* is a zoo entry (docs/model_zoo.md); it names its architecture too.
"""

from __future__ import annotations

import fnmatch
import inspect
import sys
from typing import Any, Dict, List, Optional, Tuple, Union

from passl.registry import ConfigError

__all__ = ["list_models", "create_model", "create_transform", "transform_config", "model_config"]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _archs() -> Dict[str, Tuple[str, str]]:
    """model name -> (backbone registry name, arch) for every registered backbone with an arch table."""
    import passl.modeling  # noqa: F401  (registers the backbones)
    from passl.registry import BACKBONES

    out: Dict[str, Tuple[str, str]] = {}
    for name in BACKBONES.names():
        cls = BACKBONES.get(name)
        table = getattr(cls, "ARCHS", None) or getattr(sys.modules.get(cls.__module__), f"{name.upper()}_ARCHS", None)
        for arch in table or {}:
            out[f"{name.lower()}_{arch}"] = (name, arch)
    return out


def _zoo():
    from passl.weights.zoo import ZOO

    return ZOO


def _weight_backbone(info: Any) -> str:
    return getattr(info, "backbone", None) or getattr(info, "family", None) or "ConvNeXt"


def list_models(pattern: str = "*", pretrained: bool = False) -> List[str]:
    """Model names matching the shell-style ``pattern`` (``convnext_t*``), sorted; with ``pretrained=True``, the
    zoo's weight names instead (each loads with ``create_model(name, pretrained=True)``)."""
    names = list(_zoo()) if pretrained else list(_archs())
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def _default_weight(backbone: str, arch: str) -> Optional[str]:
    """The first 1000-class 224 weight of that architecture in zoo order (the ImageNet-1K EMA weights where the
    official release has them)."""
    for w in _zoo().values():
        if _weight_backbone(w) == backbone and w.arch == arch and w.num_classes == 1000 and w.resolution == 224:
            return w.name
    return None


def _resolve(name: str, pretrained: Union[bool, str, None]) -> Tuple[str, str, Optional[str]]:
    """(backbone, arch, weight source or None) of a model or weight name."""
    zoo, archs = _zoo(), _archs()
    if name in zoo:
        info = zoo[name]
        backbone, arch = _weight_backbone(info), info.arch
        default = name
    elif name in archs:
        backbone, arch = archs[name]
        default = _default_weight(backbone, arch)
    else:
        import difflib

        close = difflib.get_close_matches(name, [*archs, *zoo], n=3, cutoff=0.5)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(
            f"unknown model '{name}'{hint}; passl.list_models() gives the model names, "
            f"passl.list_models(pretrained=True) the weight names"
        )
    if pretrained is True:
        if default is None:
            raise ConfigError(f"{name} has no pretrained weight in the zoo; pass pretrained=ZOO_NAME|URL|PATH")
        return backbone, arch, default
    return backbone, arch, (pretrained or None)


def model_config(name: str, num_classes: Optional[int] = None, **overrides: Any) -> Dict[str, Any]:
    """The ``model`` section ``create_model`` builds: backbone arguments and head arguments (``head_init_scale``,
    ``drop_rate``) may be overridden by keyword; an unknown keyword is an error naming the accepted ones."""
    backbone, arch, _ = _resolve(name, None)
    return _model_cfg(backbone, arch, num_classes or 1000, overrides)


def _model_cfg(backbone: str, arch: str, num_classes: int, overrides: Dict[str, Any]) -> Dict[str, Any]:
    from passl.registry import BACKBONES, HEADS

    bb_args = set(inspect.signature(BACKBONES.get(backbone)).parameters)
    head_args = set(inspect.signature(HEADS.get("ConvNeXtClsHead")).parameters) - {"in_channels", "num_classes"}
    arch_cfg: Dict[str, Any] = {"name": backbone, "arch": arch}
    head: Dict[str, Any] = {"name": "ConvNeXtClsHead", "num_classes": int(num_classes)}
    for k, v in overrides.items():
        if k in bb_args:
            arch_cfg[k] = v
        elif k in head_args:
            head[k] = v
        else:
            raise ConfigError(
                f"create_model: unknown argument '{k}'; {backbone} takes {', '.join(sorted(bb_args))}, the head "
                f"{', '.join(sorted(head_args))}"
            )
    head["in_channels"] = _feature_width(backbone, arch_cfg)
    return {"name": "Classification", "architecture": arch_cfg, "head": head}


def _feature_width(backbone: str, arch_cfg: Dict[str, Any]) -> int:
    """The backbone's output width (the head's input): the last of ``dims`` given or in the arch table, else read
    from a built backbone (a family whose table has another shape)."""
    if arch_cfg.get("dims"):
        return int(arch_cfg["dims"][-1])
    from passl.registry import BACKBONES

    cls = BACKBONES.get(backbone)
    table = getattr(cls, "ARCHS", None) or getattr(sys.modules.get(cls.__module__), f"{backbone.upper()}_ARCHS", {})
    entry = table.get(arch_cfg.get("arch"))
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        return int(entry[1][-1])
    if isinstance(entry, dict) and entry.get("dims"):
        return int(entry["dims"][-1])
    from passl.modeling.backbones import build_backbone

    return int(build_backbone(dict(arch_cfg)).num_features)


def create_model(
    name: str,
    pretrained: Union[bool, str, None] = False,
    num_classes: Optional[int] = None,
    *,
    use_ema: bool = False,
    **overrides: Any,
):
    """A Classification model (backbone + head, ``forward`` -> logits) by model or weight name.

    ``pretrained``: False (random init), True (the name's zoo weight; for a model name the ImageNet-1K 224 one), or
    a zoo name, URL or file. ``num_classes``: the head's outputs (default: the weight's, else 1000); when it differs
    from the weight's, the pretrained classifier is dropped and the new head initialised, as fine-tuning configs do
    (``model.drop_head``). ``overrides`` go to the backbone (``drop_path_rate=0.1``, ``in_chans=1``) or the head
    (``head_init_scale``, ``drop_rate``). A model with ImageNet-1K weights carries the class names
    (``model.class_names``); tools/predict.py and exports use them.
    """
    backbone, arch, source = _resolve(name, pretrained)
    info = _zoo().get(source) if isinstance(source, str) else None
    weight_classes = info.num_classes if info is not None else None
    classes = int(num_classes or weight_classes or 1000)
    from passl.modeling import build_model

    model = build_model(_model_cfg(backbone, arch, classes, overrides))
    model.class_names = None
    if source:
        from passl.weights import load_pretrained

        drop = weight_classes is not None and weight_classes != classes
        if info is None and num_classes is not None:
            drop = True  # a file or URL of unknown class count: keep the backbone, initialise the asked-for head
        load_pretrained(model, source, drop_head=drop, use_ema=use_ema)
        if not drop and classes == 1000 and (info is None or info.num_classes == 1000):
            from passl.data import imagenet_class_names

            model.class_names = imagenet_class_names()
    model.eval()
    return model


def transform_config(name: str, size: Optional[int] = None) -> List[Dict[str, Any]]:
    """The eval preprocessing of a weight (or a model name's default weight) as config ops, as configs write
    ``data.val.transforms``: the weight's resolution, crop (center crop at 0.875 below 384, squash at 384) and the
    ImageNet mean/std. ``size`` overrides the resolution."""
    zoo = _zoo()
    if name in zoo:
        info = zoo[name]
    else:
        backbone, arch, weight = _resolve(name, True) if name in _archs() else _resolve(name, None)
        info = zoo.get(weight) if weight else None
    res = int(size or (info.resolution if info is not None else 224))
    pct = info.crop_pct if info is not None else 0.875
    mode = info.crop_mode if info is not None else "center"
    return [
        {"name": "ToRGB"},
        {"name": "ResizeCrop", "size": res, "crop_pct": pct, "crop_mode": mode, "interpolation": "bicubic"},
        {"name": "Normalize", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    ]


def create_transform(name: str, size: Optional[int] = None):
    """A callable PIL image -> float32 CHW array: the eval preprocessing of weight (or model) ``name``
    (:func:`transform_config`), built by the same transform registry as the configs."""
    from passl.data import build_transforms

    return build_transforms(transform_config(name, size))
