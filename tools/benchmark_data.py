"""Images per second per CPU core of the official ConvNeXt training pipeline: ours against timm's, side by side.

Both pipelines run in this process, on one thread, over the same generated JPEG files, each decoded with PIL on every
pass (as a data-loader worker does): RandomResizedCrop 224 bicubic + horizontal flip + RandAugment
rand-m9-mstd0.5-inc1 + ToTensor/Normalize + RandomErasing 0.25 (pixel, 1 box). timm's is
``create_transform(224, is_training=True, auto_augment='rand-m9-mstd0.5-inc1', re_prob=0.25, re_mode='pixel',
re_count=1, interpolation='bicubic')``. Passes alternate between the two so load from other processes hits both
alike; the best pass of each counts. A worker process does this work, so images/s here times the number of
workers is the ceiling of a loader on that many cores.

    python tools/benchmark_data.py [--images 200] [--width 500] [--height 375] [--passes 3] [--per-op]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # one core, before numpy/torch load
    os.environ[_var] = "1"

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Callable, Dict, List, Sequence  # noqa: E402

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from passl.data import build_transforms  # noqa: E402
from passl.data.transforms.train import train_transform_cfgs  # noqa: E402

RA = "rand-m9-mstd0.5-inc1"


def write_images(folder: str, count: int, width: int, height: int, seed: int = 0) -> List[str]:
    """Photo-like JPEGs (smooth colour fields, texture, noise; quality 90): decode cost close to real photos."""
    rng = np.random.RandomState(seed)
    paths = []
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(count):
        low = Image.fromarray(rng.randint(0, 256, (height // 32 + 2, width // 32 + 2, 3)).astype(np.uint8))
        img = np.asarray(low.resize((width, height), Image.BICUBIC), dtype=np.float32)
        freq = rng.uniform(0.02, 0.2, size=2)
        img += 20 * np.sin(xx * freq[0] + yy * freq[1])[..., None] + rng.normal(0, 8, img.shape)
        path = os.path.join(folder, f"img_{i:04d}.jpg")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def load(path: str) -> Image.Image:
    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


def run_pass(paths: Sequence[str], transform: Callable, seed: int) -> Dict[str, float]:
    """One pass over the files: wall seconds and CPU seconds of this process."""
    random.seed(seed)
    np.random.seed(seed)
    _seed_torch(seed)
    wall, cpu = time.perf_counter(), time.process_time()
    for p in paths:
        transform(load(p))
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def per_op(paths: Sequence[str], ops: Sequence[Callable], seed: int) -> List[float]:
    """Seconds spent in each op (and in decoding, first) over one pass."""
    random.seed(seed)
    np.random.seed(seed)
    _seed_torch(seed)
    spent = [0.0] * (len(ops) + 1)
    for p in paths:
        t = time.perf_counter()
        x = load(p)
        spent[0] += time.perf_counter() - t
        for i, op in enumerate(ops, 1):
            t = time.perf_counter()
            x = op(x)
            spent[i] += time.perf_counter() - t
    return spent


def _patch_timm_posterize() -> None:
    """timm passes bits=0 (magnitude 10 of PosterizeIncreasing) to ImageOps.posterize, which raises on Pillow >= 11;
    about one image in 660 of this pipeline gets there. Give timm what ours returns then (a black image)."""
    from timm.data import auto_augment as aa

    def posterize(img, bits, **kwargs):
        return Image.new(img.mode, img.size) if bits < 1 else aa.posterize(img, bits, **kwargs)

    for name in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal"):
        aa.NAME_TO_OP[name] = posterize


def _seed_torch(seed: int) -> None:
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--height", type=int, default=375)
    ap.add_argument("--passes", type=int, default=3, help="passes per pipeline, alternating; the best one counts")
    ap.add_argument("--per-op", action="store_true", help="also print the time spent in each op")
    args = ap.parse_args(argv)

    ours = build_transforms(train_transform_cfgs(224))
    pipelines = {"decode only": lambda img: img, "ours (passl)": ours}
    try:
        import torch
        from timm.data import create_transform

        torch.set_num_threads(1)
        _patch_timm_posterize()
        ref = create_transform(
            224,
            is_training=True,
            auto_augment=RA,
            re_prob=0.25,
            re_mode="pixel",
            re_count=1,
            interpolation="bicubic",
        )
        pipelines["timm create_transform"] = ref
    except ImportError:
        ref = None
        print("timm/torch are not installed: timing ours only (pip install -r requirements-dev.txt for timm)")

    with tempfile.TemporaryDirectory(prefix="passl_bench_data_") as folder:
        paths = write_images(folder, args.images, args.width, args.height)
        times: Dict[str, List[Dict[str, float]]] = {name: [] for name in pipelines}
        for name, fn in pipelines.items():  # warm-up: file cache, lazy imports
            run_pass(paths[: min(20, len(paths))], fn, 0)
        for k in range(args.passes):
            for name, fn in pipelines.items():
                times[name].append(run_pass(paths, fn, seed=k))
        spent = None
        if args.per_op:
            spent = {
                "ours (passl)": (["decode"] + [repr(o).split("(")[0] for o in ours.ops], per_op(paths, ours.ops, 0))
            }
            if ref is not None:
                names = ["decode"] + [type(t).__name__ for t in ref.transforms]
                spent["timm create_transform"] = (names, per_op(paths, ref.transforms, 0))

    n = len(paths)
    print(f"{n} JPEG images {args.width}x{args.height} (quality 90), decoded with PIL on each pass; one thread; ")
    print(f"best of {args.passes} alternating passes (median in brackets)")
    print(f"{'pipeline':<24}{'images/s (wall)':>22}{'images / CPU-second':>26}")
    best = {}
    for name, runs in times.items():
        wall = [n / r["wall"] for r in runs]
        cpu = [n / r["cpu"] for r in runs]
        best[name] = max(cpu)
        print(
            f"{name:<24}{max(wall):>10.1f} ({statistics.median(wall):>7.1f}){max(cpu):>14.1f} ({statistics.median(cpu):>7.1f})"
        )
    if ref is not None:
        ratio = best["ours (passl)"] / best["timm create_transform"]
        print(f"ratio ours / timm (images per CPU-second): {ratio:.2f}x")
    if spent:
        for name, (labels, secs) in spent.items():
            total = sum(secs)
            print(f"\n{name}: ms per image by op")
            for label, s in zip(labels, secs):
                print(f"  {label:<40}{1000 * s / n:>8.2f}  ({100 * s / total:4.1f} %)")


if __name__ == "__main__":
    main()
