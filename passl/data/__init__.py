"""Data: datasets and transforms, registered in ``passl.registry.DATASETS`` and ``TRANSFORMS``.

Contract used across the library:
- A dataset item is ``(image, label)``; image-file datasets give a PIL RGB image to the transforms, the transforms
  end with ``Normalize`` (PIL -> float32 CHW numpy array) and may run array ops (RandomErasing) after it.
- ``build_dataset(cfg, transforms=None)`` builds ``{name: ImageNet, ...}``; ``build_transforms(list)`` builds a
  ``Compose`` from ``[{name: Op, ...}, ...]``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from passl.data import datasets as _datasets  # noqa: F401  (registers the datasets)
from passl.data import transforms as _transforms  # noqa: F401  (registers the ops)
from passl.data.transforms import Compose, build_transforms
from passl.registry import DATASETS

__all__ = ["build_dataset", "build_transforms", "Compose"]


def build_dataset(cfg: Mapping[str, Any], transforms: Optional[Sequence[Mapping[str, Any]]] = None):
    """Build a dataset; ``transforms`` (a list of op configs) is built and passed as ``transform=``."""
    extra = {}
    if transforms is not None:
        extra["transform"] = build_transforms(transforms)
    return DATASETS.build(cfg, **extra)
