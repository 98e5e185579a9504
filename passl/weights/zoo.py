"""The model zoo: named weights with their source, architecture, evaluation settings and published top-1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

__all__ = ["WeightInfo", "ZOO", "render_markdown"]

OFFICIAL = "https://dl.fbaipublicfiles.com/convnext/"
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

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _build() -> Dict[str, WeightInfo]:
    zoo: Dict[str, WeightInfo] = {}

    def add(name, url, arch, res, classes, top1, pretrain, source):
        mode, pct = ("squash", 1.0) if res >= 384 else ("center", 0.875)
        zoo[name] = WeightInfo(name, url, arch, res, classes, top1, pretrain, source, pct, mode)

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
    return zoo


ZOO: Dict[str, WeightInfo] = _build()


def render_markdown() -> str:
    """The zoo table as Markdown (docs/model_zoo.md embeds it; a test keeps them equal)."""
    lines = [
        "| name | arch | res | classes | pretrain | source | eval crop | published top-1 | file |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in ZOO.values():
        crop = f"{w.crop_mode} {w.crop_pct}" if w.crop_mode == "center" else "squash"
        top1 = f"{w.top1:.2f}" if w.top1 is not None else "- (22K head)"
        lines.append(
            f"| {w.name} | {w.arch} | {w.resolution} | {w.num_classes} | {w.pretrain} | {w.source} | "
            f"{crop} | {top1} | [{w.filename}]({w.url}) |"
        )
    return "\n".join(lines) + "\n"
