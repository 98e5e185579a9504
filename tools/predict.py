"""Classify images: top-k class names with probabilities.

    python tools/predict.py -c CONFIG IMAGE_OR_FOLDER [...] [--weights PATH | --model-dir DIR] [--topk 5]
        [--backend dygraph|paddle|onnx]

Backends: dygraph (the model with --weights, or model.pretrained; the default without --model-dir), paddle (the
exported Paddle inference model in --model-dir, run with Paddle Inference; the default with --model-dir) and onnx
(--model-dir's model.onnx with ONNX Runtime; tools/export_model.py --onnx writes it). Preprocessing is the config's
data.val.transforms. Class names: --class-names (one name per line, in label order); else the names the model
carries (a fine-tuned checkpoint's, or classes.txt beside an export); else, for a 1000-class model,
the ImageNet-1k names shipped with passl; else the validation dataset's ``classes``; else class indices.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _common import model_from_config  # noqa: E402
from PIL import Image  # noqa: E402

from passl.data import build_dataset, build_transforms, imagenet_class_names  # noqa: E402
from passl.data.datasets.imagenet import IMG_EXTENSIONS  # noqa: E402
from passl.inference import BACKENDS, build_predictor  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402
from passl.utils.report import model_class_names  # noqa: E402


def _class_names(cfg, path, num_classes):
    if path:
        if not os.path.exists(path):
            raise ConfigError(f"--class-names file not found: {path}")
        with open(path, encoding="utf-8") as f:
            names = [ln.strip() for ln in f if ln.strip()]
        if names and num_classes and len(names) != num_classes:
            raise ConfigError(f"{path} has {len(names)} class names, the model has {num_classes} classes")
        return names
    if num_classes == 1000:  # an ImageNet-1k model: the shipped names (no need to scan the val folder)
        return imagenet_class_names()
    try:
        names = list(build_dataset(cfg.data.val.dataset).classes)
    except Exception:
        return None
    return names if not num_classes or len(names) == num_classes else None


def _images(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, n) for n in os.listdir(p) if n.lower().endswith(IMG_EXTENSIONS))
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise ConfigError(f"no such image or folder: {p}")
    if not out:
        raise ConfigError(f"no images found in {', '.join(paths)}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-o", "--override", action="append", default=[])
    p.add_argument("--weights", default=None)
    p.add_argument("--model-dir", default=None, help="exported model folder (tools/export_model.py)")
    p.add_argument("--backend", choices=BACKENDS, default=None, help="default: paddle with --model-dir, else dygraph")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of the paddle and onnx backends")
    p.add_argument("--no-onednn", action="store_true", help="paddle backend without oneDNN")
    p.add_argument("--class-names", default=None)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    backend = args.backend or ("paddle" if args.model_dir else "dygraph")
    try:
        cfg = get_config(args.config, args.override)
        names = _class_names(cfg, args.class_names, int(cfg.model.head.get("num_classes") or 0))
        files = _images(args.inputs)
        transform = build_transforms(cfg.data.val.transforms)
        if backend == "dygraph":
            predictor = build_predictor("dygraph", model=model_from_config(cfg, args.weights))
        elif backend == "onnx":
            predictor = build_predictor("onnx", model_dir=args.model_dir, threads=args.threads)
        else:
            predictor = build_predictor(
                "paddle", model_dir=args.model_dir, threads=args.threads, onednn=not args.no_onednn
            )
        names = model_class_names(predictor, names, explicit=bool(args.class_names))  # names the model carries
        mode = "L" if int(cfg.model.architecture.get("in_chans", 3)) == 1 else "RGB"
        for start in range(0, len(files), max(1, args.batch_size)):
            chunk = files[start : start + max(1, args.batch_size)]
            batch = np.stack([transform(_open(f, mode)) for f in chunk])
            _show(chunk, predictor(batch), names, args.topk)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _open(path, mode):
    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read image {path}: {e}") from None


def _show(files, logits, names, topk):
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for f, pr in zip(files, probs):
        top = np.argsort(-pr)[:topk]
        shown = "; ".join(f"{names[i] if names else i} {pr[i]:.3f}" for i in top)
        print(f"{os.path.basename(f)}: {shown}")


if __name__ == "__main__":
    sys.exit(main())
