"""Side by side on Fashion-MNIST: timm's ConvNeXt (PyTorch, CPU) and ours (Paddle, CPU), same size, same recipe.

    python tools/benchmark_vs_timm.py [--seeds 0 1] [--epochs 3] [--nproc 2] [-c configs/demo/fashion_mnist_convnext.yaml]

Both sides read the recipe from the demo config: the model (depths, dims, stem patch, input channels, layer scale),
AdamW (lr, betas, eps, weight decay; no decay on 1-D parameters), per-step cosine with linear warmup from the same
`cosine_schedule` values, label smoothing, horizontal flip, the global batch and the epochs. Ours runs through
tools/train.py as `--nproc` processes (paddle.distributed.launch on 127.0.0.1, how the demo uses this machine's
cores); timm runs in one process with PyTorch's own intra-op threads (how PyTorch uses them). Each seed trains both,
and the script prints test top-1 after every epoch, the seed averages, the wall time of each run (training plus
the per-epoch evaluation of the 10k test images) and the time ratio.

torch and timm are test/benchmark references only (pip install -r requirements-dev.txt); nothing in passl imports them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_common.py

from _common import local_launch  # noqa: E402

from passl.data.datasets.fashion_mnist import FashionMNIST  # noqa: E402
from passl.solver.lr import cosine_schedule  # noqa: E402
from passl.utils.config import get_config  # noqa: E402


def run_ours(config: str, seed: int, epochs: int, nproc: int, per_proc: int, out: str) -> dict:
    cmd = local_launch(["tools/train.py", "-c", config], nproc, os.path.join(out, "launch_logs"))
    overrides = [f"seed={seed}", f"train.epochs={epochs}", f"output_dir={out}", "train.auto_resume=false"]
    overrides.append(f"data.train.batch_size={per_proc}")
    cmd += [x for o in overrides for x in ("-o", o)]
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    t = time.time()
    res = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.time() - t
    if res.returncode != 0:
        raise SystemExit(f"ours (seed {seed}) failed:\n{res.stderr[-3000:]}")
    top1 = []
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec["type"] == "eval":
                top1.append(rec["model_top1"])
    return {"top1": top1, "seconds": seconds}


def run_timm(cfg, seed: int, epochs: int, batch: int, train: FashionMNIST, test: FashionMNIST) -> dict:
    import torch
    import torch.nn.functional as F
    from timm.models.convnext import ConvNeXt

    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    arch, head = cfg.model.architecture, cfg.model.head
    model = ConvNeXt(
        in_chans=arch.in_chans,
        num_classes=head.num_classes,
        depths=tuple(arch.depths),
        dims=tuple(arch.dims),
        patch_size=arch.patch_size,
        drop_path_rate=arch.drop_path_rate,
        ls_init_value=arch.layer_scale_init_value,
        head_init_scale=head.get("head_init_scale", 1.0),
    )
    if arch.patch_size < 4:
        # timm keeps an output stride of 32 by giving stage 0 a downsampling layer when the stem stride is below 4;
        # ours (like the official code) never downsamples in stage 0. Remove it so both models are the same network.
        model.stages[0].downsample = torch.nn.Identity()
    ours = _our_param_count(cfg)
    theirs = sum(p.numel() for p in model.parameters())
    if ours != theirs:
        raise SystemExit(f"the models differ: ours has {ours:,} parameters, timm's {theirs:,}")
    opt_cfg = cfg.optimizer
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt_cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=opt_cfg.lr,
        betas=tuple(opt_cfg.betas),
        eps=opt_cfg.epsilon,
    )
    (mean,), (std,) = cfg.data.train.transforms[-1]["mean"], cfg.data.train.transforms[-1]["std"]
    steps = len(train) // batch
    sched = cosine_schedule(
        opt_cfg.lr,
        cfg.lr_scheduler.min_lr,
        epochs,
        steps,
        cfg.lr_scheduler.warmup_epochs,
        cfg.lr_scheduler.get("warmup_start_lr", 0.0),
    )
    smoothing = cfg.model.loss.get("label_smoothing", 0.0)
    x_train = (train.images.astype("float32") / 255.0 - mean) / std
    x_test = torch.from_numpy((test.images.astype("float32") / 255.0 - mean) / std).unsqueeze(1)
    y_train, y_test = train.labels.astype("int64"), torch.from_numpy(test.labels.astype("int64"))
    top1, step = [], 0
    t = time.time()
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(train))
        for b in range(steps):
            idx = order[b * batch : (b + 1) * batch]
            x = x_train[idx].copy()
            flip = rng.rand(len(idx)) < 0.5
            x[flip] = x[flip, :, ::-1]
            for g in opt.param_groups:
                g["lr"] = float(sched[step])
            loss = F.cross_entropy(
                model(torch.from_numpy(x).unsqueeze(1)), torch.from_numpy(y_train[idx]), label_smoothing=smoothing
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(test), 500):
                correct += (model(x_test[i : i + 500]).argmax(-1) == y_test[i : i + 500]).sum().item()
        top1.append(100.0 * correct / len(test))
    return {"top1": top1, "seconds": time.time() - t}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default="configs/demo/fashion_mnist_convnext.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=None, help="default: the config's train.epochs")
    p.add_argument("--nproc", type=int, default=2, help="processes for ours (the global batch stays the same)")
    p.add_argument("--global-batch", type=int, default=128, help="the demo's 2 processes x 64")
    p.add_argument("--output", default=None, help="where our runs write (default: a temporary folder)")
    args = p.parse_args(argv)
    cfg = get_config(os.path.join(ROOT, args.config))
    epochs = args.epochs or cfg.train.epochs
    global_batch = args.global_batch
    if global_batch % args.nproc:
        raise SystemExit(f"--nproc {args.nproc} does not divide the global batch {global_batch}")
    per_proc = global_batch // args.nproc
    root = cfg.data.train.dataset.get("root", "/usr/share/datasets/fashion-mnist")
    train, test = FashionMNIST(root, "train"), FashionMNIST(root, "test")
    import torch

    print(
        f"Fashion-MNIST, {epochs} epochs, global batch {global_batch}, seeds {args.seeds}; "
        f"ours: {args.nproc} Paddle process(es) x batch {per_proc}; timm: 1 PyTorch process, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    out_root = args.output or tempfile.mkdtemp(prefix="passl_vs_timm_")
    rows = []
    for seed in args.seeds:
        ours = run_ours(args.config, seed, epochs, args.nproc, per_proc, os.path.join(out_root, f"seed{seed}"))
        print(f"seed {seed} ours: top1 {_fmt(ours['top1'])} in {ours['seconds']:.0f} s", flush=True)
        ref = run_timm(cfg, seed, epochs, global_batch, train, test)
        print(f"seed {seed} timm: top1 {_fmt(ref['top1'])} in {ref['seconds']:.0f} s", flush=True)
        rows.append((ours, ref))
    mean_ours = np.mean([o["top1"] for o, _ in rows], axis=0)
    mean_timm = np.mean([r["top1"] for _, r in rows], axis=0)
    t_ours = np.mean([o["seconds"] for o, _ in rows])
    t_timm = np.mean([r["seconds"] for _, r in rows])
    print(
        f"\nseed-averaged test top-1 per epoch: ours {_fmt(mean_ours)} | timm {_fmt(mean_timm)} | "
        f"final difference {mean_ours[-1] - mean_timm[-1]:+.2f} points"
    )
    print(
        f"wall time per run (train + per-epoch eval): ours {t_ours:.0f} s, timm {t_timm:.0f} s, "
        f"ours/timm {t_ours / t_timm:.2f}"
    )
    return 0


def _our_param_count(cfg) -> int:
    from passl.modeling import build_model

    return sum(int(p.numel()) for p in build_model(cfg.model).parameters())


def _fmt(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
