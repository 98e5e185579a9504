"""Every shipped config's evaluation transforms (what eval, export and predict use) bring any image -- any size,
grayscale or colour, 1 pixel wide -- to the model's input shape; the demo's resize to 28 leaves Fashion-MNIST's own
images bit-identical, so its accuracy is unchanged."""

import glob
import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from passl.data import build_transforms
from passl.utils.config import get_config
from passl.utils.schema import is_pretraining
from tests.tools.tool_helpers import DEMO, ROOT

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
# Pre-training configs (FCMAE) have no evaluation: eval, export and predict refuse them (test_fcmae_pretrain.py).
CONFIGS = [c for c in CONFIGS if "_base_" not in c.split(os.sep) and not is_pretraining(get_config(c))]


def _common():
    spec = importlib.util.spec_from_file_location("tools_common", os.path.join(ROOT, "tools", "_common.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _odd_images():
    rng = np.random.RandomState(0)
    rgb = lambda h, w: Image.fromarray((rng.rand(h, w, 3) * 255).astype(np.uint8))  # noqa: E731
    return {
        "1 px wide": rgb(60, 1),
        "1 px high": rgb(1, 70),
        "tall": rgb(500, 90),
        "small": rgb(7, 9),
        "square 64": rgb(64, 64),
        "big": rgb(900, 1300),
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_eval_transforms_bring_any_image_to_the_input_shape(path):
    common = _common()
    cfg = get_config(path)
    ops, _ = common.eval_transform_cfgs(cfg)
    tf = build_transforms(ops)
    shape = common.input_shape(cfg)
    for what, img in _odd_images().items():
        img = img.convert("L") if shape[0] == 1 else img
        assert tf(img).shape == shape, (what, img.size)


def test_demo_resize_is_a_no_op_on_fashion_mnist():
    from passl.data.datasets.fashion_mnist import FashionMNIST

    cfg = get_config(os.path.join(ROOT, DEMO))
    ops = cfg.data.val.transforms
    assert [o["name"] for o in ops] == ["ResizeCrop", "Normalize"] and ops[0]["size"] == 28
    with_resize, without = build_transforms(ops), build_transforms(ops[1:])
    ds = FashionMNIST(cfg.data.val.dataset.root, split="test")
    for i in range(0, len(ds), 97):
        img, _ = ds[i]
        np.testing.assert_array_equal(with_resize(img), without(img))
