"""Fine-tuning demonstration on real data (docs/finetune.md): Fashion-MNIST as PNG class folders in two groups.

    python tools/finetune_demo.py [--out output/finetune_demo] [--epochs 30] [--pre-epochs 4]

1. Writes the 28x28 images as PNG class folders: the first 5 classes (T-shirt/top .. Coat) are the "pre-training"
   set (--pre-per-class train images per class, 200 test images per class as its val folder); the other 5
   (Sandal .. Ankle boot) are the user's own data: --own-per-class train images per class (a few hundred) and all
   1000 test images per class as the val folder, which is the test set the result is measured on.
2. Pre-trains configs/finetune/demo_fashion_mnist.yaml (random init) on the first group.
   Pre-training is training from scratch: lr --scratch-lr (2e-3) without layer decay.
3. Fine-tunes the same config on the second group from the pre-trained weights (the head is dropped and
   re-initialised), and trains it from scratch with the same epochs, batch and schedule: once with the config
   unchanged, once with the from-scratch lr (--scratch-lr, no layer decay), the fairer baseline.
4. Prints both test top-1 figures (last epoch, raw and EMA weights) and writes them to OUT/result.json.

Every step runs tools/train.py through its command line, the commands printed as they run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from passl.data.datasets.fashion_mnist import CLASSES, _find, read_idx  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "finetune", "demo_fashion_mnist.yaml")
FMNIST = "/usr/share/datasets/fashion-mnist"


def _folder_name(c: int) -> str:
    return f"{c}_{CLASSES[c].replace('/', '-').replace(' ', '_')}"


def write_folders(src: str, out: str, classes, per_class: int, val_per_class: int, seed: int) -> str:
    """out/train/<class>/*.png from the training set, out/val/<class>/*.png from the test set; the first images of
    each class in a seeded permutation, so reruns write the same files."""
    rng = np.random.RandomState(seed)
    for split, stem, n in (("train", "train", per_class), ("val", "t10k", val_per_class)):
        images = read_idx(_find(src, f"{stem}-images-idx3-ubyte"))
        labels = read_idx(_find(src, f"{stem}-labels-idx1-ubyte"))
        for c in classes:
            idx = np.flatnonzero(labels == c)
            idx = idx[rng.permutation(len(idx))][:n]
            folder = os.path.join(out, split, _folder_name(c))
            os.makedirs(folder, exist_ok=True)
            for i in idx:
                path = os.path.join(folder, f"{i:05d}.png")
                if not os.path.exists(path):
                    Image.fromarray(images[i]).save(path)
    return out


def train(args, run: str, root: str, epochs: int, pretrained=None, extra=()) -> dict:
    cmd = [
        sys.executable,
        os.path.join(ROOT, "tools", "train.py"),
        "-c",
        CONFIG,
        "-o",
        f"data.root={root}",
        "-o",
        f"output_dir={run}",
        "-o",
        f"train.epochs={epochs}",
        "-o",
        f"train.eval_interval={epochs}",  # evaluate (on the test images) once, after the last epoch
    ]
    if pretrained:
        cmd += ["-o", f"model.pretrained={pretrained}"]
    for item in extra:
        cmd += ["-o", item]
    shown = ["python", *(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd[1:])]
    print("$ " + " ".join(shown), flush=True)
    t0 = time.time()
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL if args.quiet else None).returncode
    if rc != 0:
        raise SystemExit(f"error: the run above failed (exit {rc}); its log is in {run}")
    evals = [json.loads(ln) for ln in open(os.path.join(run, "metrics.jsonl")) if '"eval"' in ln]
    last = evals[-1]
    return {
        "epochs": epochs,
        "minutes": round((time.time() - t0) / 60, 1),
        "top1": round(last["model_top1"], 2),
        "top1_ema": round(last.get("ema_top1", float("nan")), 2),
        "images": last["model_count"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=FMNIST, help="folder of the Fashion-MNIST idx files")
    p.add_argument("--out", default=os.path.join("output", "finetune_demo"))
    p.add_argument("--pre-per-class", type=int, default=2000, help="pre-training images per class (5 classes)")
    p.add_argument("--own-per-class", type=int, default=300, help="the user's images per class (5 classes)")
    p.add_argument("--pre-epochs", type=int, default=4, help="at least 3 (the recipe warms up for 2)")
    p.add_argument("--epochs", type=int, default=30, help="fine-tuning and from-scratch epochs (the same budget)")
    p.add_argument("--scratch-lr", type=float, default=2e-3, help="lr of pre-training and of the 2nd scratch run")
    p.add_argument("--quiet", action="store_true", help="hide the training logs (they stay in each run's folder)")
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    pre = write_folders(args.data, os.path.join(out, "data_pretrain"), range(5), args.pre_per_class, 200, 0)
    own = write_folders(args.data, os.path.join(out, "data_own"), range(5, 10), args.own_per_class, 1000, 1)
    # Pre-training is training from scratch: the from-scratch lr without layer decay, not the fine-tuning lr.
    scratch = [f"optimizer.lr={args.scratch_lr}", "optimizer.layer_decay=null"]
    res = {"pretrain": train(args, os.path.join(out, "run_pretrain"), pre, args.pre_epochs, extra=scratch)}
    weights = os.path.join(out, "run_pretrain", "last.pdparams")
    res["finetuned"] = train(args, os.path.join(out, "run_finetune"), own, args.epochs, pretrained=weights)
    res["scratch"] = train(args, os.path.join(out, "run_scratch"), own, args.epochs)
    # The same budget from scratch with the from-scratch lr: the fair baseline, not only the unchanged config.
    res["scratch_lr"] = train(args, os.path.join(out, "run_scratch_lr"), own, args.epochs, extra=scratch)
    res["setup"] = {
        "pre_classes": [CLASSES[c] for c in range(5)],
        "own_classes": [CLASSES[c] for c in range(5, 10)],
        "pre_per_class": args.pre_per_class,
        "own_per_class": args.own_per_class,
        "test_images": res["finetuned"]["images"],
    }
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res, indent=2))
    print(
        f"test top-1 on the 5 own classes ({res['finetuned']['images']} test images): fine-tuned "
        f"{res['finetuned']['top1']:.2f} (EMA {res['finetuned']['top1_ema']:.2f}), from scratch "
        f"{res['scratch']['top1']:.2f} (EMA {res['scratch']['top1_ema']:.2f}) with the same config, "
        f"{res['scratch_lr']['top1']:.2f} (EMA {res['scratch_lr']['top1_ema']:.2f}) with lr {args.scratch_lr:g} and no "
        f"layer decay; {args.epochs} epochs each"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
