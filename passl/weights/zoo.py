"""The model zoo: named weights with their source, architecture, evaluation settings and published top-1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

__all__ = ["WeightInfo", "ZOO", "render_markdown"]

OFFICIAL = "https://dl.fbaipublicfiles.com/convnext/"
OFFICIAL_V2 = "https://dl.fbaipublicfiles.com/convnext/convnextv2/"
PADDLECLAS = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"


@dataclass(frozen=True)
class WeightInfo:
    name: str
    url: str
    arch: str
    resolution: int
    num_classes: int
    top1: Optional[float]
    pretrain: str  # "1k" or "22k"
    source: str  # "official" or "paddleclas"
    crop_pct: float = 0.875
    crop_mode: str = "center"  # the official eval: center crop below 384, squash at 384
    sha256: Optional[str] = None
    family: str = "ConvNeXt"  # the backbone (registry name) the weights are for
    licence: str = "MIT"  # of the weights: official V1 MIT, official V2 CC-BY-NC-4.0, PaddleClas Apache-2.0

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _build() -> Dict[str, WeightInfo]:
    zoo: Dict[str, WeightInfo] = {}

    def add(name, url, arch, res, classes, top1, pretrain, source, family="ConvNeXt", licence=None):
        mode, pct = ("squash", 1.0) if res >= 384 else ("center", 0.875)
        licence = licence or ("Apache-2.0" if source == "paddleclas" else "MIT")
        zoo[name] = WeightInfo(name, url, arch, res, classes, top1, pretrain, source, pct, mode, None, family, licence)

    for arch, top1 in (("tiny", 82.1), ("small", 83.1), ("base", 83.8), ("large", 84.3)):
        add(
            f"convnext_{arch}_1k_224_ema",
            f"{OFFICIAL}convnext_{arch}_1k_224_ema.pth",
            arch,
            224,
            1000,
            top1,
            "1k",
            "official",
        )
    for arch, top1 in (("base", 85.1), ("large", 85.5)):
        add(f"convnext_{arch}_1k_384", f"{OFFICIAL}convnext_{arch}_1k_384.pth", arch, 384, 1000, top1, "1k", "official")
    ft = {
        "tiny": (82.9, 84.1),
        "small": (84.6, 85.8),
        "base": (85.8, 86.8),
        "large": (86.6, 87.5),
        "xlarge": (87.0, 87.8),
    }
    for arch, (t224, t384) in ft.items():
        suffix = "_ema" if arch == "xlarge" else ""
        for res, top1 in ((224, t224), (384, t384)):
            name = f"convnext_{arch}_22k_1k_{res}{suffix}"
            add(name, f"{OFFICIAL}{name}.pth", arch, res, 1000, top1, "22k", "official")
    for arch in ("tiny", "small", "base", "large", "xlarge"):
        add(
            f"convnext_{arch}_22k_224",
            f"{OFFICIAL}convnext_{arch}_22k_224.pth",
            arch,
            224,
            21841,
            None,
            "22k",
            "official",
        )
    pc = {
        "tiny": ("ConvNeXt_tiny", 224, 82.03),
        "small": ("ConvNeXt_small", 224, 83.13),
        "base_224": ("ConvNeXt_base_224", 224, 83.84),
        "base_384": ("ConvNeXt_base_384", 384, 84.90),
        "large_224": ("ConvNeXt_large_224", 224, 84.26),
        "large_384": ("ConvNeXt_large_384", 384, 85.27),
    }
    for key, (stem, res, top1) in pc.items():
        arch = key.split("_")[0]
        add(
            f"paddleclas_convnext_{key}",
            f"{PADDLECLAS}{stem}_pretrained.pdparams",
            arch,
            res,
            1000,
            top1,
            "1k",
            "paddleclas",
        )
    _add_v2(add)
    return zoo


def _add_v2(add) -> None:
    """ConvNeXt V2 (facebookresearch/ConvNeXt-V2 README): FCMAE encoders (no head), FCMAE -> 1K fine-tuned, and
    FCMAE -> 22K -> 1K fine-tuned weights; all CC-BY-NC-4.0."""
    v2 = {"family": "ConvNeXtV2", "licence": "CC-BY-NC-4.0"}
    ft_1k = {"atto": 76.7, "femto": 78.5, "pico": 80.3, "nano": 81.9, "tiny": 83.0, "base": 84.9}
    ft_1k.update(large=85.8, huge=86.3)
    for arch in ft_1k:
        name = f"convnextv2_{arch}_1k_224_fcmae"
        add(name, f"{OFFICIAL_V2}pt_only/{name}.pt", arch, 224, 0, None, "1k", "official", **v2)
    for arch, top1 in ft_1k.items():
        name = f"convnextv2_{arch}_1k_224_ema"
        add(name, f"{OFFICIAL_V2}im1k/{name}.pt", arch, 224, 1000, top1, "1k", "official", **v2)
    ft_22k = {
        ("nano", 224): 82.1,
        ("nano", 384): 83.4,
        ("tiny", 224): 83.9,
        ("tiny", 384): 85.1,
        ("base", 224): 86.8,
        ("base", 384): 87.7,
        ("large", 224): 87.3,
        ("large", 384): 88.2,
        ("huge", 384): 88.7,
        ("huge", 512): 88.9,
    }
    for (arch, res), top1 in ft_22k.items():
        name = f"convnextv2_{arch}_22k_{res}_ema"
        add(name, f"{OFFICIAL_V2}im22k/{name}.pt", arch, res, 1000, top1, "22k", "official", **v2)


ZOO: Dict[str, WeightInfo] = _build()


def render_markdown() -> str:
    """The zoo table as Markdown (docs/model_zoo.md embeds it; a test keeps them equal)."""
    lines = [
        "| name | family | arch | res | classes | pretrain | source | licence | eval crop | published top-1 | file |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for w in ZOO.values():
        crop = f"{w.crop_mode} {w.crop_pct}" if w.crop_mode == "center" else "squash"
        top1 = f"{w.top1:.2f}" if w.top1 is not None else "- (22K head)" if w.num_classes else "- (FCMAE, no head)"
        lines.append(
            f"| {w.name} | {w.family} | {w.arch} | {w.resolution} | {w.num_classes or '-'} | {w.pretrain} | "
            f"{w.source} | {w.licence} | {crop} | {top1} | [{w.filename}]({w.url}) |"
        )
    return "\n".join(lines) + "\n"
