"""passl.create_model / list_models / create_transform: the same registries, zoo and preprocessing as the configs."""

import os

import numpy as np
import paddle
import pytest
from PIL import Image

import passl
from passl.api import _resolve, transform_config
from passl.modeling import build_model
from passl.registry import ConfigError
from passl.utils.config import get_config, to_dict
from passl.weights.zoo import ZOO

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMALL = dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64])


def test_list_models_and_weights():
    names = passl.list_models()
    assert "convnext_tiny" in names and "convnext_xlarge" in names and names == sorted(names)
    assert passl.list_models("convnext_t*") == ["convnext_tiny"]
    assert passl.list_models(pretrained=True) == sorted(ZOO)
    assert all("384" in n for n in passl.list_models("*384*", pretrained=True))


def test_create_model_matches_the_config_model():
    ours = passl.create_model("convnext_tiny")
    cfg = build_model(get_config(os.path.join(ROOT, "configs", "convnext", "convnext_tiny.yaml")).model)
    a, b = ours.state_dict(), cfg.state_dict()
    assert {k: list(v.shape) for k, v in a.items()} == {k: list(v.shape) for k, v in b.items()}


def test_pretrained_file_with_new_class_count_keeps_backbone_and_reinitialises_head(tmp_path):
    src = passl.create_model("convnext_atto", **SMALL)
    path = str(tmp_path / "w.pdparams")
    paddle.save(src.state_dict(), path)
    same = passl.create_model("convnext_atto", pretrained=path, **SMALL)
    assert np.array_equal(same.head.fc.weight.numpy(), src.head.fc.weight.numpy())
    assert same.class_names is not None and len(same.class_names) == 1000  # ImageNet-1k head: readable names
    five = passl.create_model("convnext_atto", pretrained=path, num_classes=5, **SMALL)
    assert five.num_classes == 5 and five.class_names is None
    for k, v in src.state_dict().items():
        if k.startswith("backbone."):
            assert np.array_equal(five.state_dict()[k].numpy(), v.numpy()), k
    x = paddle.randn([2, 3, 32, 32])
    assert five(x).shape == [2, 5]


def test_names_resolve_to_zoo_weights_and_errors_are_clear():
    assert _resolve("convnext_base_22k_1k_384", True)[:2] == ("ConvNeXt", "base")
    backbone, arch, weight = _resolve("convnext_small", True)
    assert ZOO[weight].arch == "small" and ZOO[weight].num_classes == 1000 and ZOO[weight].resolution == 224
    with pytest.raises(ConfigError, match="did you mean 'convnext_tiny'"):
        passl.create_model("convnxt_tiny")
    with pytest.raises(ConfigError, match="unknown argument 'dropout'"):
        passl.create_model("convnext_atto", dropout=0.1)


@pytest.mark.parametrize(
    "weight, config",
    [("convnext_tiny_1k_224_ema", "convnext_tiny.yaml"), ("convnext_base_22k_1k_384", "convnext_base_22k_1k_384.yaml")],
)
def test_create_transform_is_the_configs_eval_preprocessing(weight, config):
    cfg = get_config(os.path.join(ROOT, "configs", "convnext", config))
    want = [{k: v for k, v in op.items()} for op in to_dict(cfg.data.val.transforms)]
    got = transform_config(weight)
    assert [w["name"] for w in want] == [g["name"] for g in got]
    for w, g in zip(want, got):
        if w["name"] == "ResizeCrop":  # the config's crop_mode "auto" is the weight's own mode
            assert g["size"] == w["size"] and g["crop_pct"] == w["crop_pct"]
        else:
            assert w == g
    img = Image.fromarray(np.random.RandomState(0).randint(0, 255, (300, 500, 3), dtype=np.uint8))
    out = passl.create_transform(weight)(img)
    side = ZOO[weight].resolution
    assert out.shape == (3, side, side) and out.dtype == np.float32
