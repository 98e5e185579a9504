"""Evaluate a model on the config's validation set: top-1, top-5, loss, image count, images/s; a JSON report.

python tools/eval.py -c configs/convnext/convnext_tiny.yaml -o model.pretrained=PATH [--ema] [--report FILE]
python tools/eval.py -c CONFIG --model-dir inference/ [--backend paddle|onnx]     # an existing export, as it is
python -m paddle.distributed.launch --nproc_per_node 2 tools/eval.py -c ...   # each image counted once

--backend auto (the default) evaluates on CPU through the fastest verified backend that is installed: the model is
exported to a temporary folder, converted to ONNX and run with ONNX Runtime when paddle2onnx and onnxruntime are
installed (tools/setup_env.sh installs them), else run with Paddle Inference; either is checked against the dygraph
model on one batch first (refused above 1e-4; a refused ONNX model falls back to Paddle Inference). On a GPU it
evaluates the dygraph model. --backend dygraph|paddle|onnx chooses explicitly.

--model-dir evaluates an existing export (tools/export_model.py, which verified it when it wrote it) as it is, with
ONNX Runtime when the folder holds model.onnx and onnxruntime is installed, else Paddle Inference (or as --backend
says); only when weights are given too (--weights, or -o model.pretrained=...)
is it checked against them first. A config's own model.pretrained (a recipe's starting point) is not used then.

The report goes to --report FILE (replaced if it exists); by default to a new
OUTPUT_DIR/eval_report_YYYYmmdd-HHMMSS.json, so a training run's or an earlier evaluation's report is never
overwritten. --predictions writes a CSV with class names beside the indices when the dataset has them.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import QuietFirstCall, input_shape, model_from_config, quiet_native  # noqa: E402

from passl.data import build_dataset, check_classes, imagenet_class_names, imagenet_wnids  # noqa: E402
from passl.data.loader import build_loader  # noqa: E402
from passl.engine.evaluator import evaluate  # noqa: E402
from passl.inference import ExportError, build_predictor, export_model, export_onnx, on_gpu, verify_export  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402
from passl.utils.dist import get_rank, get_world_size, init_distributed, is_main_process  # noqa: E402
from passl.utils.report import eval_class_report  # noqa: E402
from passl.utils.schema import refuse_pretraining_config  # noqa: E402


def _weights_given(args) -> bool:
    """Weights named on the command line: --weights or -o model.pretrained=... (not the config file's own)."""
    return bool(args.weights) or any(o.split("=", 1)[0].strip() == "model.pretrained" for o in args.override)


def _backend(cfg, args):
    """The callable to evaluate: the dygraph model, or a Paddle Inference / ONNX Runtime predictor (of a fresh
    export verified against the model, or of --model-dir: verified only when weights are given)."""
    import paddle

    backend = args.backend
    if args.model_dir and backend == "dygraph":
        raise ConfigError(
            "--model-dir is an export, run by --backend paddle or onnx; --backend dygraph evaluates --weights"
        )
    if backend == "auto":
        backend = _auto_backend(args)
    args.backend_used = backend
    if args.backend == "onnx" and not args.model_dir:  # (auto exports and converts itself)
        raise ConfigError("--backend onnx evaluates an ONNX export: pass --model-dir (tools/export_model.py --onnx)")
    shape = input_shape(cfg)
    model = None
    if not args.model_dir or _weights_given(args):
        model = model_from_config(cfg, args.weights, use_ema=args.ema or None)
    elif is_main_process():
        print(
            f"evaluating the export in {args.model_dir} as it is (verified when it was exported); "
            "pass --weights to check it against them first",
            file=sys.stderr,
        )
    if backend == "dygraph":
        return model
    threads = args.threads or max(1, (os.cpu_count() or 1) // get_world_size())
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = args.tmp_dir = tempfile.mkdtemp(prefix=f"passl_eval_rank{get_rank()}_")
        export_model(model, os.path.join(model_dir, "model"), [1, *shape])
        if backend == "onnx":  # only from --backend auto: the fastest CPU backend, verified like any other
            try:
                with quiet_native():  # paddle2onnx prints its own progress lines
                    export_onnx(model_dir)
                onnx = build_predictor("onnx", model_dir=model_dir, threads=threads)
                verify_export(model, onnx, [2, *shape])
            except Exception as e:  # not installed, refused, or ONNX Runtime cannot run it (1x1 maps): the fast path
                backend = args.backend_used = "paddle"
                if is_main_process():
                    print(f"ONNX Runtime backend not used ({e}); evaluating with Paddle Inference", file=sys.stderr)
    gpu = {"use_gpu": True} if backend == "paddle" and on_gpu() else {}  # this process's GPU, not GPU 0
    predictor = build_predictor(backend, model_dir=model_dir, threads=threads, **gpu)
    if backend == "paddle":
        predictor = QuietFirstCall(predictor)  # its first run prints a debug line from C++
    session = getattr(predictor, "session", None)  # ONNX Runtime declares its input shape
    if session is not None:
        dims = list(session.get_inputs()[0].shape[1:])
        if all(isinstance(d, int) for d in dims) and tuple(dims) != shape:
            raise ConfigError(
                f"{model_dir} takes {'x'.join(map(str, dims))} inputs but {args.config}'s data.val.transforms give "
                f"{'x'.join(map(str, shape))}: evaluate with the config it was exported with"
            )
    if model is not None:
        diff = verify_export(
            model,
            predictor,
            [2, *shape],
            hint="evaluate with --backend dygraph, or check the Paddle version (3.3.x gives wrong oneDNN logits).",
        )
        if is_main_process():
            print(f"backend {backend} ({model_dir}): matches the dygraph model, max |diff| {diff:.1e}", file=sys.stderr)

    def run(images):
        return paddle.to_tensor(predictor(images.numpy()))

    return run


def _auto_backend(args) -> str:
    """``--backend auto``: dygraph on a GPU; on the CPU the fastest verified backend installed: ONNX Runtime
    (paddle2onnx + onnxruntime; for --model-dir, when it holds model.onnx), else Paddle Inference."""
    if on_gpu() and not args.model_dir:
        return "dygraph"
    if on_gpu():
        return "paddle"
    have_ort = importlib.util.find_spec("onnxruntime") is not None
    if args.model_dir:
        return "onnx" if have_ort and os.path.isfile(os.path.join(args.model_dir, "model.onnx")) else "paddle"
    return "onnx" if have_ort and importlib.util.find_spec("paddle2onnx") is not None else "paddle"


def _class_names(dataset, num_classes: int):
    """The dataset's class names (ImageNet wnids become their names), or None."""
    names = list(getattr(dataset, "classes", None) or [])
    if not names or len(names) != num_classes:
        return None
    if num_classes == 1000 and names == imagenet_wnids():
        return imagenet_class_names()
    return [str(n) for n in names]


def _default_report(cfg) -> str:
    """A new OUTPUT_DIR/eval_report_<UTC time>.json: never a file that exists (a training run's own report)."""
    folder = cfg.get("output_dir") or "."
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path, n = os.path.join(folder, f"eval_report_{stamp}.json"), 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(folder, f"eval_report_{stamp}_{n}.json")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-o", "--override", action="append", default=[], help="key.sub=value (repeatable)")
    p.add_argument("--weights", default=None, help="weights file (default: model.pretrained)")
    p.add_argument("--ema", action="store_true", help="use the EMA weights of a training checkpoint")
    p.add_argument(
        "--report",
        default=None,
        help="JSON report path, replaced if it exists (default: a new OUTPUT_DIR/eval_report_<UTC time>.json)",
    )
    p.add_argument(
        "--predictions",
        default=None,
        help="CSV of per-image top-5 predictions (index,label,top1..top5, then label_name,top1_name..top5_name "
        "when the dataset has class names); with several processes each rank writes FILE.rankN with its own images",
    )
    p.add_argument("--backend", choices=("auto", "dygraph", "paddle", "onnx"), default="auto")
    p.add_argument("--model-dir", default=None, help="an existing export to evaluate (paddle/onnx backends)")
    p.add_argument("--threads", type=int, default=None, help="CPU math threads per process (default: cores/procs)")
    args = p.parse_args(argv)
    args.tmp_dir = None
    try:
        cfg = get_config(args.config, args.override)
        refuse_pretraining_config(cfg, "eval.py")
        with quiet_native():  # init_parallel_env prints Paddle's "Modified FLAGS" banner
            init_distributed()
        if not cfg.get("data", {}).get("val"):
            raise ConfigError(f"{args.config} has no data.val section to evaluate on")
        val = cfg.data.val
        dataset = build_dataset(val.dataset, val.get("transforms"), for_eval=True)
        loader = build_loader(dataset, val.batch_size, train=False, num_workers=val.get("num_workers", 0))
        # classes checked before any work: by count against the config's head (an export carries no model object)
        check_classes(SimpleNamespace(num_classes=int(cfg.model.head.num_classes)), val=dataset)
        model = _backend(cfg, args)
        carried = getattr(model, "class_names", None)  # a fine-tuned checkpoint's, or classes.txt of an export
        if carried:
            check_classes(SimpleNamespace(num_classes=len(carried), class_names=carried), val=dataset)
        names = carried or _class_names(dataset, int(cfg.model.head.get("num_classes") or 0))
        rows = []
        sampler = loader.batch_sampler

        def keep(logits, labels):
            top = logits.numpy().argsort(axis=-1)[:, ::-1][:, :5]
            for lab, t in zip(labels.numpy().tolist(), top.tolist()):
                rows.append((sampler.indices[len(rows)], lab, *t))

        res = evaluate(model, loader, progress=True, on_batch=keep)
        # the per-class files are named after the report (REPORT_per_class.json ...), so they never replace a run's
        report = args.report or _default_report(cfg)
        stem = os.path.splitext(os.path.basename(report))[0]
        class_files = eval_class_report(
            dataset, rows, names, int(cfg.model.head.num_classes), os.path.dirname(os.path.abspath(report)), f"{stem}_"
        )
    except (ConfigError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if args.tmp_dir:
            shutil.rmtree(args.tmp_dir, ignore_errors=True)
    skipped = res.pop("skipped")
    res.update(
        backend=args.backend_used,
        config=args.config,
        weights=(args.weights or cfg.model.get("pretrained")) if not args.model_dir or _weights_given(args) else None,
        model_dir=args.model_dir,
        skipped_images=skipped,
    )
    if args.predictions:
        path = args.predictions if get_world_size() == 1 else f"{args.predictions}.rank{get_rank()}"
        header = ["index", "label", "top1", "top2", "top3", "top4", "top5"]
        if names:
            header += ["label_name", "top1_name", "top2_name", "top3_name", "top4_name", "top5_name"]
            rows = [(*r, *(names[i] if 0 <= i < len(names) else "" for i in r[1:])) for r in rows]
        with open(path + ".tmp", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(path + ".tmp", path)
    if is_main_process():
        print(
            f"top1 {res['top1']:.3f} top5 {res['top5']:.3f} loss {res['loss']:.4f} images {res['count']} "
            f"({res['images_per_sec']:.1f} img/s){f', skipped {skipped} corrupt images' if skipped else ''}"
        )
        if class_files:
            print(f"per-class accuracy and confusion matrix: {', '.join(class_files.values())}")
        os.makedirs(os.path.dirname(os.path.abspath(report)), exist_ok=True)
        with open(report + ".tmp", "w") as f:
            json.dump(res, f, indent=2)
        os.replace(report + ".tmp", report)
        print(f"report: {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
