"""What a user with a GPU runs first and pastes into a bug report: versions, devices, /dev/shm, TF32, the AMP
dtype of each ConvNeXt block op under O1/O2 and float16/bfloat16, a short training step at each precision (img/s,
memory), a save-resume round trip, and (under paddle.distributed.launch with 2+ processes) an EMA equality check
across ranks. On a CPU it runs too: what only a GPU can show is marked "n/a" with the reason.

    python tools/check_gpu.py                                   # one GPU (or the CPU)
    python -m paddle.distributed.launch --devices 0,1 tools/check_gpu.py   # adds the cross-rank EMA check
    python tools/check_gpu.py --json report.json                # also write the report as JSON

Exit status 1 when a check fails (a resume that does not continue the run exactly, EMA differing across ranks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import numpy as np  # noqa: E402
import paddle  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# The ops of a ConvNeXt block and its stem/downsampling, as Paddle's autocast names them.
BLOCK_OPS = ["conv2d", "depthwise_conv2d", "layer_norm", "matmul_v2", "gelu", "elementwise_add", "elementwise_mul"]
NA_CPU = "n/a on cpu (Paddle runs AMP on GPU/XPU/custom devices only)"


def _device_kind() -> str:
    return "gpu" if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else "cpu"


def versions() -> Dict[str, Any]:
    from passl import __version__

    cuda = paddle.version.cuda() if paddle.device.is_compiled_with_cuda() else None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "paddle": paddle.__version__,
        "paddle_commit": paddle.version.commit,
        "cuda": cuda or "n/a (cpu build)",
        "cudnn": (paddle.version.cudnn() if cuda else None) or "n/a (cpu build)",
        "numpy": np.__version__,
        "passl": __version__,
    }


def devices() -> Dict[str, Any]:
    out: Dict[str, Any] = {"compiled_with_cuda": paddle.device.is_compiled_with_cuda()}
    out["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
    if _device_kind() == "gpu":
        n = paddle.device.cuda.device_count()
        out["gpus"] = [
            {
                "id": i,
                "name": paddle.device.cuda.get_device_name(i),
                "capability": list(paddle.device.cuda.get_device_capability(i)),
                "memory_gb": round(paddle.device.cuda.get_device_properties(i).total_memory / 2**30, 1),
            }
            for i in range(n)
        ]
    else:
        out["gpus"] = "none visible: this report covers the CPU"
    out["this_process_device"] = paddle.get_device()
    return out


def shm(batch: int, image_size: int) -> Dict[str, Any]:
    """/dev/shm size against one float32 batch (loader workers hand batches over through it)."""
    batch_mb = batch * 3 * image_size * image_size * 4 / 2**20
    try:
        total = shutil.disk_usage("/dev/shm").total / 2**20
    except OSError:
        return {"dev_shm": "n/a (no /dev/shm)", "float32_batch_mb": round(batch_mb, 1)}
    out = {"dev_shm_mb": round(total, 1), "float32_batch_mb": round(batch_mb, 1)}
    if total < 4 * batch_mb:
        out["advice"] = (
            "/dev/shm holds fewer than 4 batches: raise it (docker run --shm-size=8g) or set "
            "data.train.use_shared_memory=false (see docs/training.md)"
        )
    return out


def tf32() -> Dict[str, Any]:
    core = paddle.base.core
    out: Dict[str, Any] = {"NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE", "(unset)")}
    for name in ("get_cublas_switch", "get_cudnn_switch"):
        fn = getattr(core, name, None)
        out[name[4:]] = fn() if fn is not None else "n/a (cpu build)"
    return out


def amp_table(white: List[str]) -> Dict[str, Any]:
    """From Paddle's op lists: the dtype each block op computes in, per AMP dtype and level ("low" = float16 or
    bfloat16; "inputs" = the dtype its inputs arrive in: float32 after a float32 op under O1, low under O2)."""
    from paddle.amp import amp_lists

    table: Dict[str, Any] = {}
    for dtype in ("float16", "bfloat16"):
        for level in ("O1", "O2"):
            w = amp_lists.white_list()[dtype][level] | set(white)
            b = amp_lists.black_list()[dtype][level] - set(white)
            table[f"{dtype}/{level}"] = {
                op: "low" if op in w else "float32" if op in b else "inputs" for op in BLOCK_OPS
            }
    return table


def amp_measured(white: List[str], image_size: int) -> Dict[str, Any]:
    """Output dtype of each sublayer of one ConvNeXt block under each setting, measured on this device."""
    if _device_kind() == "cpu":
        return {"measured": NA_CPU}
    from passl.modeling.backbones.convnext import Block

    out: Dict[str, Any] = {}
    for dtype in ("float16", "bfloat16"):
        for level in ("O1", "O2"):
            block = Block(64, drop_path=0.1)
            if level == "O2":
                block = paddle.amp.decorate(models=block, level="O2", dtype=dtype)
            seen: Dict[str, str] = {}
            hooks = [
                layer.register_forward_post_hook(lambda m, i, o, n=name: seen.setdefault(n, str(o.dtype)))
                for name, layer in block.named_sublayers()
            ]
            try:
                with paddle.amp.auto_cast(dtype=dtype, level=level, custom_white_list=white or None):
                    block(paddle.randn([2, 64, image_size // 4, image_size // 4]))
                out[f"{dtype}/{level}"] = seen
            except Exception as e:  # bfloat16 on a GPU without it, for instance
                out[f"{dtype}/{level}"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            for h in hooks:
                h.remove()
    return out


def step_benchmark(arch: str, image_size: int, batch: int, steps: int) -> Dict[str, Any]:
    """Forward, backward and an AdamW step of ConvNeXt-``arch`` at each precision: images/s and peak memory."""
    from passl.modeling import build_model

    on_gpu = _device_kind() == "gpu"
    settings = [("float32", None, None)]
    if on_gpu:
        settings += [("float16", "O1", "float16"), ("bfloat16", "O1", "bfloat16")]
        settings += [("float16", "O2", "float16"), ("bfloat16", "O2", "bfloat16")]
    out: Dict[str, Any] = {}
    if not on_gpu:
        out["note"] = "cpu: float32 only, timing not representative of a GPU; " + NA_CPU
    for name, level, dtype in settings:
        key = name if level is None else f"{name}/{level}"
        try:
            paddle.seed(0)
            model = build_model(_model_config(arch))
            opt = paddle.optimizer.AdamW(learning_rate=1e-4, parameters=model.parameters(), multi_precision=True)
            if level == "O2":
                model, opt = paddle.amp.decorate(models=model, optimizers=opt, level="O2", dtype=dtype)
            scaler = paddle.amp.GradScaler() if dtype == "float16" else None
            x = paddle.randn([batch, 3, image_size, image_size])
            y = paddle.randint(0, 1000, [batch])
            if on_gpu:
                paddle.device.cuda.reset_max_memory_allocated()
            times = []
            for i in range(steps + 1):  # the first step warms up (kernel selection, allocator)
                t0 = time.perf_counter()
                with paddle.amp.auto_cast(enable=level is not None, dtype=dtype or "float16", level=level or "O1"):
                    loss = paddle.nn.functional.cross_entropy(model(x).astype("float32"), y)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                opt.clear_grad()
                float(loss)  # waits for the device
                if i:
                    times.append(time.perf_counter() - t0)
            res = {"images_per_sec": round(batch / (sum(times) / len(times)), 1), "loss": round(float(loss), 4)}
            if on_gpu:
                res["max_memory_gb"] = round(paddle.device.cuda.max_memory_allocated() / 2**30, 2)
            out[key] = res
        except Exception as e:
            out[key] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return out


def _model_config(arch: str):
    """The shipped ConvNeXt-T recipe's model section with another variant."""
    from passl.modeling.backbones.convnext import CONVNEXT_ARCHS
    from passl.utils.config import AttrDict, get_config

    model = get_config(os.path.join(ROOT, "configs/convnext/convnext_tiny.yaml")).model
    model.architecture = AttrDict(name="ConvNeXt", arch=arch, drop_path_rate=0.1)
    model.head.in_channels = int(CONVNEXT_ARCHS[arch][1][-1])
    model.pretrained = None
    return model


