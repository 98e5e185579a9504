"""FCMAE pre-training runs through the one Trainer: it resumes exactly after a real SIGTERM on Fashion-MNIST, logs
its loss to VisualDL, draws reconstruction PNGs without touching the training's random streams, refuses the keys of
a classifier, and its checkpoint starts a V2 classifier's fine-tuning."""

import os
import signal
import subprocess
import sys

import numpy as np
import paddle
import pytest
from PIL import Image

from passl.engine.hooks import Hook, default_hooks
from passl.engine.trainer import Trainer, TrainingInterrupted
from passl.engine.visualize import GREY, normalize_stats, reconstruction_grid
from passl.registry import ConfigError
from passl.utils.config import AttrDict, get_config
from passl.utils.schema import EVAL_ONLY_KEYS, refuse_pretraining_config, validate_config
from tests.engine.helpers import ROOT
from tests.engine.test_amp import pretend_accelerator  # noqa: F401 (fixture)
from tests.engine.test_distributed import _env, _free_port

FMNIST = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def fcmae_cfg(out, fashion=True, **train):
    """configs/fcmae/convnextv2_atto.yaml shrunk: a 3-stage V2 (stem patch 1: stride 4, a 7x7 mask grid on 28x28)."""
    cfg = get_config(os.path.join(ROOT, "configs/fcmae/convnextv2_atto.yaml"))
    cfg.output_dir = str(out)
    cfg.model.architecture = AttrDict(name="ConvNeXtV2", depths=[1, 1, 1], dims=[8, 16, 32], in_chans=1, patch_size=1)
    cfg.model.decoder_embed_dim = 16
    if fashion:
        cfg.data.train.dataset = AttrDict(name="FashionMNIST", root=FMNIST, split="train")
        cfg.data.train.transforms = [
            {"name": "RandomHorizontalFlip", "prob": 0.5},
            {"name": "Normalize", "mean": [MEAN], "std": [STD]},
        ]
    else:
        cfg.data.train.dataset = AttrDict(name="SyntheticImages", num_samples=16, image_size=28, channels=1)
        cfg.data.train.transforms = [{"name": "Normalize", "mean": [MEAN], "std": [STD]}]
    cfg.data.train.batch_size = 8
    cfg.data.train.num_workers = 0
    cfg.optimizer.lr = 1e-3
    cfg.lr_scheduler.warmup_epochs = 0.0
    cfg.train.epochs = 2
    cfg.train.accum_steps = 1
    cfg.train.log_interval = 1
    cfg.train.visualdl = False
    cfg.train.recon_png = None
    for k, v in train.items():
        cfg.train[k] = v
    return cfg


def _weights(t):
    return {k: v.numpy() for k, v in t.model_without_ddp.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


class _SignalAt(Hook):
    def __init__(self, step, sig):
        self.step, self.sig = step, sig

    def after_step(self, trainer):
        if trainer.state["step"] == self.step:
            os.kill(os.getpid(), self.sig)


def _vdl_losses(out):
    from visualdl import LogReader

    reader = LogReader(file_path=str(out / "vdl" / "vdlrecords.passl.log"))
    return [(r.id, round(r.value, 6)) for r in reader.get_data("scalar", "train/loss")]


def test_fashion_mnist_pretraining_resumes_exactly_after_sigterm(tmp_path):
    full = Trainer(fcmae_cfg(tmp_path / "full", max_steps=6, visualdl=True))
    full.train()
    assert full.state["step"] == 6

    cfg = fcmae_cfg(tmp_path / "split", max_steps=6, visualdl=True)
    t = Trainer(cfg, hooks=[*default_hooks(dict(cfg.train)), _SignalAt(2, signal.SIGTERM)])
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM after step 3"):
        t.train()
    resumed = Trainer(fcmae_cfg(tmp_path / "split", max_steps=6, visualdl=True))
    assert resumed.state["step"] == 3
    resumed.train()
    # Same masks (Paddle's generator is in the checkpoint), same data order, same weights and optimizer moments.
    _assert_same(_weights(full), _weights(resumed))
    losses = _vdl_losses(tmp_path / "full")
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5, 6] and all(np.isfinite(v) for _, v in losses)
    assert _vdl_losses(tmp_path / "split") == losses
    ckpt = paddle.load(str(tmp_path / "split" / "last.pdparams"))
    assert ckpt["classes"] is None  # an encoder pre-trained without labels claims no class list


