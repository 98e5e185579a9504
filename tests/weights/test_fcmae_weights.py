"""FCMAE weights: the official encoder-only ``*_fcmae.pt`` (dense layout) and a checkpoint of the official sparse
pre-training (Minkowski layout, with the decoder) load into our FCMAE; our own FCMAE checkpoint loads into a V2
classifier for fine-tuning. The files are written here with torch.save from our model's own random weights."""

import numpy as np
import paddle
import pytest

from passl.engine.checkpoint import save_atomic
from passl.modeling import build_model
from passl.weights import load_pretrained
from tests.weights.v2_layouts import official_to_minkowski

torch = pytest.importorskip("torch", reason="torch is a test-only reference (pip install -r requirements-dev.txt)")

ENCODER = {"name": "ConvNeXtV2", "depths": [1, 1, 2, 1], "dims": [8, 12, 16, 24]}
DECODER = ("mask_token", "proj.", "decoder.", "pred.")


def fcmae(seed=None):
    if seed is not None:
        paddle.seed(seed)
    model = build_model({"name": "FCMAE", "architecture": dict(ENCODER), "decoder_embed_dim": 16, "decoder_depth": 1})
    if seed is not None:  # every tensor random (GRN, norms and biases start at 0 or 1)
        rng = np.random.RandomState(seed)
        for _, p in model.named_parameters():
            p.set_value(paddle.to_tensor((0.3 * rng.randn(*p.shape)).astype("float32")))
    return model


def to_torch_official(state):
    """Our FCMAE state dict -> the official dense names and PyTorch shapes (``encoder.`` stripped for the encoder):
    Linear weights [in, out] -> [out, in], GRN [4C] -> (1, 1, 1, 4C)."""
    out = {}
    for k, v in state.items():
        a = v.numpy()
        if k.endswith(("pwconv1.weight", "pwconv2.weight")):
            a = a.T
        if ".grn." in k:
            a = a.reshape(1, 1, 1, -1)
        out[k[len("encoder.") :] if k.startswith("encoder.") else k] = torch.from_numpy(np.ascontiguousarray(a))
    return out


def assert_same(model, source, keys):
    own, src = model.state_dict(), source.state_dict()
    for k in keys:
        np.testing.assert_array_equal(own[k].numpy(), src[k].numpy(), err_msg=k)


def test_minkowski_checkpoint_loads_fully_with_the_decoder(tmp_path):
    source = fcmae(seed=1)
    official = to_torch_official(source.state_dict())
    encoder = {k: v for k, v in official.items() if not k.startswith(DECODER)}
    decoder = {k: v for k, v in official.items() if k.startswith(DECODER)}
    mink = {**official_to_minkowski(encoder), **decoder}
    assert any(k.endswith(".kernel") for k in mink) and any(".ln." in k for k in mink)
    path = tmp_path / "checkpoint-1599.pth"
    torch.save({"model": mink, "epoch": 1599}, path)

    model = fcmae(seed=None)
    report = load_pretrained(model, str(path))
    print(report.summary())
    assert report.format == "fcmae_minkowski"
    assert not report.missing and not report.unexpected and not report.left_at_init
    assert len(report.loaded) == len(model.state_dict())
    assert_same(model, source, model.state_dict())
    size = 64
    imgs = paddle.randn([2, 3, size, size])
    mask = source.random_mask(2, 2, 2)
    with paddle.no_grad():
        assert float(model(imgs, mask=mask)) == float(source(imgs, mask=mask))


def test_official_dense_fcmae_pt_loads_the_encoder_and_leaves_the_decoder_at_init(tmp_path):
    source = fcmae(seed=2)
    official = to_torch_official(source.state_dict())
    encoder = {k: v for k, v in official.items() if not k.startswith(DECODER)}  # the released pt_only files
    path = tmp_path / "convnextv2_x_1k_224_fcmae.pt"
    torch.save({"model": encoder}, path)

    model = fcmae(seed=None)
    init = {k: v.numpy().copy() for k, v in model.state_dict().items() if k.startswith(DECODER)}
    report = load_pretrained(model, str(path))
    summary = report.summary()
    print(summary)
    assert report.format == "official" and not report.missing and not report.unexpected
    assert sorted(report.left_at_init) == sorted(init) and len(init) == 15
    assert "encoder-only weights: the FCMAE decoder is left at init (pre-training trains it) 15" in summary
    assert_same(model, source, [k for k in model.state_dict() if k.startswith("encoder.")])
    for k, v in init.items():
        np.testing.assert_array_equal(model.state_dict()[k].numpy(), v, err_msg=k)


@pytest.mark.parametrize("use_ema", [False, True])
def test_our_fcmae_checkpoint_fine_tunes_a_v2_classifier(tmp_path, use_ema):
    source = fcmae(seed=3)
    ema = fcmae(seed=4)
    path = str(tmp_path / "last.pdparams")
    # the layout the trainer writes (Trainer.checkpoint_dict): model / ema state dicts plus the training state
    save_atomic(
        {
            "model": source.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": {},
            "epoch": 3,
            "step": 30,
            "step_in_epoch": 0,
        },
        path,
    )
    clf = build_model(
        {"architecture": dict(ENCODER), "head": {"name": "ConvNeXtClsHead", "in_channels": 24, "num_classes": 5}}
    )
    report = load_pretrained(clf, path, use_ema=use_ema)
    summary = report.summary()
    print(summary)
    assert report.format == "passl_fcmae" and not report.missing
    assert sorted(report.left_at_init) == [
        "backbone.norm.bias",
        "backbone.norm.weight",
        "head.fc.bias",
        "head.fc.weight",
    ]
    assert "encoder-only FCMAE weights: left at init (fine-tune them) 4" in summary
    assert sorted(report.unexpected) == sorted(k for k in source.state_dict() if k.startswith(DECODER))
    src = (ema if use_ema else source).state_dict()
    own = clf.state_dict()
    for k, v in src.items():
        if k.startswith("encoder."):
            np.testing.assert_array_equal(own["backbone." + k[len("encoder.") :]].numpy(), v.numpy(), err_msg=k)
    imgs = paddle.randn([2, 3, 64, 64])
    with paddle.no_grad():
        a = clf.backbone.forward_features(imgs).numpy()
        b = (ema if use_ema else source).encoder.forward_features(imgs).numpy()
    np.testing.assert_array_equal(a, b)
