"""The shipped ConvNeXt V2 configs: each names an official zoo entry of its arch, evaluates it with the official
transforms, carries the official recipe where one is published, builds the exact model, and fine-tuning from the
FCMAE weights leaves the head at the official re-init (std 2e-5, bias 0)."""

import glob
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.backbones import build_backbone
from passl.utils.config import get_config
from passl.weights import ZOO, load_pretrained
from tests.modeling.test_convnext_v2 import OFFICIAL

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "convnext_v2", "*.yaml")))

# Official fine-tuning recipes from FCMAE weights (ConvNeXt-V2 TRAINING.md; lr = blr x 1024 / 256):
# epochs, warmup, lr, layer decay type, layer decay, weight decay, drop path, mixup/cutmix, smoothing.
RECIPES = {
    "atto": (600, 0.0, 8e-4, "single", 0.9, 0.3, 0.1, None, 0.2),
    "tiny": (300, 40.0, 3.2e-3, "single", 0.9, 0.05, 0.2, (0.8, 1.0), 0.1),
    "base": (100, 20.0, 2.5e-3, "group", 0.6, 0.05, 0.1, (0.8, 1.0), 0.1),
}


def _name(path):
    return os.path.basename(path)[: -len(".yaml")]


def test_every_v2_zoo_entry_has_a_config():
    cfgs = [get_config(p) for p in CONFIGS]
    pretrained = {c.model.pretrained for c in cfgs}
    v2 = {n: w for n, w in ZOO.items() if w.family == "ConvNeXtV2"}
    assert len(v2) == 26 and {w.licence for w in v2.values()} == {"CC-BY-NC-4.0"}
    for name, w in v2.items():
        if name.endswith(("_fcmae", "_22k_224_ema", "_22k_384_ema", "_22k_512_ema")):
            assert name in pretrained, name  # the fine-tune configs start from the FCMAE ones; eval configs
        else:  # the 1K fine-tuned EMA weights: evaluated with their arch's fine-tune config (--weights NAME)
            assert os.path.join(ROOT, "configs", "convnext_v2", f"convnextv2_{w.arch}.yaml") in CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_config_names_an_entry_of_its_arch_with_the_official_eval(path):
    cfg = get_config(path)
    arch = cfg.model.architecture
    assert arch.name == "ConvNeXtV2" and cfg.model.head.in_channels == OFFICIAL_DIMS[arch.arch]
    w = ZOO[cfg.model.pretrained]
    assert w.family == "ConvNeXtV2" and w.arch == arch.arch
    crop = [t for t in cfg.data.val.transforms if t.name == "ResizeCrop"][0]
    res = w.resolution
    assert crop.size == res and crop.crop_pct == w.crop_pct and crop.interpolation == "bicubic"
    if w.num_classes == 0:  # fine-tuning from FCMAE: the head is re-initialised (official), never loaded
        assert cfg.model.drop_head is True and cfg.model.head.head_init_scale == 0.001
    else:
        assert cfg.model.drop_head is False and w.num_classes == cfg.model.head.num_classes


OFFICIAL_DIMS = {"atto": 320, "femto": 384, "pico": 512, "nano": 640, "tiny": 768, "base": 1024}
OFFICIAL_DIMS.update(large=1536, huge=2816)


