"""Convert ConvNeXt (V1 or V2) weights from any supported layout to our .pdparams.

    python tools/convert_weights.py INPUT OUTPUT.pdparams [--arch tiny] [--ema] [--verify]

INPUT: a local file, URL or zoo name (official .pth/.pt -- V2 dense, FCMAE encoder or the Minkowski layout of the
FCMAE pre-training code --, timm .pth/.safetensors, Hugging Face .safetensors/.bin, PaddleClas or PASSL v1.1
.pdparams, our checkpoints). The generation follows from the weights (GRN tensors: ConvNeXt V2). With --arch the
result is loaded into that model to check every shape. --verify (needs torch and timm) compares our logits with
timm's convnext_<arch> / convnextv2_<arch> holding the original weights.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from passl.modeling import build_model  # noqa: E402
from passl.modeling.backbones.convnext import CONVNEXT_ARCHS  # noqa: E402
from passl.modeling.backbones.convnext_v2 import CONVNEXT_V2_ARCHS  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.weights import (  # noqa: E402
    convnext_v2,
    detect_format,
    load_pretrained,
    read_source,
    to_passl,
)

FAMILIES = {"ConvNeXt": (CONVNEXT_ARCHS, "convnext_"), "ConvNeXtV2": (CONVNEXT_V2_ARCHS, "convnextv2_")}


def _model_for(arch: str, sd, family: str):
    classes = sd["head.fc.weight"].shape[1] if "head.fc.weight" in sd else 1000
    archs = FAMILIES[family][0]
    if arch not in archs:
        raise ConfigError(
            f"--arch {arch} is not a {family} arch (the weights are {family}); use one of {', '.join(archs)}"
        )
    return build_model(
        {
            "architecture": {"name": family, "arch": arch},
            "head": {"name": "ConvNeXtClsHead", "in_channels": archs[arch][1][-1], "num_classes": classes},
        }
    )


def _verify(arch: str, model, raw, fmt: str, torch_layout: bool, family: str, complete: bool) -> float:
    """timm's convnext_<arch> (convnextv2_<arch>) against our model on the same random batch. timm loads the ORIGINAL
    tensors through its own checkpoint filter when it can read the layout (official, timm, PaddleClas) and the file is
    complete, which checks our key mapping independently; otherwise (our own, PASSL v1.1, Hugging Face, Minkowski
    files, encoder-only FCMAE weights) it gets our model's weights in the official layout."""
    try:
        import timm
        import torch
        from timm.models.convnext import checkpoint_filter_fn
    except ImportError:
        raise ConfigError("--verify needs torch and timm (pip install -r requirements-dev.txt)") from None
    ref = timm.create_model(f"{FAMILIES[family][1]}{arch}", pretrained=False, num_classes=model.num_classes).eval()
    if fmt in ("official", "timm") and complete:
        tensors = {
            k: torch.from_numpy(np.ascontiguousarray(v.T if (not torch_layout and v.ndim == 2) else v))
            for k, v in raw.items()
        }
        ref.load_state_dict(checkpoint_filter_fn(tensors, ref) if fmt == "official" else tensors)
        return _compare(ref, model)
    official = {}
    for k, v in model.state_dict().items():
        v = v.numpy()
        if k.startswith("head.fc."):
            k = "head." + k[len("head.fc.") :]
        elif k.startswith("backbone."):
            k = k[len("backbone.") :]
        if v.ndim == 2:  # Paddle Linear [in, out] -> PyTorch [out, in]
            v = v.T
        official[k] = torch.from_numpy(np.ascontiguousarray(v))
    ref.load_state_dict(checkpoint_filter_fn(official, ref))
    return _compare(ref, model)


def _compare(ref, model) -> float:
    import torch

    x = np.random.RandomState(0).randn(2, 3, 64, 64).astype("float32")
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = model(paddle.to_tensor(x)).numpy()
    return float(np.abs(got - expected).max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--arch", choices=sorted(set(CONVNEXT_ARCHS) | set(CONVNEXT_V2_ARCHS)), default=None)
    p.add_argument("--ema", action="store_true", help="take the EMA weights of a training checkpoint")
    p.add_argument("--verify", action="store_true")
    args = p.parse_args(argv)
    if args.verify and not args.arch:
        p.error("--verify needs --arch (the timm model convnext_<arch> to compare with)")
    try:
        path, raw = read_source(args.input, use_ema=args.ema)
        fmt = detect_format(raw.keys())
        torch_layout = not path.endswith(".pdparams")
        sd = to_passl(raw, torch_layout)
        family = "ConvNeXtV2" if convnext_v2.is_v2(sd) else "ConvNeXt"
        fcmae = convnext_v2.is_fcmae_encoder(sd)
        transposed = sum(1 for k in sd if k.endswith(("pwconv1.weight", "pwconv2.weight", "head.fc.weight")))
        print(
            f"{args.input}: {fmt} layout{' (FCMAE encoder only)' if fcmae else ''}, {family} weights, {len(raw)} "
            f"tensors -> {len(sd)} in our layout"
            f"{f' ({transposed} Linear weights transposed)' if torch_layout and fmt != 'passl' else ''}"
        )
        if args.arch:
            model = _model_for(args.arch, sd, family)
            report = load_pretrained(model, path, use_ema=args.ema)
            print(f"loads into {family}-{args.arch}: {report.summary()}")
            if args.verify:
                diff = _verify(args.arch, model.eval(), raw, fmt, torch_layout, family, not fcmae)
                print(f"verify against timm {FAMILIES[family][1]}{args.arch}: max |logit diff| {diff:.2e}")
                if diff > 1e-4:
                    print("error: logits differ by more than 1e-4", file=sys.stderr)
                    return 1
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        tmp = args.output + ".tmp"
        paddle.save({k: paddle.to_tensor(v) for k, v in sd.items()}, tmp)
        os.replace(tmp, args.output)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
