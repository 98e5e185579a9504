"""RandAugment configured by a timm-style string (``rand-m9-mstd0.5-inc1``), on PIL images.

Semantics follow timm (which the official ConvNeXt recipe uses): ``n`` ops (default 2) drawn uniformly with
replacement by NumPy; each applies with probability ``p`` (0.5); the magnitude is Gaussian around ``m`` with std
``mstd``, clipped to [0, mmax] (10); ``inc1`` selects the "increasing" op set whose strength grows with the
magnitude. Geometric ops fill with the dataset mean colour and resample with ``interpolation``. Random draws happen
in timm's order (op choice, apply?, magnitude, sign), so seeded runs match timm's pixels.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from passl.data.transforms.eval import IMAGENET_MEAN, pil_interp
from passl.registry import TRANSFORMS, ConfigError

__all__ = ["RandAugment", "parse_rand_augment", "INCREASING_OPS", "DEFAULT_OPS"]

MAX_LEVEL = 10.0


def _negate(v: float) -> float:
    return -v if random.random() > 0.5 else v


# Level -> op arguments (magnitude in [0, 10]).
def _rotate_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    return (_negate(m / MAX_LEVEL * 30.0),)


def _shear_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    return (_negate(m / MAX_LEVEL * 0.3),)


def _translate_rel_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    return (_negate(m / MAX_LEVEL * hp.get("translate_pct", 0.45)),)


def _enhance_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    return (m / MAX_LEVEL * 1.8 + 0.1,)


def _enhance_increasing_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    # 1.0 is "no change"; the factor moves away from it both ways and never drops below 0.1 (matters with mmax > 10)
    return (max(0.1, 1.0 + _negate(m / MAX_LEVEL * 0.9)),)


def _posterize_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    # bits kept, 0..4: fewer bits (stronger) at LOW magnitude, as timm's (and the TF EfficientNet) "Posterize"
    return (int(m / MAX_LEVEL * 4),)


def _posterize_increasing_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    return (4 - _posterize_arg(m, hp)[0],)


def _solarize_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    return (min(256, int(m / MAX_LEVEL * 256)),)


def _solarize_increasing_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    return (256 - _solarize_arg(m, hp)[0],)


def _solarize_add_arg(m: float, hp: Dict[str, Any]) -> Tuple:
    return (min(128, int(m / MAX_LEVEL * 110)),)


# Ops on PIL images.
def _affine(img: Image.Image, matrix: Tuple, fill, resample) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, matrix, resample=resample, fillcolor=fill)


def _solarize_add(img: Image.Image, add: int, thresh: int = 128) -> Image.Image:
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    if img.mode not in ("L", "RGB"):
        return img
    return img.point(lut * 3 if img.mode == "RGB" else lut)


def _posterize(img: Image.Image, bits: int) -> Image.Image:
    if bits >= 8:
        return img
    if bits < 1:  # magnitude 10 keeps 0 bits: every pixel masked to 0 (Pillow >= 11 refuses bits=0 itself)
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits)


_OPS: Dict[str, Tuple[Callable, Callable, bool]] = {
    # name: (op(img, *args, fill, resample), level -> args, geometric)
    "AutoContrast": (lambda img, f, r: ImageOps.autocontrast(img), None, False),
    "Equalize": (lambda img, f, r: ImageOps.equalize(img), None, False),
    "Invert": (lambda img, f, r: ImageOps.invert(img), None, False),
    "Rotate": (lambda img, deg, f, r: img.rotate(deg, resample=r, fillcolor=f), _rotate_arg, True),
    "Posterize": (lambda img, b, f, r: _posterize(img, b), _posterize_arg, False),
    "PosterizeIncreasing": (lambda img, b, f, r: _posterize(img, b), _posterize_increasing_arg, False),
    "Solarize": (lambda img, t, f, r: ImageOps.solarize(img, t), _solarize_arg, False),
    "SolarizeIncreasing": (lambda img, t, f, r: ImageOps.solarize(img, t), _solarize_increasing_arg, False),
    "SolarizeAdd": (lambda img, a, f, r: _solarize_add(img, a), _solarize_add_arg, False),
    "Color": (lambda img, v, f, r: ImageEnhance.Color(img).enhance(v), _enhance_arg, False),
    "ColorIncreasing": (lambda img, v, f, r: ImageEnhance.Color(img).enhance(v), _enhance_increasing_arg, False),
    "Contrast": (lambda img, v, f, r: ImageEnhance.Contrast(img).enhance(v), _enhance_arg, False),
    "ContrastIncreasing": (lambda img, v, f, r: ImageEnhance.Contrast(img).enhance(v), _enhance_increasing_arg, False),
    "Brightness": (lambda img, v, f, r: ImageEnhance.Brightness(img).enhance(v), _enhance_arg, False),
    "BrightnessIncreasing": (
        lambda img, v, f, r: ImageEnhance.Brightness(img).enhance(v),
        _enhance_increasing_arg,
        False,
    ),
    "Sharpness": (lambda img, v, f, r: ImageEnhance.Sharpness(img).enhance(v), _enhance_arg, False),
    "SharpnessIncreasing": (
        lambda img, v, f, r: ImageEnhance.Sharpness(img).enhance(v),
        _enhance_increasing_arg,
        False,
    ),
    "ShearX": (lambda img, s, f, r: _affine(img, (1, s, 0, 0, 1, 0), f, r), _shear_arg, True),
    "ShearY": (lambda img, s, f, r: _affine(img, (1, 0, 0, s, 1, 0), f, r), _shear_arg, True),
    "TranslateXRel": (
        lambda img, p, f, r: _affine(img, (1, 0, p * img.size[0], 0, 1, 0), f, r),
        _translate_rel_arg,
        True,
    ),
    "TranslateYRel": (
        lambda img, p, f, r: _affine(img, (1, 0, 0, 0, 1, p * img.size[1]), f, r),
        _translate_rel_arg,
        True,
    ),
}

DEFAULT_OPS = [
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "SolarizeAdd",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
]
INCREASING_OPS = [
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
]


def parse_rand_augment(config_str: str) -> Dict[str, Any]:
    """``rand-m9-mstd0.5-inc1`` -> {magnitude: 9, magnitude_std: 0.5, increasing: True, num_layers: 2, ...}."""
    parts = config_str.split("-")
    if parts[0] != "rand":
        raise ConfigError(f"RandAugment config_str must start with 'rand', got '{config_str}'")
    out = {
        "magnitude": 10.0,
        "magnitude_std": 0.0,
        "magnitude_max": MAX_LEVEL,
        "num_layers": 2,
        "prob": 0.5,
        "increasing": False,
    }
    keys = (
        ("mstd", "magnitude_std", float),
        ("mmax", "magnitude_max", float),
        ("inc", "increasing", lambda v: bool(int(v))),
        ("m", "magnitude", float),
        ("n", "num_layers", int),
        ("p", "prob", float),
    )
    for part in parts[1:]:
        for prefix, key, conv in keys:
            if part.startswith(prefix) and part[len(prefix) :]:
                try:
                    out[key] = conv(part[len(prefix) :])
                except ValueError:
                    raise ConfigError(f"RandAugment: cannot read '{part}' in '{config_str}'") from None
                break
        else:
            raise ConfigError(f"RandAugment: unknown part '{part}' in '{config_str}' (known: m, n, mstd, mmax, inc, p)")
    if out["magnitude_std"] > 100:  # timm: a huge std means "uniform in [0, m]"
        out["magnitude_std"] = float("inf")
    if not out["magnitude_max"]:  # timm: mmax0 falls back to the default bound
        out["magnitude_max"] = MAX_LEVEL
    return out


@TRANSFORMS.register
class RandAugment:
    """RandAugment on PIL RGB images from ``config_str``; ``mean`` sets the fill colour of geometric ops."""

    def __init__(
        self,
        config_str: str = "rand-m9-mstd0.5-inc1",
        interpolation: str = "bicubic",
        mean: Sequence[float] = IMAGENET_MEAN,
        translate_pct: float = 0.45,
    ) -> None:
        self.config_str = config_str
        p = parse_rand_augment(config_str)
        self.magnitude, self.magnitude_std, self.magnitude_max = p["magnitude"], p["magnitude_std"], p["magnitude_max"]
        self.num_layers, self.prob = p["num_layers"], p["prob"]
        self.op_names: List[str] = INCREASING_OPS if p["increasing"] else DEFAULT_OPS
        self.fill = tuple(min(255, round(255 * x)) for x in mean)
        self.resample = pil_interp(interpolation)
        self.hparams = {"translate_pct": float(translate_pct)}

    def level_args(self, name: str, magnitude: float) -> Tuple:
        """The arguments of op ``name`` at ``magnitude`` (draws the random sign of signed ops)."""
        level_fn = _OPS[name][1]
        return level_fn(magnitude, self.hparams) if level_fn is not None else ()

    def apply_args(self, img: Image.Image, name: str, args: Tuple) -> Image.Image:
        """Op ``name`` with given arguments, this instance's fill colour and resampling; no randomness."""
        return _OPS[name][0](img, *args, self.fill, self.resample)

    def apply_op(self, img: Image.Image, name: str) -> Image.Image:
        """One op with its own random decisions (apply?, magnitude, sign), in timm's order."""
        if self.prob < 1.0 and random.random() > self.prob:
            return img
        m = self.magnitude
        if self.magnitude_std == float("inf"):
            m = random.uniform(0, m)
        elif self.magnitude_std > 0:
            m = random.gauss(m, self.magnitude_std)
        m = max(0.0, min(m, self.magnitude_max))
        return self.apply_args(img, name, self.level_args(name, m))

    def __call__(self, img: Image.Image) -> Image.Image:
        names = np.random.choice(self.op_names, self.num_layers, replace=True)
        for name in names:
            img = self.apply_op(img, str(name))
        return img

    def __repr__(self) -> str:
        return f"RandAugment({self.config_str}, ops={len(self.op_names)}, fill={self.fill})"
