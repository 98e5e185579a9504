"""Evaluate a model on the config's validation set: top-1, top-5, loss, image count, images/s; a JSON report.

python tools/eval.py -c configs/convnext/convnext_tiny.yaml -o model.pretrained=PATH [--ema] [--report FILE]
python -m paddle.distributed.launch --nproc_per_node 2 tools/eval.py -c ...   # each image counted once

--backend auto (the default) evaluates on CPU through Paddle Inference: the model is exported to a temporary folder,
checked against the dygraph model on one batch (refused above 1e-4), and run about 5x faster than dygraph on this
kind of CPU; on a GPU it evaluates the dygraph model. --backend dygraph|paddle|onnx chooses explicitly, and
--model-dir evaluates an existing export (tools/export_model.py) instead of exporting again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import input_shape, model_from_config  # noqa: E402

from passl.data import build_dataset, check_classes  # noqa: E402
from passl.data.loader import build_loader  # noqa: E402
from passl.engine.evaluator import evaluate  # noqa: E402
from passl.inference import ExportError, build_predictor, export_model, verify_export  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402
from passl.utils.dist import get_rank, get_world_size, init_distributed, is_main_process  # noqa: E402
from passl.utils.report import eval_class_report  # noqa: E402


def _backend(model, cfg, args):
    """The callable to evaluate: the dygraph model, or a verified Paddle Inference / ONNX Runtime predictor."""
    import paddle

    backend = args.backend
    if backend == "auto":
        backend = "dygraph" if "gpu" in paddle.device.get_device() else "paddle"
    args.backend_used = backend
    if backend == "dygraph":
        return model
    threads = args.threads or max(1, (os.cpu_count() or 1) // get_world_size())
    shape = input_shape(cfg)
    model_dir = args.model_dir
    if model_dir is None:
        if backend == "onnx":
            raise ConfigError(
                "--backend onnx evaluates an ONNX export: pass --model-dir (tools/export_model.py --onnx)"
            )
        model_dir = args.tmp_dir = tempfile.mkdtemp(prefix=f"passl_eval_rank{get_rank()}_")
        export_model(model, os.path.join(model_dir, "model"), [1, *shape])
    predictor = build_predictor(backend, model_dir=model_dir, threads=threads)
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-o", "--override", action="append", default=[], help="key.sub=value (repeatable)")
    p.add_argument("--weights", default=None, help="weights file (default: model.pretrained)")
    p.add_argument("--ema", action="store_true", help="use the EMA weights of a training checkpoint")
    p.add_argument("--report", default=None, help="JSON report path (default: OUTPUT_DIR/eval_report.json)")
    p.add_argument(
        "--predictions",
        default=None,
        help="CSV of per-image top-5 predictions (index,label,top1..top5); with several processes each "
        "rank writes FILE.rankN with its own images",
    )
    p.add_argument("--backend", choices=("auto", "dygraph", "paddle", "onnx"), default="auto")
    p.add_argument("--model-dir", default=None, help="an existing export to evaluate (paddle/onnx backends)")
    p.add_argument("--threads", type=int, default=None, help="CPU math threads per process (default: cores/procs)")
    args = p.parse_args(argv)
    args.tmp_dir = None
    try:
        cfg = get_config(args.config, args.override)
        init_distributed()
        if not cfg.get("data", {}).get("val"):
            raise ConfigError(f"{args.config} has no data.val section to evaluate on")
        val = cfg.data.val
        dataset = build_dataset(val.dataset, val.get("transforms"), for_eval=True)
        loader = build_loader(dataset, val.batch_size, train=False, num_workers=val.get("num_workers", 0))
        model = model_from_config(cfg, args.weights, use_ema=args.ema or None)
        check_classes(model, val=dataset)
        names = getattr(model, "class_names", None)  # carried by a fine-tuned checkpoint
        model = _backend(model, cfg, args)
        rows = []
        sampler = loader.batch_sampler

        def keep(logits, labels):
            top = logits.numpy().argsort(axis=-1)[:, ::-1][:, :5]
            for lab, t in zip(labels.numpy().tolist(), top.tolist()):
                rows.append((sampler.indices[len(rows)], lab, *t))

        res = evaluate(model, loader, progress=True, on_batch=keep)
        report_dir = os.path.dirname(os.path.abspath(args.report or os.path.join(cfg.get("output_dir") or ".", "x")))
        class_files = eval_class_report(dataset, rows, names, int(cfg.model.head.num_classes), report_dir)
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
        weights=args.weights or cfg.model.get("pretrained"),
        skipped_images=skipped,
    )
    if args.predictions:
        path = args.predictions if get_world_size() == 1 else f"{args.predictions}.rank{get_rank()}"
        with open(path + ".tmp", "w") as f:
            f.write("index,label,top1,top2,top3,top4,top5\n")
            f.writelines(",".join(map(str, r)) + "\n" for r in rows)
        os.replace(path + ".tmp", path)
    if is_main_process():
        print(
            f"top1 {res['top1']:.3f} top5 {res['top5']:.3f} loss {res['loss']:.4f} images {res['count']} "
            f"({res['images_per_sec']:.1f} img/s){f', skipped {skipped} corrupt images' if skipped else ''}"
        )
        if class_files:
            print(f"per-class accuracy and confusion matrix: {', '.join(class_files.values())}")
        report = args.report or os.path.join(cfg.get("output_dir") or ".", "eval_report.json")
        os.makedirs(os.path.dirname(os.path.abspath(report)), exist_ok=True)
        with open(report + ".tmp", "w") as f:
            json.dump(res, f, indent=2)
        os.replace(report + ".tmp", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
