"""ConvNeXt V2 checkpoint layouts: detection and remapping to the official layout (the rows V2 adds).

- ``official``: the dense ``*_ema.pt`` files (``{"model": state_dict}``, official names, GRN (1, 1, 1, 4C)) and the
  released encoder-only ``pt_only/*_fcmae.pt`` files (same layout, no final ``norm``, no ``head``) are read by the V1
  rules; only the GRN shape and the FCMAE decoder keys need the helpers below.
- ``fcmae_minkowski``: what the official pre-training code (MinkowskiEngine sparse encoder) writes: ``encoder.``
  prefix, sparse convolutions as ``kernel`` tensors of shape (k*k, in, out) or (k*k, C) for depthwise ones,
  ``ln``/``linear`` wrapper modules in the path, biases and GRN parameters of shape (1, C), plus the dense decoder
  (``mask_token``, ``proj``, ``decoder``, ``pred``). Remapped as the repository's ``remap_checkpoint_keys`` does.
- ``passl_fcmae``: our own FCMAE model's state dict (``passl.modeling.architectures.FCMAE``, what the trainer saves
  when pre-training): ``encoder.`` + the official dense names in Paddle shapes, no final norm, plus the decoder.
- ``hf``: Hugging Face transformers ``ConvNextV2ForImageClassification`` / ``ConvNextV2Model`` (and V1's
  ``ConvNext*``, same names plus ``layer_scale_parameter``): ``embeddings``, ``encoder.stages.N.layers.M``,
  ``downsampling_layer``, ``layernorm``, ``grn.weight``/``grn.bias`` (1, 1, 1, 4C), ``classifier``.
- timm ``convnextv2_*`` names are V1's timm names plus ``mlp.grn.weight``/``mlp.grn.bias`` of shape (4C,): two rows
  of the timm table in ``passl.weights``.

Our GRN parameters have shape [4C]; every layout's GRN tensors are flattened to it.
"""

from __future__ import annotations

import math
import re
from typing import Dict, Iterable, Mapping, Optional

import numpy as np

__all__ = [
    "LAYOUTS",
    "detect",
    "to_official",
    "is_decoder_key",
    "is_fcmae_encoder",
    "left_at_init",
    "flatten_grn",
    "is_v2",
    "generation_hint",
]

LAYOUTS = ("hf", "fcmae_minkowski", "passl_fcmae")
_DECODER = ("mask_token", "proj.", "decoder.", "pred.")  # the FCMAE decoder side, dropped by official fine-tuning
_GRN = re.compile(r"\.grn\.(gamma|beta)$")

_P = r"^(?:convnextv2\.|convnext\.)?"  # HF: the ForImageClassification model nests the backbone under this prefix
_HF = [
    (re.compile(_P + r"embeddings\.patch_embeddings\."), "downsample_layers.0.0."),
    (re.compile(_P + r"embeddings\.layernorm\."), "downsample_layers.0.1."),
    (re.compile(_P + r"encoder\.stages\.(\d+)\.downsampling_layer\.(\d)\."), r"downsample_layers.\1.\2."),
    (re.compile(_P + r"encoder\.stages\.(\d+)\.layers\.(\d+)\.layernorm\."), r"stages.\1.\2.norm."),
    (re.compile(_P + r"encoder\.stages\.(\d+)\.layers\.(\d+)\.grn\.weight$"), r"stages.\1.\2.grn.gamma"),
    (re.compile(_P + r"encoder\.stages\.(\d+)\.layers\.(\d+)\.grn\.bias$"), r"stages.\1.\2.grn.beta"),
    (re.compile(_P + r"encoder\.stages\.(\d+)\.layers\.(\d+)\.layer_scale_parameter$"), r"stages.\1.\2.gamma"),
    (re.compile(_P + r"encoder\.stages\.(\d+)\.layers\.(\d+)\."), r"stages.\1.\2."),
    (re.compile(_P + r"layernorm\."), "norm."),
    (re.compile(r"^classifier\."), "head."),
]


def detect(keys: Iterable[str]) -> Optional[str]:
    """``hf``, ``fcmae_minkowski`` or ``passl_fcmae`` when ``keys`` are in one of those layouts, else None."""
    keys = list(keys)
    if any(k.startswith("encoder.downsample_layers.") for k in keys):
        sparse = any(k.startswith("encoder.") and k.endswith(".kernel") for k in keys)
        return "fcmae_minkowski" if sparse else "passl_fcmae"
    if any(re.match(_P + r"embeddings\.patch_embeddings\.", k) for k in keys):
        return "hf"
    return None