def test_reconstruction_pngs_do_not_change_the_run(tmp_path):
    plain = Trainer(fcmae_cfg(tmp_path / "plain", fashion=False))
    plain.train()
    drawn = Trainer(fcmae_cfg(tmp_path / "drawn", fashion=False, recon_png={"interval": 1, "num_images": 3}))
    drawn.train()
    _assert_same(_weights(plain), _weights(drawn))  # the pictures draw under their own seed, then restore the RNGs
    for epoch in (1, 2):
        img = Image.open(tmp_path / "drawn" / f"recon_epoch_{epoch}.png")
        img.load()
        # 3 rows of 28x28 cells enlarged 4x with 2-pixel gaps, 3 columns, grayscale
        assert img.size == (3 * (112 + 2) + 2, 3 * 112 + 4 * 2) and img.mode == "L"
    assert not [n for n in os.listdir(tmp_path / "plain") if n.endswith(".png")]


def test_reconstruction_grid_rows():
    rng = np.random.RandomState(0)
    images = rng.randn(2, 1, 4, 4).astype(np.float32)
    pred = rng.randn(2, 1, 4, 4).astype(np.float32)
    mask = np.zeros((2, 1, 4, 4), np.float32)
    mask[:, :, :2, :2] = 1  # the top-left 2x2 patch is masked
    mean, std = normalize_stats([{"name": "Normalize", "mean": [MEAN], "std": [STD]}])
    g = reconstruction_grid(images, mask, pred, mean, std)[..., 0]
    scale, gap = 112 // 4, 2

    def cell(row, col):
        y, x = gap + row * (4 * scale + gap), gap + col * (4 * scale + gap)
        return g[y : y + 4 * scale : scale, x : x + 4 * scale : scale].astype(int)

    def pix(a):
        return np.round(np.clip(a * STD + MEAN, 0, 1) * 255).astype(int)

    for i in range(2):
        np.testing.assert_array_equal(cell(0, i), pix(images[i, 0]))
        masked, recon = cell(1, i), cell(2, i)
        assert (masked[:2, :2] == round(GREY * 255)).all()
        np.testing.assert_array_equal(masked[2:], pix(images[i, 0])[2:])
        np.testing.assert_array_equal(recon[:2, :2], pix(pred[i, 0])[:2, :2])  # the prediction where masked
        np.testing.assert_array_equal(recon[2:], pix(images[i, 0])[2:])  # the original where visible


@pytest.mark.parametrize("key", EVAL_ONLY_KEYS)
def test_pretraining_config_refuses_classifier_keys(tmp_path, key):
    cfg = fcmae_cfg(tmp_path, fashion=False)
    validate_config(cfg)
    value = {
        "data.val": {"dataset": {"name": "SyntheticImages"}, "batch_size": 4},
        "data.mixup": {"mixup_alpha": 0.8},
        "train.eval_interval": 1,
        "export": {"image_size": 28},
    }[key]
    section, name = key.rsplit(".", 1) if "." in key else (None, key)
    (cfg[section] if section else cfg)[name] = value
    with pytest.raises(ConfigError, match=rf"'{key}' is for training or evaluating a classifier.*FCMAE"):
        validate_config(cfg)


def test_recon_png_refused_on_a_classifier_and_tools_refuse_pretraining_configs(tmp_path):
    cls = get_config(os.path.join(ROOT, "configs/demo/fashion_mnist_convnext.yaml"))
    cls.train.recon_png = {"interval": 1}
    with pytest.raises(ConfigError, match="train.recon_png.*does not reconstruct"):
        validate_config(cls)
    for tool in ("eval.py", "export_model.py", "predict.py"):
        with pytest.raises(ConfigError, match=f"{tool}: this is a pre-training config .*model.pretrained="):
            refuse_pretraining_config(fcmae_cfg(tmp_path, fashion=False), tool)


def test_eval_tool_refuses_a_pretraining_config(tmp_path, capsys):
    import sys

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import eval as eval_tool
    finally:
        sys.path.pop(0)
    rc = eval_tool.main(["-c", os.path.join(ROOT, "configs/fcmae/convnextv2_tiny.yaml")])
    assert rc != 0
    assert "this is a pre-training config (model.name FCMAE)" in capsys.readouterr().err


