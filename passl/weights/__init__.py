"""Pretrained weights, in one place: read any supported file, detect its key layout, remap to ours, load with a
report. Layouts: official ConvNeXt (.pth), timm (.pth / .safetensors), PaddleClas ports and PASSL v1.1 ports
(.pdparams), and our own training checkpoints. Sources: a zoo name, a URL or a local path.

Every load reports missing and unexpected keys, fails on a shape mismatch (naming the key and both shapes) unless
it is the classifier and the caller drops it, and fails when nothing matches.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import paddle
import paddle.nn as nn

from passl.registry import ConfigError
from passl.weights import convnext_v2
from passl.weights.download import cache_dir, download, forget
from passl.weights.paddle_pickle import load_paddle
from passl.weights.torch_pickle import BadCheckpointError, UnsafePickleError, load_pth
from passl.weights.zoo import ZOO, WeightInfo

__all__ = [
    "load_pretrained",
    "read_state_dict",
    "read_source",
    "to_passl",
    "detect_format",
    "resolve_source",
    "LoadReport",
    "WeightsError",
    "ZOO",
    "WeightInfo",
    "cache_dir",
]

logger = logging.getLogger("passl.weights")


class WeightsError(ConfigError):
    """A weights file that cannot be read or loaded into the model as asked."""


@dataclass
class LoadReport:
    source: str
    format: str = ""
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    skipped_head: List[str] = field(default_factory=list)
    left_at_init: List[str] = field(default_factory=list)  # not in encoder-only (FCMAE) weights: final norm, head

    def _left_at_init_note(self) -> str:
        if not self.left_at_init:
            return ""
        if all(convnext_v2.is_decoder_key(k) for k in self.left_at_init):
            return f"; encoder-only weights: the FCMAE decoder is left at init (pre-training trains it) {len(self.left_at_init)}"
        return f"; encoder-only FCMAE weights: left at init (fine-tune them) {len(self.left_at_init)}"

    def summary(self) -> str:
        def few(keys):
            return f": {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}" if keys else ""

        return (
            f"{self.source} ({self.format} layout): loaded {len(self.loaded)} tensors; missing "
            f"{len(self.missing)}{few(self.missing)}; unexpected {len(self.unexpected)}{few(self.unexpected)}"
            f"{f'; classifier not loaded ({len(self.skipped_head)} tensors)' if self.skipped_head else ''}"
            f"{self._left_at_init_note()}{few(self.left_at_init)}"
        )


# ------------------------------------------------------------------------------------------------------ reading
def _numpy(v: Any) -> Optional[np.ndarray]:
    if isinstance(v, paddle.Tensor):
        return v.numpy()
    if isinstance(v, np.ndarray):
        return v
    return None


def _unwrap(obj: Any, path: str, use_ema: bool) -> Dict[str, np.ndarray]:
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict")
    ema_keys, model_keys = ("ema", "model_ema", "state_dict_ema"), ("model", "state_dict", "model_state")
    for k in ema_keys if use_ema else model_keys:
        if isinstance(obj.get(k), Mapping):
            obj = obj[k]
            break
    else:
        if use_ema:
            raise WeightsError(
                f"{path} has no EMA weights (looked for {', '.join(ema_keys)}); set model.pretrained_ema: false"
            )
    out = {str(k): a for k, v in obj.items() if (a := _numpy(v)) is not None}
    if not out:
        raise WeightsError(f"{path} contains no tensors")
    return out


def read_state_dict(path: str, use_ema: bool = False) -> Dict[str, np.ndarray]:
    """name -> numpy array from a .pth (no torch needed), .safetensors or Paddle pickle (.pdparams, .pdopt, ...)
    file; unwraps ``model``/``state_dict`` (or ``ema``/``model_ema`` with ``use_ema``) containers. Pickles are read
    with an allow-list of plain-data globals: no file runs code."""
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.numpy import load_file

            return _unwrap(dict(load_file(path)), path, use_ema)
        if zipfile.is_zipfile(path) or path.endswith((".pth", ".pt", ".bin")):
            return _unwrap(load_pth(path), path, use_ema)
        obj = load_paddle(path, return_numpy=True)
    except (UnsafePickleError, BadCheckpointError) as e:
        raise WeightsError(str(e) if path in str(e) else f"{path}: {e}") from None
    except WeightsError:
        raise
    except Exception as e:  # truncated or foreign files surface as many exception types
        raise WeightsError(
            f"{path} could not be read ({type(e).__name__}: {e}); it may be truncated or not a "
            f"weights file: download it again"
        ) from None
    return _unwrap(obj, path, use_ema)


# ------------------------------------------------------------------------------------------------ key mapping
def detect_format(keys) -> str:
    keys = list(keys)
    if any(k.startswith("backbone.") for k in keys):
        return "passl_v1" if any(k.startswith("head.fc_cls.") for k in keys) else "passl"
    v2_layout = convnext_v2.detect(keys)  # Hugging Face, FCMAE Minkowski
    if v2_layout:
        return v2_layout
    if any(k.startswith("stem.") or ".blocks." in k for k in keys):
        return "timm"
    if any(k.startswith(("downsample_layers.", "stages.")) for k in keys):
        return "official"
    raise WeightsError(
        f"unknown checkpoint layout (keys like {keys[:4]}); expected ConvNeXt weights in the "
        f"official, timm, Hugging Face, FCMAE (Minkowski), PaddleClas, PASSL or our own layout"
    )


_TIMM = [
    (re.compile(r"^stem\.(\d)\."), r"downsample_layers.0.\1."),
    (re.compile(r"^stages\.(\d)\.downsample\.(\d)\."), r"downsample_layers.\1.\2."),
    (re.compile(r"^stages\.(\d)\.blocks\.(\d+)\.conv_dw\."), r"stages.\1.\2.dwconv."),
    (re.compile(r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.fc1\."), r"stages.\1.\2.pwconv1."),
    (re.compile(r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.fc2\."), r"stages.\1.\2.pwconv2."),
    (re.compile(r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.grn\.weight$"), r"stages.\1.\2.grn.gamma"),  # V2
    (re.compile(r"^stages\.(\d)\.blocks\.(\d+)\.mlp\.grn\.bias$"), r"stages.\1.\2.grn.beta"),  # V2
    (re.compile(r"^stages\.(\d)\.blocks\.(\d+)\."), r"stages.\1.\2."),
    (re.compile(r"^head\.norm\."), "norm."),
    (re.compile(r"^head\.fc\."), "head."),
]
_LINEAR = re.compile(r"(pwconv1|pwconv2)\.weight$|^head\.weight$")


def to_passl(sd: Mapping[str, np.ndarray], torch_layout: bool) -> Dict[str, np.ndarray]:
    """Remap any supported layout to ours (``backbone.<official name>``, ``head.fc.*``); PyTorch Linear weights
    ([out, in], or [out, in, 1, 1] for timm's conv MLP) become Paddle's [in, out] when ``torch_layout``."""
    fmt = detect_format(sd.keys())
    if fmt == "passl":
        return dict(sd)
    if fmt in convnext_v2.LAYOUTS:
        sd = convnext_v2.to_official(sd, fmt)
    official: Dict[str, np.ndarray] = {}
    for k, v in sd.items():
        if fmt == "passl_v1":
            k = k[len("backbone.") :] if k.startswith("backbone.") else k.replace("head.fc_cls.", "head.")
        elif fmt == "timm":
            for pat, rep in _TIMM:
                if pat.match(k):
                    k = pat.sub(rep, k)
                    break
        official[k] = v
    out = {}
    for k, v in official.items():
        if _LINEAR.search(k) and v.ndim in (2, 4):
            v = v.reshape(v.shape[0], v.shape[1])
            if torch_layout:
                v = v.T
        v = convnext_v2.flatten_grn(k, v)
        if convnext_v2.is_decoder_key(k):  # FCMAE decoder tensors keep their names (not part of the backbone)
            out[k] = np.ascontiguousarray(v)
            continue
        out["head.fc." + k[len("head.") :] if k.startswith("head.") else "backbone." + k] = np.ascontiguousarray(v)
    return out


# -------------------------------------------------------------------------------------------------- sources
def _resolve(source: str, offline: Optional[bool]):
    """(local path, whether it is a downloaded file in the cache)."""
    if source in ZOO:
        info = ZOO[source]
        return download(info.url, info.filename, info.sha256, offline), True
    if re.match(r"^(https?|file)://", source):
        return download(source, offline=offline), True
    if not os.path.exists(source):
        close = [n for n in ZOO if source.lower() in n.lower()][:5]
        hint = f"; zoo names that contain it: {', '.join(close)}" if close else "; see docs/model_zoo.md for names"
        raise WeightsError(f"pretrained '{source}' is neither a zoo name, a URL nor an existing file{hint}")
    return source, False


def resolve_source(source: str, offline: Optional[bool] = None) -> str:
    """A local path for a zoo name, a URL (downloaded into the cache) or a path."""
    return _resolve(source, offline)[0]


def read_source(source: str, use_ema: bool = False, offline: Optional[bool] = None):
    """(local path, state dict) of a zoo name, URL or path. A downloaded file that cannot be read as weights (an
    HTML error page, a damaged or refused file) is removed from the cache, with its checksum record."""
    path, cached = _resolve(source, offline)
    try:
        return path, read_state_dict(path, use_ema)
    except WeightsError as e:
        if not cached or (use_ema and "no EMA weights" in str(e)):
            raise
        forget(path)
        raise WeightsError(f"{e} [downloaded from {source}: removed it from the cache]") from None


def _is_head(name: str) -> bool:
    return name.startswith("head.")


def load_pretrained(
    model: nn.Layer,
    source: str,
    *,
    drop_head: bool = False,
    use_ema: bool = False,
    strict: bool = True,
    offline: Optional[bool] = None,
) -> LoadReport:
    """Load ``source`` into ``model`` (a Classification model, or a bare backbone: the classifier is then left out).

    ``drop_head`` skips the classifier (fine-tuning to another class count); ``use_ema`` takes the EMA weights of a
    training checkpoint; ``strict`` fails when model tensors stay unloaded."""
    path, raw = read_source(source, use_ema, offline)
    torch_layout = not path.endswith((".pdparams", ".pdopt", ".pdckpt"))
    fmt = detect_format(raw.keys())
    sd = to_passl(raw, torch_layout)
    fcmae_encoder = convnext_v2.is_fcmae_encoder(sd)
    own = model.state_dict()
    # An FCMAE model (encoder.* + decoder): the backbone weights go to its encoder, the decoder keeps its names.
    fcmae_model = any(k.startswith("encoder.") for k in own) and any(convnext_v2.is_decoder_key(k) for k in own)
    bare_backbone = not fcmae_model and not any(k.startswith("backbone.") for k in own)
    report = LoadReport(source, fmt)
    if bare_backbone:
        report.skipped_head = [k for k in sd if _is_head(k)]
        sd = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
    elif fcmae_model:
        report.skipped_head = [k for k in sd if _is_head(k)]
        sd = {
            ("encoder." + k[len("backbone.") :] if k.startswith("backbone.") else k): v
            for k, v in sd.items()
            if not _is_head(k)
        }
    new_state = {}
    for name, value in sd.items():
        if name not in own:
            report.unexpected.append(name)
            continue
        if drop_head and _is_head(name):
            report.skipped_head.append(name)
            continue
        target = own[name]
        if list(value.shape) != list(target.shape):
            hint = (
                "; set model.drop_head: true to fine-tune with another number of classes"
                if _is_head(name)
                else "; the file is for another architecture (check model.architecture)"
            )
            raise WeightsError(
                f"{source}: shape mismatch for '{name}': file {list(value.shape)}, model {list(target.shape)}{hint}"
            )
        new_state[name] = value.astype(np.float32) if value.dtype != np.float32 else value
        report.loaded.append(name)
    if not new_state:
        raise WeightsError(
            f"{source}: no tensor matches the model (file keys like {list(raw)[:3]}); it is not a "
            f"checkpoint of this model"
        )
    report.missing = [k for k in own if k not in new_state and not (drop_head and _is_head(k))]
    if fcmae_model and not any(convnext_v2.is_decoder_key(k) for k in sd):
        # encoder-only weights (the released *_fcmae.pt, a classifier's backbone): the decoder stays at its init
        report.left_at_init = [k for k in own if k not in new_state and convnext_v2.is_decoder_key(k)]
        report.missing = [k for k in report.missing if k not in report.left_at_init]
    elif fcmae_encoder and not fcmae_model:
        report.left_at_init = [k for k in own if k not in new_state and convnext_v2.left_at_init(k)]
        report.missing = [k for k in report.missing if k not in report.left_at_init]
    if strict and report.missing:
        raise WeightsError(
            f"{source}: {len(report.missing)} model tensors are not in the file: "
            f"{', '.join(report.missing[:10])}; pass strict=False to allow it"
            f"{convnext_v2.generation_hint(sd, own)}"
        )
    with warnings.catch_warnings():  # Paddle warns once per tensor not given; the report lists them in one line
        warnings.filterwarnings("ignore", message="Skip loading for", category=UserWarning)
        model.set_state_dict({k: paddle.to_tensor(v) for k, v in new_state.items()})
    logger.info(report.summary())
    return report
