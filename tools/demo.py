"""The Fashion-MNIST demo, end to end: train -> evaluate -> export (verified) -> predict -> report and curves.

    python tools/demo.py [-c configs/demo/fashion_mnist_convnext.yaml] [--output output/fashion_mnist_demo]
                         [--nproc 2] [-o key=value ...]

Training runs as --nproc CPU processes through paddle.distributed.launch (gloo on 127.0.0.1), the same launcher
as a multi-GPU run. Everything lands in the output folder: train.log, checkpoints, config.yaml, metrics.jsonl,
eval_report.json, inference/, samples/, training_curves.png and demo_report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_common.py

from _common import local_launch  # noqa: E402

from passl.data.datasets.fashion_mnist import CLASSES, FashionMNIST  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402
from passl.utils.plot import plot_training_curves  # noqa: E402


def _run(title: str, cmd, timings: dict) -> None:
    print(f"\n=== {title}: {' '.join(cmd)}", flush=True)
    t = time.time()
    res = subprocess.run(cmd, cwd=ROOT)
    timings[title] = round(time.time() - t, 1)
    if res.returncode != 0:
        raise SystemExit(f"demo: step '{title}' failed with exit code {res.returncode}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default="configs/demo/fashion_mnist_convnext.yaml")
    p.add_argument("--output", default=None, help="output folder (default: the config's output_dir)")
    p.add_argument("--nproc", type=int, default=min(2, os.cpu_count() or 1), help="training processes")
    p.add_argument("-o", "--override", action="append", default=[])
    args = p.parse_args(argv)
    start = time.time()
    try:
        cfg = get_config(
            os.path.join(ROOT, args.config) if not os.path.isabs(args.config) else args.config, args.override
        )
        out = os.path.abspath(args.output or cfg.output_dir)
        test = FashionMNIST(cfg.data.val.dataset.get("root", "/usr/share/datasets/fashion-mnist"), "test")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    overrides = [x for o in args.override for x in ("-o", o)] + ["-o", f"output_dir={out}"]
    py, timings = sys.executable, {}
    train = local_launch(
        ["tools/train.py", "-c", args.config, *overrides], args.nproc, os.path.join(out, "launch_logs")
    )
    os.makedirs(out, exist_ok=True)
    _run("train", train, timings)
    # The final weights, not best.pdparams: "best" was picked on these same test images, so its score would be
    # optimistic. Fashion-MNIST has no separate validation split.
    final = os.path.join(out, "last.pdparams")
    _run(
        "evaluate",
        [
            py,
            "tools/eval.py",
            "-c",
            args.config,
            *overrides,
            "--weights",
            final,
            "--report",
            os.path.join(out, "eval_report.json"),
        ],
        timings,
    )
    _run(
        "export",
        [
            py,
            "tools/export_model.py",
            "-c",
            args.config,
            *overrides,
            "--weights",
            final,
            "--output",
            os.path.join(out, "inference"),
        ],
        timings,
    )
    samples = os.path.join(out, "samples")
    os.makedirs(samples, exist_ok=True)
    truth = {}
    for i in range(0, 10000, 1250):  # eight test images, saved as the PNG files a user would have
        img, label = test[i]
        name = f"test_{i:05d}.png"
        img.save(os.path.join(samples, name))
        truth[name] = CLASSES[label]
    _run(
        "predict",
        [
            py,
            "tools/predict.py",
            "-c",
            args.config,
            *overrides,
            "--model-dir",
            os.path.join(out, "inference"),
            "--topk",
            "3",
            samples,
        ],
        timings,
    )
    print("true classes: " + ", ".join(f"{k}: {v}" for k, v in truth.items()))
    png = plot_training_curves(
        os.path.join(out, "metrics.jsonl"), os.path.join(out, "training_curves.png"), "ConvNeXt on Fashion-MNIST"
    )
    with open(os.path.join(out, "eval_report.json")) as f:
        evals = json.load(f)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        epochs = [json.loads(x) for x in f if '"eval"' in x]
    report = {
        "test_top1": evals["top1"],
        "test_top5": evals["top5"],
        "test_images": evals["count"],
        "per_epoch_top1": [e["model_top1"] for e in epochs],
        "seconds": timings,
        "total_seconds": round(time.time() - start, 1),
        "processes": args.nproc,
        "curves": png,
    }
    with open(os.path.join(out, "demo_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(
        f"\n=== done in {report['total_seconds']:.0f}s: test top-1 {evals['top1']:.2f}% top-5 {evals['top5']:.2f}% "
        f"on {evals['count']} images; curves {png}; report {os.path.join(out, 'demo_report.json')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
