"""Classify images: top-k class names with probabilities.

    python tools/predict.py -c CONFIG IMAGE_OR_FOLDER [...] [--weights PATH | --model-dir DIR] [--topk 5]

--model-dir runs an exported Paddle inference model (tools/export_model.py); otherwise the dygraph model with
--weights (or model.pretrained). Preprocessing is the config's data.val.transforms; class names come from the
validation dataset (its ``classes``) or --class-names (one name per line).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _common import model_from_config  # noqa: E402
from PIL import Image  # noqa: E402

from passl.data import build_dataset, build_transforms  # noqa: E402
from passl.data.datasets.imagenet import IMG_EXTENSIONS  # noqa: E402
from passl.inference import DygraphPredictor, InferencePredictor  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402


def _class_names(cfg, path):
    if path:
        with open(path, encoding="utf-8") as f:
            return [ln.strip() for ln in f if ln.strip()]
    try:
        return list(build_dataset(cfg.data.val.dataset).classes)
    except Exception:
        return None


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
    p.add_argument("--model-dir", default=None, help="exported Paddle inference model folder")
    p.add_argument("--class-names", default=None)
    p.add_argument("--topk", type=int, default=5)
    args = p.parse_args(argv)
    try:
        cfg = get_config(args.config, args.override)
        names = _class_names(cfg, args.class_names)
        files = _images(args.inputs)
        transform = build_transforms(cfg.data.val.transforms)
        if args.model_dir:
            predictor = InferencePredictor(args.model_dir)
        else:
            predictor = DygraphPredictor(model_from_config(cfg, args.weights))
        mode = "L" if int(cfg.model.architecture.get("in_chans", 3)) == 1 else "RGB"
        batch = np.stack([transform(Image.open(f).convert(mode)) for f in files])
        logits = predictor(batch)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for f, pr in zip(files, probs):
        top = np.argsort(-pr)[: args.topk]
        shown = ", ".join(f"{names[i] if names else i} {pr[i]:.3f}" for i in top)
        print(f"{os.path.basename(f)}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
