"""Training ops with timm's algorithms (the official ConvNeXt recipe uses timm's create_transform): random resized
crop, horizontal flip, random erasing. Randomness comes from Python's ``random`` (crop, flip) and NumPy (erasing
pixels); the loader seeds both per sample."""

from __future__ import annotations

import math
import random
from typing import Sequence, Tuple

import numpy as np
from PIL import Image

from passl.data.transforms.eval import pil_interp
from passl.registry import TRANSFORMS, ConfigError

__all__ = ["RandomResizedCrop", "RandomHorizontalFlip", "RandomErasing"]


@TRANSFORMS.register
class RandomResizedCrop:
    """A crop of random area (``scale`` of the image) and log-uniform aspect ratio (``ratio``), 10 tries, then the
    central fallback; resized to ``size`` with ``interpolation``."""

    def __init__(
        self,
        size: int = 224,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: str = "bicubic",
    ) -> None:
        self.size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        if self.scale[0] > self.scale[1] or self.ratio[0] > self.ratio[1]:
            raise ConfigError(f"RandomResizedCrop: scale {self.scale} and ratio {self.ratio} must be (min, max)")
        self.interpolation = interpolation
        self._interp = pil_interp(interpolation)

    def get_params(self, img: Image.Image) -> Tuple[int, int, int, int]:
        width, height = img.size
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = random.uniform(*self.scale) * area
            aspect = math.exp(random.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if w <= width and h <= height:
                return random.randint(0, height - h), random.randint(0, width - w), h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def apply(self, img: Image.Image, top: int, left: int, h: int, w: int) -> Image.Image:
        return img.crop((left, top, left + w, top + h)).resize(self.size[::-1], self._interp)

    def __call__(self, img: Image.Image) -> Image.Image:
        return self.apply(img, *self.get_params(img))

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, {self.interpolation})"


@TRANSFORMS.register
class RandomHorizontalFlip:
    def __init__(self, prob: float = 0.5) -> None:
        self.prob = float(prob)

    def __call__(self, img):
        if random.random() < self.prob:
            if isinstance(img, np.ndarray):
                return np.ascontiguousarray(img[..., ::-1])
            return img.transpose(Image.FLIP_LEFT_RIGHT)
        return img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(prob={self.prob})"


@TRANSFORMS.register
class RandomErasing:
    """timm's RandomErasing on a normalized float32 CHW array: with ``prob``, erase ``max_count`` boxes of area
    [min_area, max_area] of the image and log-uniform aspect in [min_aspect, 1 / min_aspect]; ``mode`` "pixel" fills
    with per-pixel N(0, 1) noise, "rand" with per-channel noise, "const" with zeros."""

    def __init__(
        self,
        prob: float = 0.25,
        mode: str = "pixel",
        min_area: float = 0.02,
        max_area: float = 1 / 3,
        min_aspect: float = 0.3,
        max_aspect: float = None,
        min_count: int = 1,
        max_count: int = 1,
    ) -> None:
        if mode not in ("pixel", "rand", "const"):
            raise ConfigError(f"RandomErasing: mode must be pixel, rand or const, got '{mode}'")
        self.prob, self.mode = float(prob), mode
        self.min_area, self.max_area = float(min_area), float(max_area)
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect))
        self.min_count, self.max_count = int(min_count), int(max_count)

    def _fill(self, c: int, h: int, w: int) -> np.ndarray:
        if self.mode == "pixel":
            return np.random.normal(size=(c, h, w)).astype(np.float32)
        if self.mode == "rand":
            return np.random.normal(size=(c, 1, 1)).astype(np.float32)
        return np.zeros((c, 1, 1), dtype=np.float32)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if random.random() > self.prob:
            return img
        img = np.array(img, dtype=np.float32, copy=True)
        c, img_h, img_w = img.shape
        area = img_h * img_w
        count = self.min_count if self.min_count == self.max_count else random.randint(self.min_count, self.max_count)
        for _ in range(count):
            for _ in range(10):
                target_area = random.uniform(self.min_area, self.max_area) * area / count
                aspect = math.exp(random.uniform(*self.log_aspect))
                h = int(round(math.sqrt(target_area * aspect)))
                w = int(round(math.sqrt(target_area / aspect)))
                if w < img_w and h < img_h:
                    top, left = random.randint(0, img_h - h), random.randint(0, img_w - w)
                    img[:, top : top + h, left : left + w] = self._fill(c, h, w)
                    break
        return img

    def __repr__(self) -> str:
        return f"RandomErasing(prob={self.prob}, mode={self.mode}, count={self.min_count}-{self.max_count})"
