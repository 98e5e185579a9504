"""Shared bits of the command-line tools: config + model + weights, and the input size of a config."""

from __future__ import annotations

import os
import sys
from typing import List, Optional, Tuple

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from passl.modeling import build_model  # noqa: E402
from passl.utils.config import AttrDict  # noqa: E402


def model_from_config(cfg: AttrDict, weights: Optional[str] = None, use_ema: Optional[bool] = None):
    """Build ``cfg.model`` and load ``weights`` (else ``model.pretrained``) when given."""
    model = build_model(cfg.model)
    source = weights or cfg.model.get("pretrained")
    if source:
        from passl.weights import load_pretrained

        ema = bool(cfg.model.get("pretrained_ema", False)) if use_ema is None else use_ema
        report = load_pretrained(model, source, use_ema=ema)
        from passl.utils.report import checkpoint_classes

        model.class_names = checkpoint_classes(source)  # a fine-tuned checkpoint's class names (else None)
        if int(os.environ.get("PADDLE_TRAINER_ID", "0")) == 0:
            print(f"weights: {report.summary()}", file=sys.stderr)
    else:
        print(
            "warning: no weights given (--weights or -o model.pretrained=ZOO_NAME|URL|PATH): "
            "using a randomly initialised model",
            file=sys.stderr,
        )
    model.eval()
    return model


def input_shape(cfg: AttrDict) -> Tuple[int, int, int]:
    """(C, H, W) the model sees at evaluation: from the last resize/crop of data.val.transforms."""
    chans = int(cfg.model.architecture.get("in_chans", 3))
    size = None
    for op in (cfg.get("data", {}).get("val", {}) or {}).get("transforms") or []:
        if op.get("name") in ("CenterCrop", "ResizeCrop") or (
            op.get("name") == "Resize" and isinstance(op.get("size"), list)
        ):
            size = op.get("size", 224)
    if size is None:
        size = cfg.get("export", {}).get("image_size", 224) if cfg.get("export") else 224
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return chans, h, w


def free_port() -> int:
    """A free TCP port on the loopback interface (for a local paddle.distributed.launch master)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_launch(script_and_args: List[str], nproc: int, log_dir: str) -> List[str]:
    """The command running ``script_and_args`` as ``nproc`` processes on this machine through
    paddle.distributed.launch (gloo on 127.0.0.1 on CPU), or directly when ``nproc`` is 1."""
    if nproc <= 1:
        return [sys.executable, *script_and_args]
    return [
        sys.executable,
        "-m",
        "paddle.distributed.launch",
        "--nproc_per_node",
        str(nproc),
        "--master",
        f"127.0.0.1:{free_port()}",
        "--log_dir",
        log_dir,
        *script_and_args,
    ]
