"""Shared bits of the command-line tools: Paddle's console chatter silenced, config + model + weights, the
evaluation transforms and input size of a config.

Importing this module quiets Paddle for the tools (it must come before anything imports paddle): glog INFO and
WARNING lines are off unless GLOG_minloglevel is set (``GLOG_minloglevel=0 python tools/...`` shows them again), the
"No ccache found" import warning is ignored, and the few lines Paddle's C++ code writes straight to the console
(NOISE) are dropped by ``quiet_native`` around the calls that print them.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from typing import Callable, Iterator, List, Optional, Tuple

os.environ.setdefault("GLOG_minloglevel", "2")  # before paddle loads glog: errors only
warnings.filterwarnings("ignore", message="No ccache found")

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from passl.modeling import build_model  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import AttrDict  # noqa: E402

# Lines Paddle prints past Python's streams: a debug print on a Paddle Inference predictor's first oneDNN run,
# init_parallel_env's "Modified FLAGS" banner (FLAGS_enable_pir_in_executor, set by Paddle itself), glog INFO and
# WARNING lines (printed before GLOG_minloglevel could apply, or by libraries that reset it) and paddle2onnx's log.
NOISE = re.compile(
    r"^(ReduceMeanCheckIfOneDNNSupport"
    r"|=+ Modified FLAGS detected =+|FLAGS\(name=.*\)|=+"
    r"|[IW]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] .*"
    r"|\[Paddle2ONNX\] .*)\s*$"
)


@contextlib.contextmanager
def quiet_native() -> Iterator[None]:
    """Run a block with file descriptors 1 and 2 (what C++ code and Python's own streams write to) captured in
    temporary files; afterwards every captured line except Paddle's known chatter (NOISE) is written to
    sys.stdout / sys.stderr, so real messages (errors included) still show, in their order within each stream."""
    targets = ((1, sys.stdout), (2, sys.stderr))
    captured: List[Tuple[int, int, object, object]] = []
    for fd, stream in targets:
        with contextlib.suppress(Exception):
            stream.flush()
        try:
            saved = os.dup(fd)
        except OSError:  # no such descriptor (a detached process): nothing to capture
            continue
        tmp = tempfile.TemporaryFile()
        os.dup2(tmp.fileno(), fd)
        captured.append((fd, saved, tmp, stream))
    try:
        yield
    finally:
        for fd, saved, tmp, stream in captured:
            with contextlib.suppress(Exception):
                stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            tmp.close()
            kept = [ln for ln in text.splitlines(keepends=True) if not NOISE.match(ln)]
            if kept:
                stream.write("".join(kept))
                stream.flush()


class QuietFirstCall:
    """A predictor whose first call runs inside ``quiet_native`` (Paddle Inference prints a debug line then);
    attributes are the wrapped predictor's."""

    def __init__(self, predictor: Callable) -> None:
        self.predictor, self._first = predictor, True

    def __call__(self, batch):
        if self._first:
            with quiet_native():
                out = self.predictor(batch)
            self._first = False
            return out
        return self.predictor(batch)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["predictor"], name)


def model_from_config(cfg: AttrDict, weights: Optional[str] = None, use_ema: Optional[bool] = None):
    """Build ``cfg.model`` and load ``weights`` (else ``model.pretrained``) when given."""
    model = build_model(cfg.model)
    source = weights or cfg.model.get("pretrained")
    if source:
        from passl.weights import load_pretrained

        ema = bool(cfg.model.get("pretrained_ema", False)) if use_ema is None else use_ema
        try:
            report = load_pretrained(model, source, use_ema=ema)
        except ConfigError as e:
            # use_ema=True comes from the tools' --ema flag: advise dropping the flag, not a config key.
            msg = str(e)
            if use_ema and "no EMA weights" in msg:
                raise ConfigError(msg.split("; set model.pretrained_ema", 1)[0] + "; run without --ema") from None
            raise
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


def eval_transform_cfgs(cfg: AttrDict) -> Tuple[List[dict], Optional[str]]:
    """The op configs that bring an image to the model's input: data.val.transforms; for a config without them (the
    22K pre-training configs have no data.val) the official ImageNet eval pipeline at export.image_size (default
    224), with a note saying so (else None)."""
    ops = (cfg.get("data", {}).get("val", {}) or {}).get("transforms")
    if ops:
        return list(ops), None
    from passl.data.transforms.eval import eval_transform_cfgs as official

    size = int((cfg.get("export") or {}).get("image_size", 224))
    note = (
        f"the config has no data.val.transforms: using the official ImageNet eval pipeline at {size} "
        f"(ToRGB, ResizeCrop {size} crop_pct 0.875, Normalize with the ImageNet mean/std)"
    )
    return official(size), note


def input_shape(cfg: AttrDict) -> Tuple[int, int, int]:
    """(C, H, W) the model sees at evaluation: from the last resize/crop of the eval transforms
    (``eval_transform_cfgs``), else export.image_size, else 224."""
    chans = int(cfg.model.architecture.get("in_chans", 3))
    size = None
    for op in eval_transform_cfgs(cfg)[0]:
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
