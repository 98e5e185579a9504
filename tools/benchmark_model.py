"""Inference and training throughput (img/s) of a ConvNeXt, our backends side by side with timm's (the counterpart
of timm's benchmark.py).

    python tools/benchmark_model.py --arch tiny                       # ConvNeXt-T, 224, infer batch 16, train 8
    python tools/benchmark_model.py -c configs/demo/fashion_mnist_convnext.yaml --batch 128 --train-batch 64
    python tools/benchmark_model.py --arch tiny --device gpu --amp --csv out.csv

Contenders: ``dygraph`` (ours, eager; training runs here), ``dygraph_noops`` (the same with ``PASSL_OPS=off``: no
fused CPU kernels), ``paddle`` (Paddle Inference) and ``onnx`` (ONNX Runtime)
through passl.inference's export and predictors, and ``timm`` (PyTorch eager) when torch and timm are installed. Each
contender runs in its own process with the same thread count; the parent runs the rounds alternately (contender A,
B, C, then A, B, C again, ...) so that a load change on a shared machine hits all of them, and reports each one's
best round. It prints the table with the ratio to timm and can write CSV. Random weights and inputs: throughput
does not depend on them. ``PASSL_OPS=off`` in the environment measures ours without the fused CPU kernels.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BACKENDS = ("dygraph", "dygraph_noops", "paddle", "onnx", "timm")
MODES = ("infer", "train")


# ----------------------------------------------------------------------------------------------- worker side
def _model_spec(args) -> dict:
    """Depths, dims, in_chans, patch size, classes and drop path of the network, from --arch or -c."""
    sys.path.insert(0, ROOT)
    if args.config:
        from passl.utils.config import get_config

        cfg = get_config(args.config)
        arch, head = dict(cfg.model.architecture), dict(cfg.model.head)
        from passl.modeling.backbones.convnext import CONVNEXT_ARCHS

        depths, dims = arch.get("depths"), arch.get("dims")
        if depths is None or dims is None:
            depths, dims = CONVNEXT_ARCHS[arch.get("arch", "tiny")]
        return {
            "depths": list(depths),
            "dims": list(dims),
            "in_chans": int(arch.get("in_chans", 3)),
            "patch_size": int(arch.get("patch_size", 4)),
            "num_classes": int(head.get("num_classes", 1000)),
            "drop_path_rate": float(arch.get("drop_path_rate", 0.0)),
        }
    from passl.modeling.backbones.convnext import CONVNEXT_ARCHS

    if args.arch not in CONVNEXT_ARCHS:
        raise SystemExit(f"--arch {args.arch!r}: use one of {', '.join(CONVNEXT_ARCHS)}")
    depths, dims = CONVNEXT_ARCHS[args.arch]
    return {
        "depths": list(depths),
        "dims": list(dims),
        "in_chans": 3,
        "patch_size": 4,
        "num_classes": 1000,
        "drop_path_rate": 0.0,
    }


def _paddle_runner(spec: dict, backend: str, mode: str, batch: int, size: int, device: str, amp: bool):
    import numpy as np
    import paddle

    from passl.modeling.backbones import build_backbone
    from passl.modeling.heads import build_head

    paddle.set_device("gpu" if device == "gpu" else "cpu")
    paddle.seed(0)
    backbone = build_backbone(
        {
            "name": "ConvNeXt",
            "depths": spec["depths"],
            "dims": spec["dims"],
            "in_chans": spec["in_chans"],
            "patch_size": spec["patch_size"],
            "drop_path_rate": spec["drop_path_rate"] if mode == "train" else 0.0,
        }
    )
    head = build_head({"name": "ConvNeXtClsHead", "in_channels": spec["dims"][-1], "num_classes": spec["num_classes"]})
    model = paddle.nn.Sequential(backbone, head)
    shape = [batch, spec["in_chans"], size, size]
    x_np = np.random.RandomState(0).standard_normal(shape).astype("float32")
    if mode == "train":
        if device == "cpu":
            from passl.utils.memory import reuse_freed_memory

            reuse_freed_memory()  # as the trainer does on CPU
        model.train()
        opt = paddle.optimizer.AdamW(1e-4, parameters=model.parameters())
        x = paddle.to_tensor(x_np)
        y = paddle.to_tensor(np.random.RandomState(1).randint(0, spec["num_classes"], [batch]).astype("int64"))

        def step():
            with paddle.amp.auto_cast(enable=amp, dtype="float16" if device == "gpu" else "bfloat16"):
                loss = paddle.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.clear_grad(set_to_zero=False)  # as the trainer does
            float(loss)  # wait for the device

        return step
    model.eval()
    if backend in ("dygraph", "dygraph_noops"):
        x = paddle.to_tensor(x_np)

        def infer():
            with paddle.no_grad(), paddle.amp.auto_cast(enable=amp, dtype="float16" if device == "gpu" else "bfloat16"):
                model(x).numpy()

        return infer
    from passl.inference import build_predictor, export_model, export_onnx

    out = tempfile.mkdtemp(prefix="passl_bench_")
    export_model(model, os.path.join(out, "model"), shape)
    if backend == "onnx":
        export_onnx(out)
        predictor = build_predictor("onnx", model_dir=out, threads=int(os.environ.get("OMP_NUM_THREADS", "2")))
    else:
        kw = {"threads": int(os.environ.get("OMP_NUM_THREADS", "2"))}
        if device == "gpu":
            kw["use_gpu"] = True
        predictor = build_predictor("paddle", model_dir=out, **kw)
    return lambda: predictor(x_np)


def _timm_runner(spec: dict, mode: str, batch: int, size: int, device: str, amp: bool, threads: int):
    import torch
    from timm.models.convnext import ConvNeXt

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    model = ConvNeXt(
        in_chans=spec["in_chans"],
        num_classes=spec["num_classes"],
        depths=spec["depths"],
        dims=spec["dims"],
        patch_size=spec["patch_size"],
        drop_path_rate=spec["drop_path_rate"] if mode == "train" else 0.0,
    )
    if spec["patch_size"] < 4:  # timm then downsamples in stage 0 to keep stride 32; ours (and the official) does not
        model.stages[0].downsample = torch.nn.Identity()
    model = model.to(dev)
    x = torch.randn(batch, spec["in_chans"], size, size, device=dev)
    cast = dict(device_type=dev.type, dtype=torch.float16 if device == "gpu" else torch.bfloat16, enabled=amp)
    if mode == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        y = torch.randint(0, spec["num_classes"], (batch,), device=dev)

        def step():
            with torch.autocast(**cast):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            float(loss)

        return step
    model.eval()

    def infer():
        with torch.no_grad(), torch.autocast(**cast):
            model(x).float().cpu()

    return infer


def worker(args) -> int:
    """Build one contender, warm it up, then answer each "run" line on stdin with the seconds of --iters steps."""
    spec = _model_spec(args)
    if args.drop_path is not None:
        spec["drop_path_rate"] = args.drop_path
    batch = args.train_batch if args.mode == "train" else args.batch
    if args.backend == "timm":
        run = _timm_runner(spec, args.mode, batch, args.size, args.device, args.amp, args.threads)
    else:
        run = _paddle_runner(spec, args.backend, args.mode, batch, args.size, args.device, args.amp)
    for _ in range(args.warmup):
        run()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t = time.perf_counter()
        for _ in range(args.iters):
            run()
        print(json.dumps({"seconds": time.perf_counter() - t}), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- parent side
def _available(backend: str) -> Optional[str]:
    """None when the backend can run here, else the reason it is skipped."""
    import importlib.util

    need = {"timm": ("torch", "timm"), "onnx": ("onnxruntime", "paddle2onnx")}.get(backend, ())
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


class Contender:
    def __init__(self, backend: str, mode: str, argv: List[str], threads: int) -> None:
        self.backend, self.mode, self.times, self.error = backend, mode, [], None
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if backend == "dygraph_noops":
            env["PASSL_OPS"] = "off"
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--backend", backend, "--mode", mode, *argv]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def _reply(self) -> Optional[dict]:
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        self.error = (self.proc.stderr.read() or "worker exited").strip().splitlines()[-1][:300]
        return None

    def ready(self) -> bool:
        return self._reply() is not None

    def round(self) -> None:
        if self.error:
            return
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        rep = self._reply()
        if rep is not None:
            self.times.append(rep["seconds"])

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--arch", default="tiny", help="ConvNeXt variant (atto .. xlarge), 1000 classes (default tiny)")
    src.add_argument("-c", "--config", help="a config file: its model's depths, dims, stem, classes, drop path")
    p.add_argument("--batch", type=int, default=16, help="inference batch (default 16)")
    p.add_argument("--train-batch", type=int, default=8, help="training batch (default 8)")
    p.add_argument("--size", type=int, default=224, help="input height = width (default 224)")
    p.add_argument(
        "--drop-path",
        type=float,
        default=None,
        help="stochastic depth rate for training, both sides (default: the config's, 0 for --arch)",
    )
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--amp", action="store_true", help="autocast: float16 on GPU, bfloat16 on CPU, both sides")
    p.add_argument("--modes", default="infer,train", help="comma list of infer, train (default both)")
    p.add_argument(
        "--backends",
        default="dygraph,paddle,onnx,timm",
        help="comma list of dygraph, dygraph_noops, paddle, onnx, timm (training: the dygraph ones and timm)",
    )
    p.add_argument("--threads", type=int, default=2, help="math threads per contender (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; each contender's best counts (default 5)")
    p.add_argument("--iters", type=int, default=3, help="steps per round (default 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before the rounds (default 2)")
    p.add_argument(
        "--pause", type=float, default=0.5, help="seconds between rounds, so spinning threads go idle (default 0.5)"
    )
    p.add_argument("--csv", help="also write the table to this CSV file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"--modes: unknown mode {m!r}; use {', '.join(MODES)}")
    for b in backends:
        if b not in BACKENDS:
            raise SystemExit(f"--backends: unknown backend {b!r}; use {', '.join(BACKENDS)}")
    if args.device == "gpu" and "onnx" in backends:
        print(
            "note: the onnx contender runs ONNX Runtime's CPU provider only; skipped on --device gpu", file=sys.stderr
        )
        backends.remove("onnx")
    src = ["--config", args.config] if args.config else ["--arch", args.arch]
    common = (
        src
        + [
            "--batch",
            str(args.batch),
            "--train-batch",
            str(args.train_batch),
            "--size",
            str(args.size),
            "--device",
            args.device,
            "--iters",
            str(args.iters),
            "--warmup",
            str(args.warmup),
            "--threads",
            str(args.threads),
        ]
        + (["--amp"] if args.amp else [])
        + ([] if args.drop_path is None else ["--drop-path", str(args.drop_path)])
    )
    plan = [(b, m) for m in modes for b in backends if not (m == "train" and b in ("paddle", "onnx"))]
    skipped: Dict[str, str] = {}
    contenders = []
    # Start and warm them up one after the other, so a build or export does not slow another's warm-up; idle
    # contenders wait on their stdin.
    for b, m in plan:
        reason = _available(b)
        if reason:
            skipped[b] = reason
            continue
        c = Contender(b, m, common, args.threads)
        if not c.ready():
            print(f"{c.backend} {c.mode}: failed: {c.error}", file=sys.stderr)
        contenders.append(c)
    for _ in range(args.rounds):
        for c in contenders:
            # OpenMP and ONNX Runtime threads spin for a while after their work (Intel OpenMP: 200 ms); let the
            # previous contender's go quiet before this one's round starts
            time.sleep(args.pause)
            c.round()
    for c in contenders:
        c.close()

    rows = []
    for c in contenders:
        if not c.times:
            continue
        batch = args.train_batch if c.mode == "train" else args.batch
        rows.append(
            {
                "mode": c.mode,
                "backend": c.backend,
                "batch": batch,
                "img_s": batch * args.iters / min(c.times),
                "rounds": len(c.times),
            }
        )
    ref = {r["mode"]: r["img_s"] for r in rows if r["backend"] == "timm"}
    for r in rows:
        r["vs_timm"] = r["img_s"] / ref[r["mode"]] if r["mode"] in ref else None
    what = args.config or f"ConvNeXt-{args.arch}"
    print(
        f"{what}, {args.size}x{args.size}, {args.device}, amp {'on' if args.amp else 'off'}, "
        f"train drop path {args.drop_path if args.drop_path is not None else _model_spec(args)['drop_path_rate']}, "
        f"{args.threads} threads per contender, best of {args.rounds} alternating rounds x {args.iters} steps, "
        f"PASSL_OPS={os.environ.get('PASSL_OPS', 'auto')}"
    )
    print(f"| {'mode':5} | {'contender':13} | {'batch':>5} | {'img/s':>8} | {'vs timm':>7} |")
    print("|-------|---------------|------:|---------:|--------:|")
    for r in rows:
        ratio = f"{r['vs_timm']:.2f}" if r["vs_timm"] is not None else "-"
        print(f"| {r['mode']:5} | {r['backend']:13} | {r['batch']:>5} | {r['img_s']:>8.2f} | {ratio:>7} |")
    for b, reason in skipped.items():
        print(f"({b} skipped: {reason})")
    if args.csv:
        tmp = f"{args.csv}.tmp{os.getpid()}"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["mode", "backend", "batch", "img_s", "vs_timm", "rounds"])
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, args.csv)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