def _minkowski_kernel(key: str, v: np.ndarray) -> np.ndarray:
    """A MinkowskiEngine kernel -> the dense (out, in, k, k) weight, as the official remap_checkpoint_keys does:
    (k*k, in, out) -> (out, in, k, k) and (k*k, C) -> (C, 1, k, k), then the two spatial axes swapped."""
    ks = int(math.isqrt(int(v.shape[0]))) if v.ndim else 0
    if v.ndim not in (2, 3) or ks * ks != v.shape[0]:
        from passl.weights import WeightsError  # here: passl.weights imports this module

        raise WeightsError(
            f"'{key}' has shape {list(v.shape)}; a Minkowski kernel is (k*k, in, out) or (k*k, C) with a square "
            f"kernel: the file is not a ConvNeXt V2 FCMAE checkpoint"
        )
    if v.ndim == 3:
        _, cin, cout = v.shape
        w = v.transpose(2, 1, 0).reshape(cout, cin, ks, ks)
    else:
        w = v.T.reshape(v.shape[1], 1, ks, ks)
    return np.ascontiguousarray(w.swapaxes(2, 3))


def to_official(sd: Mapping[str, np.ndarray], layout: str) -> Dict[str, np.ndarray]:
    """Remap an ``hf``, ``fcmae_minkowski`` or ``passl_fcmae`` state dict to the official dense names (and, but for
    ``passl_fcmae``, whose tensors keep Paddle's shapes, PyTorch shapes); the FCMAE decoder keeps its names."""
    out: Dict[str, np.ndarray] = {}
    for k, v in sd.items():
        if layout == "hf":
            out[next((pat.sub(rep, k) for pat, rep in _HF if pat.match(k)), k)] = v  # first matching row
            continue
        if not k.startswith("encoder."):  # decoder side: dense already, kept under its own names
            out[k] = v
            continue
        parts = k[len("encoder.") :].split(".")
        if parts[-1] == "kernel":
            out[".".join(parts[:-1]) + ".weight"] = _minkowski_kernel(k, v)
            continue
        if len(parts) >= 2 and parts[-2] in ("ln", "linear"):
            parts.pop(-2)
        k = ".".join(parts)
        out[k] = v.reshape(-1) if k.endswith(".bias") and v.ndim != 1 else v
    return out


def flatten_grn(key: str, v: np.ndarray) -> np.ndarray:
    """GRN gamma/beta of any layout ((1, 1, 1, 4C), (1, 4C), (4C,)) -> our [4C]."""
    return v.reshape(-1) if _GRN.search(key) else v


def is_decoder_key(key: str) -> bool:
    """A tensor of the FCMAE decoder (not part of the encoder/backbone)."""
    return key.startswith(_DECODER)


def is_v2(keys: Iterable[str]) -> bool:
    """Whether remapped (official or our) keys hold GRN parameters, i.e. are ConvNeXt V2 weights."""
    return any(_GRN.search(k) for k in keys)


def is_fcmae_encoder(sd: Mapping[str, np.ndarray]) -> bool:
    """Our-layout weights (``backbone.*``) of a V2 encoder without the final norm and the classifier: what FCMAE
    pre-training produces. Loading them for fine-tuning leaves those at their init."""
    keys = list(sd)
    backbone = [k for k in keys if k.startswith("backbone.")]
    return (
        is_v2(backbone)
        and not any(k.startswith("backbone.norm.") for k in keys)
        and not any(k.startswith("head.") for k in keys)
    )


def left_at_init(model_key: str) -> bool:
    """Model tensors an encoder-only FCMAE checkpoint does not provide (final norm and classifier)."""
    return model_key.startswith(("backbone.norm.", "norm.", "head."))


def generation_hint(file_keys: Iterable[str], model_keys: Iterable[str]) -> str:
    """A hint for the load error when V1 weights meet a V2 model or the other way round, else ''."""
    in_file, in_model = is_v2(file_keys), is_v2(model_keys)
    if in_file == in_model:
        return ""
    family = "ConvNeXtV2" if in_file else "ConvNeXt"
    return (
        f" (the file holds ConvNeXt {'V2' if in_file else 'V1'} weights{' (GRN)' if in_file else ''}: build the "
        f"model with model.architecture.name: {family})"
    )
