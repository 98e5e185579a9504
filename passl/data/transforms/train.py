"""Training ops with timm's algorithms (the official ConvNeXt recipe uses timm's create_transform): random resized
crop, horizontal flip, colour jitter, random erasing, and ``train_transform_cfgs``, the official pipeline as op
configs. Randomness comes from Python's ``random`` (crop, flip, jitter, erasing boxes) and NumPy (erasing pixels);
the loader seeds both per sample."""

from __future__ import annotations

import math
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageEnhance

from passl.data.transforms.eval import IMAGENET_MEAN, IMAGENET_STD, pil_interp
from passl.registry import TRANSFORMS, ConfigError

__all__ = ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomErasing", "train_transform_cfgs"]


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


Range = Optional[Tuple[float, float]]


def _jitter_range(name: str, value: Union[float, Sequence[float], None], center: float, bound: float) -> Range:
    """torchvision's rule: a number v gives [max(0, center - v), center + v] (hue: [-v, v]); a pair is used as is;
    a range that is just ``center`` means "off" (None)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"ColorJitter: {name} must be >= 0, got {value}")
        lo, hi = center - float(value), center + float(value)
        if name != "hue":
            lo = max(lo, 0.0)
    elif len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ConfigError(f"ColorJitter: {name} must be a number or a [min, max] pair, got {value!r}")
    if not (-bound <= lo <= hi <= bound) or (name != "hue" and lo < 0):
        raise ConfigError(f"ColorJitter: {name} range [{lo}, {hi}] is invalid (min <= max, within [0, {bound}])")
    return None if lo == hi == center else (lo, hi)


def _adjust_hue(img: Image.Image, shift: float) -> Image.Image:
    """Rotate the hue channel of an RGB image by ``shift`` turns (uint8 HSV in PIL, wrapping around)."""
    if img.mode in ("L", "1", "I", "F"):
        return img
    mode = img.mode
    h, s, v = img.convert("HSV").split()
    hue = (np.asarray(h, dtype=np.int64) + int(shift * 255)) % 256  # int(): truncation towards zero
    return Image.merge("HSV", (Image.fromarray(hue.astype(np.uint8), "L"), s, v)).convert(mode)


_JITTER_FNS = (
    lambda img, f: ImageEnhance.Brightness(img).enhance(f),
    lambda img, f: ImageEnhance.Contrast(img).enhance(f),
    lambda img, f: ImageEnhance.Color(img).enhance(f),  # saturation
    _adjust_hue,
)


@TRANSFORMS.register
class ColorJitter:
    """Random brightness, contrast, saturation (and hue) on a PIL image, with torchvision's semantics (the op timm's
    ``color_jitter`` builds): each enabled factor is uniform in its range, and the four adjustments run in a random
    order. A number v means the range [max(0, 1 - v), 1 + v] (hue: [-v, v], v <= 0.5); 0 switches one off.

    The official ConvNeXt recipe sets ``color_jitter 0.4`` but timm drops colour jitter when RandAugment is on, so
    the official pipeline has none; ``train_transform_cfgs`` does the same."""

    def __init__(
        self,
        brightness: Union[float, Sequence[float]] = 0.4,
        contrast: Union[float, Sequence[float]] = 0.4,
        saturation: Union[float, Sequence[float]] = 0.4,
        hue: Union[float, Sequence[float]] = 0.0,
    ) -> None:
        self.ranges: Tuple[Range, ...] = (
            _jitter_range("brightness", brightness, 1.0, float("inf")),
            _jitter_range("contrast", contrast, 1.0, float("inf")),
            _jitter_range("saturation", saturation, 1.0, float("inf")),
            _jitter_range("hue", hue, 0.0, 0.5),
        )

    def get_params(self) -> Tuple[List[int], Tuple[Optional[float], ...]]:
        """(order of the four adjustments, factors with None for the switched-off ones)."""
        order = random.sample(range(4), 4)
        factors = tuple(None if r is None else random.uniform(*r) for r in self.ranges)
        return order, factors

    @staticmethod
    def apply(img: Image.Image, order: Sequence[int], factors: Sequence[Optional[float]]) -> Image.Image:
        for i in order:
            if factors[i] is not None:
                img = _JITTER_FNS[i](img, factors[i])
        return img

    def __call__(self, img: Image.Image) -> Image.Image:
        return self.apply(img, *self.get_params())

    def __repr__(self) -> str:
        names = ("brightness", "contrast", "saturation", "hue")
        return "ColorJitter(" + ", ".join(f"{n}={r}" for n, r in zip(names, self.ranges)) + ")"


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


def train_transform_cfgs(
    size: int = 224,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    interpolation: str = "bicubic",
    hflip: float = 0.5,
    auto_augment: Optional[str] = "rand-m9-mstd0.5-inc1",
    color_jitter: Union[float, Sequence[float], None] = 0.4,
    force_color_jitter: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    re_prob: float = 0.25,
    re_mode: str = "pixel",
    re_count: int = 1,
) -> List[Dict[str, Any]]:
    """The official ConvNeXt training pipeline as op configs, with timm's ``create_transform(is_training=True)``
    rules; the defaults are the official values. ``color_jitter`` is dropped when ``auto_augment`` is set (as timm
    and so the official code do) unless ``force_color_jitter``; a number means that strength for brightness,
    contrast and saturation, a list of 3 or 4 numbers sets them (and hue) one by one."""
    ops: List[Dict[str, Any]] = [
        {"name": "ToRGB"},
        {
            "name": "RandomResizedCrop",
            "size": size,
            "scale": list(scale),
            "ratio": list(ratio),
            "interpolation": interpolation,
        },
    ]
    if hflip > 0:
        ops.append({"name": "RandomHorizontalFlip", "prob": hflip})
    if auto_augment:
        if not auto_augment.startswith("rand"):
            raise ConfigError(f"auto_augment '{auto_augment}': only RandAugment ('rand-...') is implemented")
        ops.append(
            {"name": "RandAugment", "config_str": auto_augment, "interpolation": interpolation, "mean": list(mean)}
        )
    if color_jitter is not None and (not auto_augment or force_color_jitter):
        if isinstance(color_jitter, (int, float)):
            color_jitter = (float(color_jitter),) * 3
        if len(color_jitter) not in (3, 4):
            raise ConfigError(f"color_jitter must be a number or 3 or 4 numbers, got {color_jitter!r}")
        ops.append({"name": "ColorJitter", **dict(zip(("brightness", "contrast", "saturation", "hue"), color_jitter))})
    ops.append({"name": "Normalize", "mean": list(mean), "std": list(std)})
    if re_prob > 0:
        ops.append({"name": "RandomErasing", "prob": re_prob, "mode": re_mode, "max_count": re_count})
    return ops
