"""ConvNeXt V2: random timm ``convnextv2_*`` weights written in every layout users have -- official dense ``.pt``,
official FCMAE encoder-only ``.pt``, the Minkowski layout of the official pre-training code, timm ``.pth`` and
``.safetensors``, Hugging Face ``.safetensors`` and ``.bin`` -- load through ``load_pretrained`` and give timm's
logits within 1e-4, for all eight archs.

The layouts are written here from the timm state dict by this file's own key tables (not the library's), following
the official repository (models/convnextv2.py, utils.remap_checkpoint_keys) and transformers' ConvNextV2 names.
base, large and huge keep their depths (every key name) with narrower widths so the files stay small; the full
widths are checked by ``test_full_width_archs_match_timm`` below without files.
"""

import argparse
import re

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.backbones.convnext_v2 import CONVNEXT_V2_ARCHS
from passl.weights import WeightsError, load_pretrained, to_passl
from tests.weights.v2_layouts import decoder, official_to_hf, official_to_minkowski, randomize, timm_to_official

torch = pytest.importorskip("torch", reason="torch is a test-only reference (pip install -r requirements-dev.txt)")
timm = pytest.importorskip("timm", reason="timm is a test-only reference (pip install -r requirements-dev.txt)")

ARCHS = list(CONVNEXT_V2_ARCHS)
NARROW = {"base": (16, 32, 64, 128), "large": (24, 48, 96, 192), "huge": (32, 64, 128, 256)}
FORMATS = [
    "official_pt",
    "fcmae_pt",
    "fcmae_minkowski_pt",
    "timm_pth",
    "timm_safetensors",
    "hf_safetensors",
    "hf_bin",
]
NUM_CLASSES = 7


def our_model(arch, num_classes=NUM_CLASSES):
    dims = NARROW.get(arch, CONVNEXT_V2_ARCHS[arch][1])
    return build_model(
        {
            "architecture": {"name": "ConvNeXtV2", "arch": arch, "dims": list(dims)},
            "head": {"name": "ConvNeXtClsHead", "in_channels": dims[-1], "num_classes": num_classes},
        }
    )