@pytest.mark.parametrize("arch", list(RECIPES))
def test_official_recipes(arch):
    cfg = get_config(os.path.join(ROOT, "configs", "convnext_v2", f"convnextv2_{arch}.yaml"))
    epochs, warmup, lr, ld_type, ld, wd, dp, mix, smoothing = RECIPES[arch]
    o = cfg.optimizer
    assert (cfg.train.epochs, cfg.lr_scheduler.warmup_epochs, o.lr) == (epochs, warmup, pytest.approx(lr))
    assert (o.layer_decay_type, o.layer_decay, o.weight_decay) == (ld_type, ld, wd)
    assert cfg.model.architecture.drop_path_rate == dp
    assert cfg.data.train.batch_size * cfg.train.accum_steps * 8 == 1024  # 8 GPUs, effective batch 1024
    assert cfg.train.ema.enable and cfg.train.ema.decay == 0.9999 and cfg.lr_scheduler.min_lr == 1e-6
    if mix is None:
        assert cfg.data.mixup is None
        assert cfg.model.loss.name == "CrossEntropyLoss" and cfg.model.loss.label_smoothing == smoothing
    else:
        assert (cfg.data.mixup.mixup_alpha, cfg.data.mixup.cutmix_alpha) == mix
        assert cfg.model.loss.name == "SoftTargetCrossEntropy" and cfg.data.mixup.label_smoothing == smoothing
    erase = [t for t in cfg.data.train.transforms if t.name == "RandomErasing"][0]
    assert erase.prob == 0.25


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_config_builds_the_exact_model(path):
    cfg = get_config(path)
    with paddle.LazyGuard():  # shapes only: huge has 660M parameters
        bb = build_backbone(cfg.model.architecture)
    params = sum(int(p.size) for p in bb.parameters()) + (bb.num_features + 1) * cfg.model.head.num_classes
    assert params == OFFICIAL[cfg.model.architecture.arch][0]


def test_finetuning_from_fcmae_reinitialises_the_head(tmp_path):
    cfg = get_config(os.path.join(ROOT, "configs", "convnext_v2", "convnextv2_atto.yaml"))
    src = build_model(cfg.model)
    sd = src.state_dict()
    encoder = {k: v for k, v in sd.items() if k.startswith("backbone.") and not k.startswith("backbone.norm.")}
    path = str(tmp_path / "fcmae.pdparams")
    paddle.save(encoder, path)
    paddle.seed(1)
    model = build_model(cfg.model)
    report = load_pretrained(model, path, drop_head=cfg.model.drop_head)
    assert sorted(report.left_at_init) == [
        "backbone.norm.bias",
        "backbone.norm.weight",
        "head.fc.bias",
        "head.fc.weight",
    ]
    w = model.head.fc.weight.numpy()
    assert abs(w.std() - 2e-5) < 1e-6 and abs(w.mean()) < 1e-6 and not model.head.fc.bias.numpy().any()
    np.testing.assert_array_equal(model.backbone.norm.weight.numpy(), 1.0)


def test_model_info_prints_the_official_count(repo_root):
    res = subprocess.run(
        [sys.executable, "tools/model_info.py", "-c", "configs/convnext_v2/convnextv2_atto.yaml"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "params: 3,708,400" in res.stdout and "MACs@224: 0.547 G" in res.stdout


def test_v2_zoo_urls_and_published_top1():
    """The official README's table: FCMAE -> 1K top-1 per arch, 22K -> 1K top-1 per arch and resolution."""
    base = "https://dl.fbaipublicfiles.com/convnext/convnextv2/"
    ft = {"atto": 76.7, "femto": 78.5, "pico": 80.3, "nano": 81.9, "tiny": 83.0, "base": 84.9}
    ft.update(large=85.8, huge=86.3)
    t22 = {"nano": {224: 82.1, 384: 83.4}, "tiny": {224: 83.9, 384: 85.1}, "base": {224: 86.8, 384: 87.7}}
    t22.update(large={224: 87.3, 384: 88.2}, huge={384: 88.7, 512: 88.9})
    for arch, top1 in ft.items():
        fcmae, ema = ZOO[f"convnextv2_{arch}_1k_224_fcmae"], ZOO[f"convnextv2_{arch}_1k_224_ema"]
        assert fcmae.url == f"{base}pt_only/convnextv2_{arch}_1k_224_fcmae.pt" and fcmae.num_classes == 0
        assert ema.url == f"{base}im1k/convnextv2_{arch}_1k_224_ema.pt" and ema.top1 == top1
    for arch, by_res in t22.items():
        for res, top1 in by_res.items():
            w = ZOO[f"convnextv2_{arch}_22k_{res}_ema"]
            assert w.url == f"{base}im22k/convnextv2_{arch}_22k_{res}_ema.pt" and (w.top1, w.resolution) == (top1, res)
            assert (w.crop_mode, w.crop_pct) == (("squash", 1.0) if res >= 384 else ("center", 0.875))
