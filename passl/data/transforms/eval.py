"""Evaluation ops as the official ConvNeXt datasets.py builds them: PIL bicubic resize of the short side to
int(size / crop_pct) and a center crop below 384; a squash to size x size at 384 and above; ToTensor + Normalize."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Union

import numpy as np
from PIL import Image

from passl.registry import TRANSFORMS, ConfigError

__all__ = ["Resize", "CenterCrop", "ResizeCrop", "Normalize", "ToRGB", "eval_transform_cfgs", "pil_interp"]

_INTERP = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
    "box": Image.BOX,
    "hamming": Image.HAMMING,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pil_interp(name: str) -> int:
    if name not in _INTERP:
        raise ConfigError(f"interpolation '{name}' is not one of {', '.join(_INTERP)}")
    return _INTERP[name]


@TRANSFORMS.register
class ToRGB:
    """Convert any PIL mode (L, P, RGBA, CMYK, ...) to RGB with PIL's own conversion, as the official loader
    (and timm's) does: alpha is dropped, palettes and CMYK are mapped to RGB."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return img if img.mode == "RGB" else img.convert("RGB")

    def __repr__(self) -> str:
        return "ToRGB()"


@TRANSFORMS.register
class Resize:
    """``size`` int: the short side becomes ``size`` and the long side int(size * long / short) (torchvision's
    rule); ``size`` [h, w]: resize to exactly that (the official squash at 384)."""

    def __init__(self, size: Union[int, Sequence[int]], interpolation: str = "bicubic") -> None:
        self.size = size if isinstance(size, int) else tuple(int(s) for s in size)
        self.interpolation = interpolation
        self._interp = pil_interp(interpolation)

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        if isinstance(self.size, int):
            short, long = (w, h) if w <= h else (h, w)
            if short == self.size:
                return img
            new_short, new_long = self.size, int(self.size * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        else:
            new_h, new_w = self.size
        return img.resize((new_w, new_h), self._interp)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation})"


@TRANSFORMS.register
class CenterCrop:
    """Center crop to ``size`` (int or [h, w]); a smaller image is zero-padded first, as torchvision does."""

    def __init__(self, size: Union[int, Sequence[int]]) -> None:
        self.size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def __call__(self, img: Image.Image) -> Image.Image:
        ch, cw = self.size
        w, h = img.size
        if cw > w or ch > h:
            pad_l, pad_t = (cw - w) // 2 if cw > w else 0, (ch - h) // 2 if ch > h else 0
            pad_r, pad_b = (cw - w + 1) // 2 if cw > w else 0, (ch - h + 1) // 2 if ch > h else 0
            canvas = Image.new(img.mode, (w + pad_l + pad_r, h + pad_t + pad_b))
            canvas.paste(img, (pad_l, pad_t))
            img, (w, h) = canvas, canvas.size
            if (w, h) == (cw, ch):
                return img
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        return img.crop((left, top, left + cw, top + ch))

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


@TRANSFORMS.register
class Normalize:
    """PIL image (or HWC/HW uint8 array) -> float32 CHW array: scale to [0, 1], then (x - mean) / std."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)

    def __call__(self, img: Any) -> np.ndarray:
        arr = np.asarray(img)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W), still a view
        if arr.shape[0] != self.mean.shape[0]:
            raise ConfigError(
                f"Normalize: the image has {arr.shape[0]} channels but mean/std have {self.mean.shape[0]} values"
            )
        # Reorder the small uint8 array, convert once, then ToTensor + Normalize's three operations in place
        # (bit-identical to (x / 255 - mean) / std, about 3x faster than the expression with temporaries).
        out = np.ascontiguousarray(arr).astype(np.float32)
        out /= 255.0
        out -= self.mean
        out /= self.std
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


@TRANSFORMS.register
class ResizeCrop:
    """The official eval geometry with timm's knobs: ``crop_mode`` "center" resizes the short side to
    int(size / crop_pct) and center-crops ``size``; "squash" resizes to int(size / crop_pct) square and center-crops
    ``size``; "auto" (default) is the official rule: a plain squash to size x size at 384 and above (crop_pct
    ignored), "center" below. Set ``crop_pct``/``crop_mode`` to evaluate weights
    published with other settings (e.g. ``crop_pct: 0.95``)."""

    def __init__(
        self, size: int = 224, crop_pct: float = 0.875, crop_mode: str = "auto", interpolation: str = "bicubic"
    ) -> None:
        if not 0 < float(crop_pct) <= 1:
            raise ConfigError(f"ResizeCrop: crop_pct must be in (0, 1], got {crop_pct}")
        self.size, self.crop_pct, self.crop_mode, self.interpolation = (
            int(size),
            float(crop_pct),
            crop_mode,
            interpolation,
        )
        ops = _geometry_cfgs(self.size, self.crop_pct, crop_mode, interpolation)
        self.ops = [TRANSFORMS.build(dict(o)) for o in ops]

    def __call__(self, img: Image.Image) -> Image.Image:
        for op in self.ops:
            img = op(img)
        return img

    def __repr__(self) -> str:
        return (
            f"ResizeCrop(size={self.size}, crop_pct={self.crop_pct}, crop_mode={self.crop_mode}, "
            f"interpolation={self.interpolation})"
        )


def _geometry_cfgs(size: int, crop_pct: float, crop_mode: str, interpolation: str) -> List[Dict[str, Any]]:
    if crop_mode == "auto":  # the official rule: at 384 and above a plain squash, whatever crop_pct says
        crop_mode, crop_pct = ("squash", 1.0) if size >= 384 else ("center", crop_pct)
    if crop_mode == "squash":  # timm's squash: resize to int(size / crop_pct) square, then center-crop size
        scaled = int(size / crop_pct)
        ops: List[Dict[str, Any]] = [{"name": "Resize", "size": [scaled, scaled], "interpolation": interpolation}]
        return ops + ([{"name": "CenterCrop", "size": size}] if scaled != size else [])
    if crop_mode == "center":
        return [
            {"name": "Resize", "size": int(size / crop_pct), "interpolation": interpolation},
            {"name": "CenterCrop", "size": size},
        ]
    raise ConfigError(f"crop_mode must be auto, center or squash, got '{crop_mode}'")


def eval_transform_cfgs(
    size: int = 224,
    crop_pct: float = 0.875,
    crop_mode: str = "auto",
    interpolation: str = "bicubic",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> List[Dict[str, Any]]:
    """The official eval pipeline as op configs (``crop_mode`` as in :class:`ResizeCrop`)."""
    ops: List[Dict[str, Any]] = [{"name": "ToRGB"}, *_geometry_cfgs(size, crop_pct, crop_mode, interpolation)]
    ops.append({"name": "Normalize", "mean": list(mean), "std": list(std)})
    return ops
