"""Side-by-side timing of exact formulations of ConvNeXt's layers on this machine (Paddle, float32).

Prints, for each pair, the max abs difference (they must agree) and the time ratio against the one the library uses:
- channels-first LayerNorm: transpose + fused layer_norm (used) vs explicit mean/variance;
- the block: NHWC Linear MLP (used, the official form) vs NCHW 1x1 convolutions;
- the depthwise 7x7: Paddle's grouped conv2d NCHW vs NHWC vs unfold + weighted sum, and DepthwiseConv2D's CPU
  matmul path (used automatically for maps of at most 196 pixels), at the given size and at 14, 7 and 3.

    python tools/benchmark_layers.py [--batch 16] [--size 56] [--dim 96] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from passl.modeling.backbones.convnext import Block  # noqa: E402
from passl.modeling.layers import DepthwiseConv2D, LayerNorm2d  # noqa: E402


def ln_manual(x, w, b, eps=1e-6):
    mu = x.mean(1, keepdim=True)
    var = ((x - mu) ** 2).mean(1, keepdim=True)
    return (x - mu) / paddle.sqrt(var + eps) * w.reshape([1, -1, 1, 1]) + b.reshape([1, -1, 1, 1])


class ConvMlpBlock(nn.Layer):
    """The same block in NCHW with 1x1 convolutions (timm's conv_mlp form)."""

    def __init__(self, ref: Block) -> None:
        super().__init__()
        dim = ref.dwconv.weight.shape[0]
        self.dwconv, self.norm = ref.dwconv, LayerNorm2d(dim)
        self.norm.weight.set_value(ref.norm.weight)
        self.norm.bias.set_value(ref.norm.bias)
        self.pw1, self.pw2, self.act = nn.Conv2D(dim, 4 * dim, 1), nn.Conv2D(4 * dim, dim, 1), nn.GELU()
        self.pw1.weight.set_value(ref.pwconv1.weight.T.reshape([4 * dim, dim, 1, 1]))
        self.pw1.bias.set_value(ref.pwconv1.bias)
        self.pw2.weight.set_value(ref.pwconv2.weight.T.reshape([dim, 4 * dim, 1, 1]))
        self.pw2.bias.set_value(ref.pwconv2.bias)
        self.gamma = self.create_parameter([dim, 1, 1])
        self.gamma.set_value(ref.gamma.reshape([dim, 1, 1]))

    def forward(self, x):
        return x + self.gamma * self.pw2(self.act(self.pw1(self.norm(self.dwconv(x)))))


def dw_nhwc(x, w, b):
    y = F.conv2d(x.transpose([0, 2, 3, 1]), w, b, padding=3, groups=x.shape[1], data_format="NHWC")
    return y.transpose([0, 3, 1, 2])


def dw_unfold(x, w, b):
    n, c, h, wd = x.shape
    cols = F.unfold(x, [7, 7], paddings=3).reshape([n, c, 49, h * wd])
    return (cols * w.reshape([1, c, 49, 1])).sum(2).reshape([n, c, h, wd]) + b.reshape([1, c, 1, 1])


def timed(fn, repeat: int, backward: bool) -> float:
    def run():
        if backward:
            fn().sum().backward()
        else:
            with paddle.no_grad():
                fn()

    run()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return best


def compare(title: str, variants, repeat: int, backward: bool) -> None:
    with paddle.no_grad():
        outs = [fn().numpy() for _, fn in variants]
    base = None
    print(f"{title} ({'forward+backward' if backward else 'forward'})")
    for (name, fn), out in zip(variants, outs):
        t = timed(fn, repeat, backward)
        base = base or t
        diff = float(np.abs(out - outs[0]).max())
        print(f"  {name:48s} {t * 1e3:9.2f} ms   x{t / base:5.2f}   max|diff| {diff:.1e}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=56)
    p.add_argument("--dim", type=int, default=96)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    paddle.set_device("cpu")
    paddle.seed(0)
    n, c, s = args.batch, args.dim, args.size
    print(f"paddle {paddle.__version__}, input [{n}, {c}, {s}, {s}], best of {args.repeat}")
    x = paddle.randn([n, c, s, s])
    x.stop_gradient = False
    ln = LayerNorm2d(c)
    compare(
        "channels-first LayerNorm",
        [
            ("transpose + F.layer_norm (used)", lambda: ln(x)),
            ("mean/var formula", lambda: ln_manual(x, ln.weight, ln.bias)),
        ],
        args.repeat,
        backward=False,
    )
    blk = Block(c, layer_scale_init_value=1.0)  # gamma 1 so the MLP branch matters in the comparison
    alt = ConvMlpBlock(blk)
    for bw in (False, True):
        compare(
            "ConvNeXt block",
            [("NHWC Linear MLP (used)", lambda: blk(x)), ("NCHW 1x1 conv MLP", lambda: alt(x))],
            args.repeat,
            bw,
        )
    dw = DepthwiseConv2D(c, 7)
    w, b = dw.weight, dw.bias
    for size in sorted({s, 14, 7, 3}, reverse=True):
        xs = paddle.randn([max(n, 64), c, size, size])
        xs.stop_gradient = False
        fast = "(used)" if dw._use_matmul(xs) else "(not used at this size)"
        compare(
            f"depthwise 7x7 on [{xs.shape[0]}, {c}, {size}, {size}]",
            [
                ("conv2d NCHW groups=C", lambda: F.conv2d(xs, w, b, padding=3, groups=c)),
                (f"DepthwiseConv2D matmul {fast}", lambda: DepthwiseConv2D.forward(dw, xs)),
                ("conv2d NHWC groups=C", lambda: dw_nhwc(xs, w, b)),
                ("unfold + weighted sum", lambda: dw_unfold(xs, w, b)),
            ],
            args.repeat,
            backward=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
