"""Our eval preprocessing equals timm's official ConvNeXt eval transform on images of many sizes and modes."""

import numpy as np
import pytest
from PIL import Image

from passl.data import build_transforms
from passl.data.transforms.eval import eval_transform_cfgs

timm = pytest.importorskip("timm", reason="timm is a test-only reference (pip install -r requirements-dev.txt)")


def _images():
    rng = np.random.RandomState(0)
    out = []
    for w, h in [(500, 375), (375, 500), (224, 224), (256, 300), (1, 300), (300, 1), (97, 53), (640, 480), (384, 384)]:
        rgb = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        out.append(Image.fromarray(rgb))
    base = Image.fromarray(rng.randint(0, 256, (180, 240, 3)).astype(np.uint8))
    out.append(base.convert("L"))
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.randint(0, 256, (180, 240)).astype(np.uint8)))
    out.append(rgba)
    out.append(base.convert("CMYK"))
    out.append(base.convert("P"))
    out.append(base.convert("LA"))
    return out


@pytest.mark.parametrize("size, crop_pct, mode", [(224, 0.875, "center"), (384, 1.0, "squash")])
def test_equal_to_timm(size, crop_pct, mode):
    from timm.data import create_transform

    ref = create_transform(
        input_size=(3, size, size), is_training=False, interpolation="bicubic", crop_pct=crop_pct, crop_mode=mode
    )
    ours = build_transforms(eval_transform_cfgs(size, 0.875, "auto"))
    for img in _images():
        expected = ref(img.convert("RGB")).numpy()  # timm's dataset loader converts to RGB before the transform
        got = ours(img)
        assert got.shape == (3, size, size) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"{img.mode} {img.size}")


def test_official_rules():
    assert [o["name"] for o in eval_transform_cfgs(224)] == ["ToRGB", "Resize", "CenterCrop", "Normalize"]
    assert eval_transform_cfgs(224)[1]["size"] == 256  # int(224 / 0.875)
    assert eval_transform_cfgs(384)[1]["size"] == [384, 384]  # squash, no crop
    assert [o["name"] for o in eval_transform_cfgs(384)] == ["ToRGB", "Resize", "Normalize"]


@pytest.mark.parametrize(
    "config, size, crop_pct, mode",
    [
        ("configs/convnext/convnext_tiny.yaml", 224, 0.875, "center"),
        ("configs/convnext/convnext_base_22k_1k_384.yaml", 384, 1.0, "squash"),
    ],
)
def test_shipped_eval_transforms_equal_timm(repo_root, config, size, crop_pct, mode):
    from timm.data import create_transform

    from passl.utils.config import get_config

    cfg = get_config(f"{repo_root}/{config}")
    ours = build_transforms(cfg.data.val.transforms)
    ref = create_transform(
        input_size=(3, size, size), is_training=False, interpolation="bicubic", crop_pct=crop_pct, crop_mode=mode
    )
    for img in _images()[:4] + _images()[-5:]:
        np.testing.assert_allclose(ours(img), ref(img.convert("RGB")).numpy(), atol=1e-5)


def test_resize_crop_knobs_follow_timm():
    from timm.data import create_transform

    img = _images()[0]
    for crop_pct, mode in [(0.95, "center"), (1.0, "center"), (0.875, "squash")]:
        ours = build_transforms(
            [{"name": "ResizeCrop", "size": 160, "crop_pct": crop_pct, "crop_mode": mode}, {"name": "Normalize"}]
        )
        ref = create_transform(
            input_size=(3, 160, 160), is_training=False, interpolation="bicubic", crop_pct=crop_pct, crop_mode=mode
        )
        np.testing.assert_allclose(ours(img), ref(img).numpy(), atol=1e-5, err_msg=f"{crop_pct} {mode}")
    with pytest.raises(Exception, match="crop_pct must be in"):
        build_transforms([{"name": "ResizeCrop", "crop_pct": 1.5}])
