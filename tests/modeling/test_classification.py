"""The Classification architecture: the backbone config under ``architecture`` (origin key) or its alias ``backbone``."""

import os

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.architectures import Classification
from passl.modeling.backbones import build_backbone
from passl.modeling.heads import build_head
from passl.registry import ARCHITECTURES, ConfigError

BACKBONE = {"name": "ConvNeXt", "depths": [1, 1, 2, 1], "dims": [8, 16, 32, 64], "drop_path_rate": 0.2}
HEAD = {"name": "ConvNeXtClsHead", "in_channels": 64, "num_classes": 5}


def _shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_backbone_alias_builds_the_same_model():
    paddle.seed(1)
    a = build_model({"architecture": dict(BACKBONE), "head": dict(HEAD)})
    paddle.seed(2)  # other initial weights: equal outputs below come from the copied weights, not the seed
    b = build_model({"backbone": dict(BACKBONE), "head": dict(HEAD)})
    assert type(a) is type(b) is Classification
    assert _shapes(a) == _shapes(b) and len(_shapes(a)) > 0
    assert [type(m).__name__ for m in a.sublayers()] == [type(m).__name__ for m in b.sublayers()]
    assert a.backbone.depths == b.backbone.depths and a.backbone.dims == b.backbone.dims
    rates = [[getattr(blk.drop_path, "drop_prob", 0.0) for blk in s] for s in a.backbone.stages]
    assert rates == [[getattr(blk.drop_path, "drop_prob", 0.0) for blk in s] for s in b.backbone.stages]
    assert a.num_classes == b.num_classes == 5
    x = paddle.randn([2, 3, 32, 32])
    a.eval()
    b.eval()
    with paddle.no_grad():
        assert not np.array_equal(a(x).numpy(), b(x).numpy())  # different init, so the copy below is what matters
        b.set_state_dict(a.state_dict())
        np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_giving_both_or_neither_is_a_config_error():
    with pytest.raises(ConfigError, match="'architecture' or 'backbone', not both"):
        build_model({"architecture": dict(BACKBONE), "backbone": dict(BACKBONE), "head": dict(HEAD)})
    # not even when they agree: one config key per thing
    with pytest.raises(ConfigError, match="not both"):
        Classification(architecture=dict(BACKBONE), backbone=dict(BACKBONE), head=dict(HEAD))
    with pytest.raises(ConfigError, match="'architecture' key .* is missing"):
        build_model({"head": dict(HEAD)})
    with pytest.raises(ConfigError, match="'head' key is missing"):
        build_model({"backbone": dict(BACKBONE)})


def test_alias_is_checked_like_the_origin_key():
    bad_head = dict(HEAD, in_channels=32)
    for key in ("architecture", "backbone"):
        with pytest.raises(ConfigError, match="in_channels is 32 but the backbone's feature size is 64"):
            build_model({key: dict(BACKBONE), "head": bad_head})
        with pytest.raises(ConfigError, match="ConvNeXt' does not accept the argument\\(s\\) depth\\b"):
            build_model({key: {"name": "ConvNeXt", "depth": [1]}, "head": dict(HEAD)})


def test_build_model_defaults_to_classification():
    assert ARCHITECTURES.get("Classification") is Classification
    m = build_model({"architecture": dict(BACKBONE), "head": dict(HEAD)})
    assert type(m) is Classification
    with pytest.raises(KeyError, match="architecture registry has no 'Clasification'"):
        build_model({"name": "Clasification", "architecture": dict(BACKBONE), "head": dict(HEAD)})


def test_origin_snippet_key_architecture_from_a_config_file(repo_root):
    """``cfg.model.architecture`` of a shipped config builds (as the origin snippet does) the same network as
    ``build_model(cfg.model)``; weights copied between them give the same logits."""
    from passl.utils.config import get_config

    cfg = get_config(os.path.join(repo_root, "configs/demo/fashion_mnist_convnext.yaml"))
    assert "architecture" in cfg.model and "backbone" not in cfg.model
    cfg.model.head.in_channels = 192  # the demo leaves it null (from the backbone); a head built alone needs it
    model = build_model(cfg.model)
    bb, head = build_backbone(cfg.model.architecture), build_head(cfg.model.head)
    assert set(model.state_dict()) == {f"backbone.{k}" for k in bb.state_dict()} | {
        f"head.{k}" for k in head.state_dict()
    }
    bb.set_state_dict({k[len("backbone.") :]: v for k, v in model.state_dict().items() if k.startswith("backbone.")})
    head.set_state_dict({k[len("head.") :]: v for k, v in model.state_dict().items() if k.startswith("head.")})
    for m in (model, bb, head):
        m.eval()
    x = paddle.randn([2, 1, 28, 28])
    with paddle.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), head(bb(x)).numpy())
    # the same section written with the alias gives the same model
    alias = dict(cfg.model)
    alias["backbone"] = alias.pop("architecture")
    assert _shapes(build_model(alias)) == _shapes(model)


def test_shipped_tiny_config_architecture_key(repo_root):
    """The config the origin snippet loads: its ``model.architecture`` is a ConvNeXt-T backbone config."""
    from passl.utils.config import get_config

    arch = get_config(os.path.join(repo_root, "configs/convnext/convnext_tiny.yaml")).model.architecture
    assert arch.name == "ConvNeXt" and arch.arch == "tiny"
    # shrink the widths (same depths) so building stays cheap; the key and every other field are the config's
    small = dict(arch, dims=[8, 16, 32, 64])
    bb = build_backbone(small)
    assert bb.depths == (3, 3, 9, 3) and bb.num_features == 64