def _tiny_config(out: str, max_steps: int, amp: Optional[Dict[str, Any]]):
    from passl.utils.config import AttrDict, get_config

    cfg = get_config(os.path.join(ROOT, "configs/convnext/convnext_tiny.yaml"))
    cfg.output_dir = out
    cfg.model.architecture = AttrDict(name="ConvNeXt", depths=[1, 1, 1, 1], dims=[8, 16, 32, 64], drop_path_rate=0.1)
    cfg.model.head.in_channels, cfg.model.head.num_classes = 64, 10
    cfg.model.pretrained = None
    cfg.data.train.dataset = AttrDict(name="SyntheticImages", num_samples=16, image_size=32, num_classes=10)
    cfg.data.train.batch_size, cfg.data.train.num_workers = 4, 0
    cfg.data.val = None
    cfg.data.mixup.label_smoothing = 0.1
    cfg.lr_scheduler.warmup_epochs = 0
    cfg.train.update(
        epochs=1, accum_steps=1, log_interval=1, visualdl=False, max_steps=max_steps, ema={"enable": True, "decay": 0.9}
    )
    cfg.train.amp = amp or {"enable": False}
    return cfg


def _quiet_trainer(cfg):
    import logging

    from passl.engine.trainer import Trainer

    t = Trainer(cfg)
    logging.getLogger("passl").setLevel(logging.WARNING)
    return t