def test_pretrained_encoder_starts_a_v2_classifier(tmp_path):
    pre = Trainer(fcmae_cfg(tmp_path / "pre", fashion=False, epochs=1))
    pre.train()
    enc = {
        k[len("encoder.") :]: v.numpy()
        for k, v in pre.model_without_ddp.state_dict().items()
        if k.startswith("encoder.")
    }

    cfg = get_config(os.path.join(ROOT, "configs/convnext_v2/convnextv2_atto.yaml"))
    cfg.output_dir = str(tmp_path / "ft")
    cfg.model.architecture = AttrDict(name="ConvNeXtV2", depths=[1, 1, 1], dims=[8, 16, 32], in_chans=1, patch_size=1)
    cfg.model.head.in_channels = 32
    cfg.model.head.num_classes = 10
    cfg.model.pretrained = str(tmp_path / "pre" / "last.pdparams")
    cfg.data.train.dataset = AttrDict(name="SyntheticImages", num_samples=8, image_size=28, channels=1, num_classes=10)
    cfg.data.train.transforms = [{"name": "Normalize", "mean": [MEAN], "std": [STD]}]
    cfg.data.train.batch_size = 4
    cfg.data.train.num_workers = 0
    cfg.data.val = None
    cfg.train.accum_steps = 1
    cfg.train.epochs = 1
    cfg.train.ema = {"enable": False}
    cfg.train.visualdl = False
    cfg.lr_scheduler.warmup_epochs = 0.0
    ft = Trainer(cfg)
    got = {k[9:]: v.numpy() for k, v in ft.model_without_ddp.state_dict().items() if k.startswith("backbone.")}
    assert enc and set(enc) <= set(got)
    for k, v in enc.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    ft.train()
    assert ft.state["step"] == 2


@pytest.mark.usefixtures("pretend_accelerator")
@pytest.mark.filterwarnings("ignore:amp_guard can only be enabled", "ignore:AmpScaler can only be enabled")
def test_float16_loss_scaling_gives_the_float32_update(tmp_path):
    """Under AMP O1 with the float16 loss scaler really scaling (an accelerator as far as Paddle's checks see), the
    pre-training update equals the float32 one: the loss leaves forward in float32 and is unscaled before the step."""
    runs = {}
    for name, amp in {"fp32": None, "fp16": {"enable": True, "dtype": "float16", "level": "O1"}}.items():
        cfg = fcmae_cfg(tmp_path / name, fashion=False, epochs=1, max_steps=2)
        cfg.train.amp = amp or {"enable": False}
        t = Trainer(cfg)
        start = _weights(t)
        t.train()
        runs[name] = _weights(t)
        if name == "fp16":
            assert t.scaler.is_enable() and t.scaler._scale.item() == 65536.0
    assert max(np.abs(runs["fp32"][k] - start[k]).max() for k in start) > 1e-5
    for k in start:
        np.testing.assert_allclose(runs["fp16"][k], runs["fp32"][k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_two_processes_pretrain_in_step(tmp_path):
    """Two gloo processes through DataParallel: every parameter gets a gradient (no unused parameter), the ranks
    draw different masks and end with identical weights that moved from the initial ones."""
    out, logs = tmp_path / "two", tmp_path / "logs"
    out.mkdir()
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2"]
    cmd += ["--master", f"127.0.0.1:{_free_port()}", "--log_dir", str(logs)]
    cmd += [os.path.join(ROOT, "tests", "engine", "_dist_fcmae.py"), str(out)]
    res = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    text = "".join(open(os.path.join(logs, f)).read()[-2000:] for f in os.listdir(logs)) if logs.exists() else ""
    assert res.returncode == 0, text or res.stderr[-3000:]
    r0, r1 = np.load(out / "rank0.npz"), np.load(out / "rank1.npz")
    assert not np.array_equal(r0["mask"], r1["mask"])  # seed + rank: each process masks its own way
    init = Trainer(fcmae_cfg(tmp_path / "init", fashion=False, epochs=1))
    start = _weights(init)
    for k in start:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
    assert all(np.abs(r0[k] - start[k]).max() > 0 for k in start)
