"""Writers of the ConvNeXt V2 checkpoint layouts from a timm ``convnextv2_*`` state dict, for the tests. Written from
the official repository (models/convnextv2.py, models/fcmae.py, utils.remap_checkpoint_keys) and transformers'
ConvNextV2 names, independently of the library's own key tables."""

import re

import pytest

torch = pytest.importorskip("torch", reason="torch is a test-only reference (pip install -r requirements-dev.txt)")


def randomize(model):
    """Non-trivial GRN gamma/beta, norms and biases (all zero or one at init) so every tensor matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "grn" in name or name.endswith(".bias") or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "norm.weight" in name else 0.0))


# timm block sub-module -> official block attribute
_BLOCK_PARTS = {"conv_dw": "dwconv", "norm": "norm", "mlp.fc1": "pwconv1", "mlp.fc2": "pwconv2"}
_BLOCK_PARTS.update({"mlp.grn": "grn"})
_GRN_LEAF = {"weight": "gamma", "bias": "beta"}


def timm_to_official(sd):
    """timm names and shapes -> the official dense checkpoint (models/convnextv2.py; V1's models/convnext.py)."""
    out = {}
    for k, v in sd.items():
        p = k.split(".")
        if p[0] == "stem":  # stem.0 conv, stem.1 norm
            nk = ["downsample_layers", "0"] + p[1:]
        elif p[0] == "head":  # head.norm -> norm, head.fc -> head
            nk = ["norm" if p[1] == "norm" else "head"] + p[2:]
        elif p[2] == "downsample":  # stages.S.downsample.J -> downsample_layers.S.J
            nk = ["downsample_layers", p[1]] + p[3:]
        elif len(p) == 5:  # stages.S.blocks.B.gamma: V1's layer scale
            nk = ["stages", p[1], p[3], p[4]]
        else:  # stages.S.blocks.B.<part>.<leaf> -> stages.S.B.<attr>.<leaf>
            part, leaf = ".".join(p[4:-1]), p[-1]
            attr = _BLOCK_PARTS[part]
            nk = ["stages", p[1], p[3], attr, _GRN_LEAF[leaf] if attr == "grn" else leaf]
        nk = ".".join(nk)
        if nk.endswith(("pwconv1.weight", "pwconv2.weight")):
            v = v.reshape(v.shape[0], v.shape[1])  # timm's 1x1-conv MLP (atto..nano) -> Linear
        if ".grn." in nk:
            v = v.reshape(1, 1, 1, -1)
        out[nk] = v.clone()
    return out


def decoder(c3, dim=16, patch=4):
    """A small dense FCMAE decoder (mask token, proj, one V2 block, pred) as models/fcmae.py names it."""
    g = torch.Generator().manual_seed(5)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    return {
        "mask_token": r(1, dim, 1, 1),
        "proj.weight": r(dim, c3, 1, 1),
        "proj.bias": r(dim),
        "decoder.0.dwconv.weight": r(dim, 1, 7, 7),
        "decoder.0.dwconv.bias": r(dim),
        "decoder.0.norm.weight": r(dim),
        "decoder.0.norm.bias": r(dim),
        "decoder.0.pwconv1.weight": r(4 * dim, dim),
        "decoder.0.pwconv1.bias": r(4 * dim),
        "decoder.0.grn.gamma": r(1, 1, 1, 4 * dim),
        "decoder.0.grn.beta": r(1, 1, 1, 4 * dim),
        "decoder.0.pwconv2.weight": r(dim, 4 * dim),
        "decoder.0.pwconv2.bias": r(dim),
        "pred.weight": r(patch * patch * 3, dim, 1, 1),
        "pred.bias": r(patch * patch * 3),
    }


def official_to_minkowski(official):
    """The dense encoder -> what the official sparse pre-training saves: ``encoder.`` prefix, kernels (k*k, in, out)
    or (k*k, C), ``ln``/``linear`` wrappers, (1, C) biases and GRN; the inverse of utils.remap_checkpoint_keys."""
    out = {}
    for k, v in official.items():
        if k.startswith(("norm.", "head.")):
            continue  # the sparse encoder has no final norm or head
        if k.startswith("downsample_layers.0."):  # dense stem
            out["encoder." + k] = v
            continue
        parts = k.split(".")
        leaf = parts[-1]
        if re.match(r"downsample_layers\.\d\.0\.", k) or re.match(r"stages\.\d+\.\d+\.norm\.", k):
            out["encoder." + ".".join(parts[:-1] + ["ln", leaf])] = v
        elif ".pwconv" in k:
            out["encoder." + ".".join(parts[:-1] + ["linear", leaf])] = v
        elif ".grn." in k:
            out["encoder." + k] = v.reshape(1, -1)
        elif leaf == "weight":  # 2x2 downsampling conv (out, in, 2, 2) or depthwise 7x7 (C, 1, 7, 7)
            o, i, kh, kw = v.shape
            if ".dwconv." in k:
                kernel = v[:, 0].permute(2, 1, 0).reshape(kh * kw, o)
            else:
                kernel = v.permute(3, 2, 1, 0).reshape(kh * kw, i, o)
            out["encoder." + ".".join(parts[:-1] + ["kernel"])] = kernel.contiguous()
        else:  # conv biases
            out["encoder." + k] = v.reshape(1, -1)
    return out


def official_to_hf(official, prefix="convnextv2"):
    """Official dense names -> transformers' ConvNextV2ForImageClassification (V1's ConvNextForImageClassification
    with ``prefix="convnext"``: the same names, layer scale as ``layer_scale_parameter``)."""
    out = {}
    for k, v in official.items():
        if k.startswith("downsample_layers.0.0."):
            nk = f"{prefix}.embeddings.patch_embeddings." + k.split(".")[-1]
        elif k.startswith("downsample_layers.0.1."):
            nk = f"{prefix}.embeddings.layernorm." + k.split(".")[-1]
        elif k.startswith("downsample_layers."):
            _, i, j, leaf = k.split(".")
            nk = f"{prefix}.encoder.stages.{i}.downsampling_layer.{j}.{leaf}"
        elif k.startswith("stages."):
            _, i, j, rest = k.split(".", 3)
            rest = {"norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}.get(rest, rest)
            rest = rest.replace("grn.gamma", "grn.weight").replace("grn.beta", "grn.bias")
            rest = "layer_scale_parameter" if rest == "gamma" else rest
            nk = f"{prefix}.encoder.stages.{i}.layers.{j}.{rest}"
        elif k.startswith("norm."):
            nk = f"{prefix}.layernorm." + k.split(".")[-1]
        else:
            nk = "classifier." + k.split(".")[-1]
        out[nk] = v
    return out