def _weights(t) -> Dict[str, np.ndarray]:
    return {k: v.astype("float32").numpy() for k, v in t.model_without_ddp.state_dict().items()}


def resume_round_trip() -> Dict[str, Any]:
    """3 steps straight vs 2 steps, save, resume, 1 step (tiny model, mixup, drop path, EMA): the same weights?"""
    from passl.utils.dist import get_world_size

    if get_world_size() > 1:
        return {"result": "n/a under a launcher (run it in a single process)"}
    amp = {"enable": _device_kind() == "gpu", "dtype": "bfloat16", "level": "O1"}
    with tempfile.TemporaryDirectory() as tmp:
        straight = _quiet_trainer(_tiny_config(os.path.join(tmp, "a"), 3, amp))
        straight.train()
        first = _quiet_trainer(_tiny_config(os.path.join(tmp, "b"), 2, amp))
        first.train()
        resumed = _quiet_trainer(_tiny_config(os.path.join(tmp, "b"), 3, amp))
        step = resumed.state["step"]
        resumed.train()
        a, b = _weights(straight), _weights(resumed)
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    ok = step == 2 and diff == 0.0
    return {
        "resumed_at_step": step,
        "max_weight_diff": diff,
        "result": "ok: bit-identical" if ok else "FAILED: the resumed run differs (paste this report in an issue)",
        "ok": ok,
    }


def ema_across_ranks() -> Dict[str, Any]:
    """Under a launcher: each rank's EMA after 2 steps, hashed and compared (they must be identical)."""
    from passl.utils.dist import all_gather_json, get_world_size

    if get_world_size() < 2:
        return {"result": "n/a with one process (python -m paddle.distributed.launch --devices 0,1 tools/check_gpu.py)"}
    with tempfile.TemporaryDirectory() as tmp:
        t = _quiet_trainer(_tiny_config(os.path.join(tmp, "ema"), 2, None))
        t.train()
        h = hashlib.sha256()
        for k, v in sorted(t.ema.state_dict().items()):
            h.update(k.encode() + np.ascontiguousarray(v.numpy()).tobytes())
    hashes = all_gather_json(h.hexdigest())
    ok = len(set(hashes)) == 1
    return {"ranks": len(hashes), "ok": ok, "result": "ok: identical" if ok else f"FAILED: hashes {hashes}"}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="tiny", help="ConvNeXt variant for the step benchmark (default tiny)")
    ap.add_argument("--image-size", type=int, default=None, help="default 224 on a GPU, 64 on the CPU")
    ap.add_argument("--batch", type=int, default=None, help="per step; default 64 on a GPU, 2 on the CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per precision; default 10 on a GPU, 1 on CPU")
    ap.add_argument("--white-list", nargs="*", default=["depthwise_conv2d"], help="custom AMP white list to show")
    ap.add_argument("--json", help="also write the report to this file")
    args = ap.parse_args(argv)
    from passl.utils.dist import get_rank, init_distributed

    init_distributed()
    gpu = _device_kind() == "gpu"
    if gpu:
        paddle.set_device(f"gpu:{os.environ.get('FLAGS_selected_gpus', '0').split(',')[0]}")
    size = args.image_size or (224 if gpu else 64)
    batch = args.batch or (64 if gpu else 2)
    steps = args.steps or (10 if gpu else 1)
    report: Dict[str, Any] = {
        "versions": versions(),
        "devices": devices(),
        "shm": shm(batch, size),
        "tf32": tf32(),
        "amp_ops_default": amp_table([]),
        f"amp_ops_white_list_{'+'.join(args.white_list) or 'none'}": amp_table(args.white_list),
        "amp_measured": amp_measured(args.white_list, size),
        "step": step_benchmark(args.arch, size, batch, steps),
        "resume": resume_round_trip(),
        "ema_across_ranks": ema_across_ranks(),
    }
    failed = [k for k in ("resume", "ema_across_ranks") if report[k].get("ok") is False]
    report["summary"] = "FAILED: " + ", ".join(failed) if failed else "all applicable checks passed"
    if get_rank() == 0:
        for section, body in report.items():
            print(f"== {section}")
            print(json.dumps(body, indent=2, default=str) if not isinstance(body, str) else body)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