@pytest.fixture(scope="module", params=ARCHS)
def reference(request, tmp_path_factory):
    arch = request.param
    torch.manual_seed(0)
    kwargs = {"dims": NARROW[arch]} if arch in NARROW else {}
    ref = timm.create_model(f"convnextv2_{arch}", pretrained=False, num_classes=NUM_CLASSES, **kwargs).eval()
    randomize(ref)
    size = 64 if arch in ("atto", "femto", "pico", "nano") else 32
    x = np.random.RandomState(1).randn(2, 3, size, size).astype("float32")
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
        features = ref.forward_head(ref.forward_features(torch.from_numpy(x)), pre_logits=True).numpy()
    sd = ref.state_dict()
    official = timm_to_official(sd)
    encoder = {k: v for k, v in official.items() if not k.startswith(("norm.", "head."))}
    c3 = official["norm.weight"].shape[0]
    folder = tmp_path_factory.mktemp(arch)
    files = {f: folder / name for f, name in zip(FORMATS, ["a_ema.pt", "a_fcmae.pt", "mink.pth", "t.pth"])}
    files.update(
        timm_safetensors=folder / "t.safetensors",
        hf_safetensors=folder / "model.safetensors",
        hf_bin=folder / "pytorch_model.bin",
    )
    torch.save({"model": official, "epoch": 99}, files["official_pt"])
    torch.save({"model": {**encoder, **decoder(c3)}}, files["fcmae_pt"])
    args = argparse.Namespace(model=f"convnextv2_{arch}", mask_ratio=0.6)
    mink = {**official_to_minkowski(official), **decoder(c3)}
    torch.save({"model": mink, "epoch": 1599, "args": args}, files["fcmae_minkowski_pt"])
    torch.save(sd, files["timm_pth"])
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(files["timm_safetensors"]))
    hf = official_to_hf(official)
    save_file({k: v.contiguous() for k, v in hf.items()}, str(files["hf_safetensors"]))
    torch.save(hf, files["hf_bin"])
    head = {k: v.numpy() for k, v in official.items() if k.startswith(("norm.", "head."))}
    del ref, sd, official, encoder, mink, hf
    return arch, x, expected, features, head, files


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_timm_logits(reference, fmt):
    arch, x, expected, features, head, files = reference
    model = our_model(arch)
    report = load_pretrained(model, str(files[fmt]))
    n = len(model.state_dict())
    fcmae = fmt.startswith("fcmae")
    if fcmae:
        # Encoder only: the final norm and the classifier stay at init and the report says so; the FCMAE decoder
        # tensors are named as unexpected.
        assert sorted(report.left_at_init) == [
            "backbone.norm.bias",
            "backbone.norm.weight",
            "head.fc.bias",
            "head.fc.weight",
        ]
        assert "encoder-only FCMAE weights: left at init" in report.summary()
        assert sorted(report.unexpected) and all(
            k.startswith(("mask_token", "proj.", "decoder.", "pred.")) for k in report.unexpected
        )
        assert len(report.unexpected) == 15 and len(report.loaded) == n - 4 and not report.missing
        # Put the reference's final norm and head in (as fine-tuning would learn them): then logits must agree.
        model.backbone.norm.weight.set_value(paddle.to_tensor(head["norm.weight"]))
        model.backbone.norm.bias.set_value(paddle.to_tensor(head["norm.bias"]))
        model.head.fc.weight.set_value(paddle.to_tensor(head["head.weight"].T.copy()))
        model.head.fc.bias.set_value(paddle.to_tensor(head["head.bias"]))
    else:
        assert not report.missing and not report.unexpected and not report.left_at_init
        assert len(report.loaded) == n
    model.eval()
    with paddle.no_grad():
        got = model(paddle.to_tensor(x)).numpy()
        pooled = model.backbone(paddle.to_tensor(x)).numpy()
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(pooled, features, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    print(f"{arch} {fmt}: max |logit diff| {np.abs(got - expected).max():.2e}")


@pytest.mark.parametrize("arch", ["base", "large"])
def test_full_width_archs_match_timm(arch):
    """base and large at their real widths (huge: 660M parameters, too large for CI memory; its key names and
    depths are covered above at reduced width), weights handed over in memory through the timm remap."""
    torch.manual_seed(0)
    ref = timm.create_model(f"convnextv2_{arch}", pretrained=False, num_classes=NUM_CLASSES).eval()
    randomize(ref)
    x = np.random.RandomState(2).randn(1, 3, 32, 32).astype("float32")
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    sd = to_passl({k: v.numpy() for k, v in ref.state_dict().items()}, torch_layout=True)
    del ref
    dims = CONVNEXT_V2_ARCHS[arch][1]
    model = build_model(
        {
            "architecture": {"name": "ConvNeXtV2", "arch": arch},
            "head": {"name": "ConvNeXtClsHead", "in_channels": dims[-1], "num_classes": NUM_CLASSES},
        }
    )
    own = model.state_dict()
    assert set(sd) == set(own)
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in sd.items()})
    del sd
    model.eval()
    with paddle.no_grad():
        got = model(paddle.to_tensor(x)).numpy()
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    print(f"{arch} full width: max |logit diff| {np.abs(got - expected).max():.2e}")


def test_v1_and_v2_weights_do_not_mix(tmp_path):
    """Loading V2 weights into a V1 model (or V1 weights into V2) fails naming the generation to build."""
    v2 = our_model("atto")
    v1 = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": "atto"},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": NUM_CLASSES},
        }
    )
    for src, dst, name in ((v2, v1, "ConvNeXtV2"), (v1, v2, "ConvNeXt)")):
        path = str(tmp_path / f"{name}.pdparams")
        paddle.save(src.state_dict(), path)
        with pytest.raises(WeightsError, match=re.escape(f"build the model with model.architecture.name: {name}")):
            load_pretrained(dst, path)


def test_a_minkowski_kernel_that_is_not_square_is_a_clear_error():
    sd = {"encoder.downsample_layers.1.1.kernel": np.zeros((5, 2, 3), "float32")}
    with pytest.raises(WeightsError, match=r"'encoder.downsample_layers.1.1.kernel' has shape \[5, 2, 3\]"):
        to_passl(sd, torch_layout=True)
