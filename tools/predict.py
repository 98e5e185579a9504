"""Classify images: top-k class names with probabilities.

    python tools/predict.py -c CONFIG IMAGE_OR_FOLDER [...] [--weights PATH | --model-dir DIR] [--topk 5]
        [--backend dygraph|paddle|onnx]

Backends: dygraph (the model with --weights, or model.pretrained; the default without --model-dir), paddle (the
exported Paddle inference model in --model-dir, run with Paddle Inference) and onnx (--model-dir's model.onnx with
ONNX Runtime; tools/export_model.py --onnx writes it). With --model-dir the default is onnx when the folder holds
model.onnx and onnxruntime is installed, else paddle. Every backend gets the same
input: each image is decoded (any size; grayscale, palette, RGBA, CMYK, 16-bit ...), converted to the model's
channels (model.architecture.in_chans: 1 -> grayscale, else RGB; alpha is dropped) and brought to the model's input
size by the config's evaluation transforms (data.val.transforms; for a config without them, the official ImageNet
eval pipeline). Folders are read without recursion; hidden files are skipped.

A file that cannot be read or transformed is reported on stderr (naming it) and the others are still classified;
the exit code is then 1. Configuration errors exit with 2.

Class names: --class-names (one name per line, in label order); else the names the model carries (a fine-tuned
checkpoint's, or classes.txt beside an export); else, for a 1000-class model, the ImageNet-1k names shipped with
passl; else the validation dataset's ``classes``; else class indices.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _common import QuietFirstCall, eval_transform_cfgs, input_shape, model_from_config  # noqa: E402

from passl.data import build_dataset, build_transforms, imagenet_class_names  # noqa: E402
from passl.data.datasets.imagenet import IMG_EXTENSIONS, load_image  # noqa: E402
from passl.inference import BACKENDS, build_predictor, on_gpu  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402
from passl.utils.report import model_class_names  # noqa: E402
from passl.utils.schema import refuse_pretraining_config  # noqa: E402


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
            out += sorted(
                os.path.join(p, n)
                for n in os.listdir(p)
                if not n.startswith(".") and n.lower().endswith(IMG_EXTENSIONS) and os.path.isfile(os.path.join(p, n))
            )
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise ConfigError(f"no such image or folder: {p}")
    if not out:
        raise ConfigError(f"no images found in {', '.join(paths)} (extensions {', '.join(IMG_EXTENSIONS)})")
    return out


def _declared_shape(predictor):
    """(C, H, W) an exported ONNX model declares, else None (Paddle Inference and dygraph take any size)."""
    session = getattr(predictor, "session", None)
    if session is None:
        return None
    dims = session.get_inputs()[0].shape[1:]
    return tuple(int(d) for d in dims) if all(isinstance(d, int) for d in dims) else None


class _Preprocess:
    """Path -> float32 (C, H, W) array at the model's input shape, or ValueError naming the file."""

    def __init__(self, cfg):
        ops, note = eval_transform_cfgs(cfg)
        if note:
            print(f"note: {note}", file=sys.stderr)
        self.transform = build_transforms(ops)
        self.shape = input_shape(cfg)
        self.gray = self.shape[0] == 1

    def __call__(self, path):
        try:
            img = load_image(path)  # decoded and converted to RGB as the evaluation datasets do
            if self.gray:
                img = img.convert("L")
            arr = np.asarray(self.transform(img), dtype=np.float32)
        except Exception as e:  # any decoder or transform failure is about this one file
            msg = str(e) or type(e).__name__
            raise ValueError(msg if path in msg else f"cannot read image {path}: {msg}") from None
        if arr.shape != self.shape:
            raise ValueError(
                f"{path}: data.val.transforms give a {'x'.join(map(str, arr.shape))} array, the model takes "
                f"{'x'.join(map(str, self.shape))}; end the transforms with a ResizeCrop (or Resize + CenterCrop) "
                f"to {self.shape[1]} and a Normalize with {self.shape[0]} mean/std values"
            )
        return arr


def _default_backend(model_dir) -> str:
    """dygraph without an export; with one, ONNX Runtime when it is there and installed (the fastest CPU backend),
    else Paddle Inference."""
    if not model_dir:
        return "dygraph"
    have_ort = importlib.util.find_spec("onnxruntime") is not None
    return "onnx" if have_ort and os.path.isfile(os.path.join(model_dir, "model.onnx")) else "paddle"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-o", "--override", action="append", default=[])
    p.add_argument("--weights", default=None)
    p.add_argument("--model-dir", default=None, help="exported model folder (tools/export_model.py)")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="default with --model-dir: onnx when it holds model.onnx and onnxruntime is installed (the fastest on "
        "CPU), else paddle; without --model-dir: dygraph",
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads of the paddle and onnx backends")
    p.add_argument("--no-onednn", action="store_true", help="paddle backend without oneDNN")
    p.add_argument("--class-names", default=None)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    backend = args.backend or _default_backend(args.model_dir)
    failed = 0
    try:
        if args.topk < 1 or args.batch_size < 1:
            raise ConfigError(f"--topk and --batch-size must be at least 1, got {args.topk} and {args.batch_size}")
        cfg = get_config(args.config, args.override)
        refuse_pretraining_config(cfg, "predict.py")
        names = _class_names(cfg, args.class_names, int(cfg.model.head.get("num_classes") or 0))
        files = _images(args.inputs)
        prep = _Preprocess(cfg)
        if backend == "dygraph":
            predictor = build_predictor("dygraph", model=model_from_config(cfg, args.weights))
        elif backend == "onnx":
            predictor = build_predictor("onnx", model_dir=args.model_dir, threads=args.threads)
        else:
            predictor = QuietFirstCall(
                build_predictor(
                    "paddle",
                    model_dir=args.model_dir,
                    threads=args.threads,
                    onednn=not args.no_onednn,
                    use_gpu=on_gpu(),
                )
            )
        names = model_class_names(predictor, names, explicit=bool(args.class_names))  # names the model carries
        declared = _declared_shape(predictor)
        if declared is not None and declared != prep.shape:
            raise ConfigError(
                f"{args.model_dir} takes {'x'.join(map(str, declared))} inputs but {args.config}'s evaluation "
                f"transforms give {'x'.join(map(str, prep.shape))}: predict with the config it was exported with"
            )
        for start in range(0, len(files), args.batch_size):
            chunk, batch = [], []
            for f in files[start : start + args.batch_size]:
                try:
                    batch.append(prep(f))
                    chunk.append(f)
                except ValueError as e:
                    print(f"error: {e}", file=sys.stderr)
                    failed += 1
            if not chunk:
                continue
            try:
                logits = predictor(np.stack(batch))
            except Exception as e:  # a runtime's own error: say which images it was running
                print(f"error: the {backend} backend failed on {', '.join(chunk)}: {e}", file=sys.stderr)
                failed += len(chunk)
                continue
            _show(chunk, logits, names, args.topk)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if failed:
        print(f"error: {failed} of {len(files)} images could not be classified (see above)", file=sys.stderr)
        return 1
    return 0


def _show(files, logits, names, topk):
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for f, pr in zip(files, probs):
        top = np.argsort(-pr, kind="stable")[:topk]
        shown = "; ".join(f"{names[i] if names else i} {pr[i]:.3f}" for i in top)
        print(f"{os.path.basename(f)}: {shown}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
