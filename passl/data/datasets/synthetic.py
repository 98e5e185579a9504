"""Synthetic images for smoke tests and benchmarks: deterministic per index, no files."""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as np
from PIL import Image

from passl.registry import DATASETS

__all__ = ["SyntheticImages"]


@DATASETS.register
class SyntheticImages:
    """``num_samples`` RGB (or grayscale) PIL images of ``image_size``; image i is random noise seeded by i plus a
    class-dependent brightness, label ``i % num_classes`` (so a model can learn something)."""

    def __init__(
        self,
        num_samples: int = 64,
        image_size: int = 32,
        num_classes: int = 10,
        channels: int = 3,
        transform: Optional[Callable] = None,
    ) -> None:
        self.num_samples, self.image_size = int(num_samples), int(image_size)
        self.num_classes, self.channels, self.transform = int(num_classes), int(channels), transform

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, idx: int) -> Tuple[Any, int]:
        label = idx % self.num_classes
        rng = np.random.RandomState(idx)
        shape = (self.image_size, self.image_size) + ((self.channels,) if self.channels > 1 else ())
        arr = rng.randint(0, 128, size=shape) + int(127 * label / max(self.num_classes - 1, 1))
        img = Image.fromarray(arr.astype(np.uint8))
        return (self.transform(img) if self.transform is not None else img), label
