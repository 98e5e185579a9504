"""Data: datasets and transforms, registered in ``passl.registry.DATASETS`` and ``TRANSFORMS``.

Contract used across the library:
- A dataset item is ``(image, label)``; image-file datasets give a PIL RGB image to the transforms, the transforms
  end with ``Normalize`` (PIL -> float32 CHW numpy array) and may run array ops (RandomErasing) after it.
- ``build_dataset(cfg, transforms=None)`` builds ``{name: ImageNet, ...}``; ``build_transforms(list)`` builds a
  ``Compose`` from ``[{name: Op, ...}, ...]``.
- ``imagenet_classes()`` gives the 1000 ImageNet-1k ``(wnid, name)`` pairs shipped in ``imagenet_classes.txt``, in
  label order (sorted wnids, the order of the class-folder datasets).
"""

from __future__ import annotations

import functools
import os
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from passl.data import datasets as _datasets  # noqa: F401  (registers the datasets)
from passl.data import transforms as _transforms  # noqa: F401  (registers the ops)
from passl.data.datasets.classes import check_classes
from passl.data.datasets.imagenet import CorruptImageError, load_image
from passl.data.transforms import Compose, build_transforms
from passl.registry import DATASETS

__all__ = [
    "build_dataset",
    "build_transforms",
    "check_classes",
    "Compose",
    "CorruptImageError",
    "imagenet_classes",
    "imagenet_class_names",
    "imagenet_wnids",
    "load_image",
]


def build_dataset(
    cfg: Mapping[str, Any],
    transforms: Optional[Sequence[Mapping[str, Any]]] = None,
    for_eval: bool = False,
    classes_from: Any = None,
):
    """Build a dataset; ``transforms`` (a list of op configs) is built and passed as ``transform=``. With
    ``for_eval``, an image dataset skips corrupt images (``on_corrupt: skip``) by leaving them out of the metrics
    (``skip_as: ignore``) unless the config says otherwise, so no image is ever counted twice.

    ``classes_from`` (the training set) gives its class list to a class-folder dataset whose config has none, so a
    validation folder missing a class maps the others by name, not by position."""
    extra: dict = {}
    if transforms is not None:
        extra["transform"] = build_transforms(transforms)
    known = getattr(classes_from, "classes", None)
    if known is not None and cfg.get("classes") is None and "classes" in _parameters(DATASETS.get(cfg.get("name"))):
        extra["classes"] = list(known)
    ds = DATASETS.build({k: v for k, v in cfg.items() if not (k == "classes" and "classes" in extra)}, **extra)
    if for_eval and hasattr(ds, "skip_as") and "skip_as" not in cfg:
        ds.skip_as = "ignore"
    if hasattr(ds, "config_key"):
        ds.config_key = "data.val.dataset" if for_eval else "data.train.dataset"
    return ds


def _parameters(target: Any) -> Tuple[str, ...]:
    import inspect

    try:
        return tuple(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return ()


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> Tuple[Tuple[str, str], ...]:
    """The 1000 ImageNet-1k ``(wnid, name)`` pairs in label order (sorted wnids); ``name`` is the WordNet lemmas,
    e.g. ``("n01440764", "tench, Tinca tinca")``."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                wnid, name = line.rstrip("\n").split("\t", 1)
                out.append((wnid, name))
    return tuple(out)


def imagenet_class_names() -> List[str]:
    """The 1000 ImageNet-1k class names, index = label."""
    return [name for _, name in imagenet_classes()]


def imagenet_wnids() -> List[str]:
    """The 1000 ImageNet-1k wnids, sorted: index = label."""
    return [wnid for wnid, _ in imagenet_classes()]
