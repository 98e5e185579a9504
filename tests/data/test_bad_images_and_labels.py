"""Hostile and broken image folders (issue 16 points 6 and 7): decompression bombs are corrupt images, a long run of
unreadable files does not recurse, evaluation with nothing readable fails, hidden folders are never classes, and
class lists are matched by name and checked against the model before any work."""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import paddle
import pytest
from PIL import Image

from passl.data import CorruptImageError, build_dataset, check_classes, imagenet_wnids, load_image
from passl.data.loader import build_loader
from passl.engine.evaluator import evaluate
from passl.registry import ConfigError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OPS = [{"name": "Normalize", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}]


def _png(path, value=40, size=8):
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def _bomb(path, side=100_000):
    """A valid tiny PNG whose header claims side x side pixels (IHDR patched, CRC recomputed)."""
    _png(path)
    data = bytearray(open(path, "rb").read())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", side, side)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF)
    open(path, "wb").write(bytes(data))
    return path


def _folder(root, classes, per_class=1):
    for i, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for j in range(per_class):
            _png(root / c / f"{j}.png", 40 + 10 * i + j)
    return root


# ------------------------------------------------------------------------------------------------- point 6
def test_decompression_bomb_is_a_corrupt_image_naming_path_and_key(tmp_path):
    bomb = _bomb(tmp_path / "bomb.png")
    with pytest.raises(
        CorruptImageError, match=r"bomb.png claims .*10000000000 pixels.*raise data.val.dataset.max_pixels"
    ):
        load_image(str(bomb), cap_key="data.val.dataset.max_pixels")
    root = _folder(tmp_path / "d", ["a", "b"])
    os.replace(bomb, root / "a" / "0.png")
    cfg = {"name": "ImageFolder", "root": str(root)}
    with pytest.raises(OSError, match=r"a/0.png claims .*data.train.dataset.max_pixels.*on_corrupt: skip"):
        build_dataset(cfg, OPS)[0]
    skipping = {**cfg, "on_corrupt": "skip"}
    assert build_dataset(skipping, OPS)[0][1] == 1  # training: the next readable image stands in
    assert build_dataset(skipping, OPS, for_eval=True)[0][1] == -1  # evaluation: left out, counted as skipped


def test_the_pixel_cap_is_a_config_key_that_can_be_raised(tmp_path):
    root = _folder(tmp_path / "d", ["a"])
    _png(root / "a" / "0.png", size=64)
    cfg = {"name": "ImageFolder", "root": str(root), "max_pixels": 1000}
    with pytest.raises(OSError, match=r"64x64 = 4096 pixels, above the cap of 1000"):
        build_dataset(cfg, OPS)[0]
    img, _ = build_dataset({**cfg, "max_pixels": 4096}, OPS)[0]
    assert img.shape == (3, 64, 64)


def test_a_long_run_of_unreadable_files_does_not_recurse(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    for i in range(1200):
        (root / "a" / f"{i:04d}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    _png(root / "a" / "9999.png", 77)
    ds = build_dataset({"name": "ImageFolder", "root": str(root), "on_corrupt": "skip"}, OPS)
    img, label = ds[0]  # 1,200 substitutions in a row
    assert label == 0 and np.allclose(img * 255, 77)
    os.remove(root / "a" / "9999.png")
    ds = build_dataset({"name": "ImageFolder", "root": str(root), "on_corrupt": "skip"}, OPS)
    with pytest.raises(CorruptImageError, match="none of the 1200 images"):
        ds[5]


def test_evaluation_with_every_image_skipped_fails(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    for i in range(3):
        (root / "a" / f"{i}.png").write_bytes(b"not an image")
    ds = build_dataset({"name": "ImageFolder", "root": str(root), "on_corrupt": "skip"}, OPS, for_eval=True)
    loader = build_loader(ds, 2, train=False)
    with pytest.raises(ConfigError, match=r"no readable image \(3 skipped as corrupt\)"):
        evaluate(lambda x: paddle.zeros([x.shape[0], 2]), loader)


def test_eval_tool_fails_when_every_image_is_skipped(tmp_path):
    root = tmp_path / "val"
    for c in range(10):
        (root / f"c{c}").mkdir(parents=True)
        (root / f"c{c}" / "0.png").write_bytes(b"not an image")
    res = subprocess.run(
        [
            sys.executable,
            "tools/eval.py",
            "-c",
            "configs/demo/fashion_mnist_convnext.yaml",
            "-o",
            f"data.val.dataset={{name: ImageFolder, root: {root}, on_corrupt: skip}}",
            "-o",
            "model.architecture.in_chans=3",
            "-o",
            "data.val.transforms=[{name: Resize, size: [28, 28]}, {name: Normalize}]",
            "--backend",
            "dygraph",
            "--report",
            str(tmp_path / "report.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0 and "no readable image (10 skipped as corrupt)" in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "report.json").exists()


# ------------------------------------------------------------------------------------------------- point 7
def test_hidden_folders_and_files_are_never_classes_or_images(tmp_path):
    root = _folder(tmp_path / "d", ["a", "b", ".ipynb_checkpoints", ".git"])
    _png(root / "a" / "._0.png")  # macOS AppleDouble file
    ds = build_dataset({"name": "ImageFolder", "root": str(root)}, OPS)
    assert ds.classes == ["a", "b"] and len(ds) == 2


def test_val_folder_missing_a_class_maps_names_not_positions(tmp_path):
    train = build_dataset({"name": "ImageFolder", "root": str(_folder(tmp_path / "t", ["a", "b", "c"]))}, OPS)
    val_root = _folder(tmp_path / "v", ["a", "c"])
    val = build_dataset({"name": "ImageFolder", "root": str(val_root)}, OPS, for_eval=True, classes_from=train)
    assert val.classes == ["a", "b", "c"] and [label for _, label in val.samples] == [0, 2]
    listed = tmp_path / "classes.txt"
    listed.write_text("a\nb\nc\n")
    from_file = build_dataset({"name": "ImageFolder", "root": str(val_root), "classes": str(listed)}, OPS)
    assert [label for _, label in from_file.samples] == [0, 2]
    with pytest.raises(ConfigError, match=r"class folder\(s\) c that are not in the class list"):
        build_dataset({"name": "ImageFolder", "root": str(val_root), "classes": ["a", "b"]}, OPS)


def test_imagenet_val_subset_maps_by_wnid(tmp_path):
    wnids = imagenet_wnids()
    _folder(tmp_path / "val", [wnids[3], wnids[500]])
    ds = build_dataset({"name": "ImageNet", "root": str(tmp_path), "split": "val"}, OPS, for_eval=True)
    assert len(ds.classes) == 1000 and [label for _, label in ds.samples] == [3, 500]


class _Model:
    def __init__(self, num_classes, class_names=None):
        self.num_classes, self.class_names = num_classes, class_names


def test_class_list_is_checked_against_the_model(tmp_path):
    ds = build_dataset({"name": "ImageFolder", "root": str(_folder(tmp_path / "d", ["a", "b", "c"]))}, OPS)
    check_classes(_Model(3), ds)
    with pytest.raises(ConfigError, match=r"data.train.dataset: .* has 3 classes \(a, b, c\), the model 2"):
        check_classes(_Model(2), ds)
    with pytest.raises(ConfigError, match=r"data.val.dataset: .* differ from the model's .* label 1: b vs x"):
        check_classes(_Model(3, ["a", "x", "c"]), val=ds)
    synthetic = build_dataset({"name": "SyntheticImages", "num_samples": 4, "num_classes": 12})
    with pytest.raises(ConfigError, match=r"labels up to 11, the model only 10 classes"):
        check_classes(_Model(10), synthetic)


def test_trainer_refuses_a_class_count_mismatch_before_any_step(tmp_path):
    from passl.engine.trainer import Trainer
    from tests.engine.helpers import tiny_cfg

    cfg = tiny_cfg(tmp_path / "out")  # the model has 10 classes
    root = _folder(tmp_path / "d", ["a", "b", "c", ".ipynb_checkpoints"])
    cfg.data.train.dataset = {"name": "ImageFolder", "root": str(root)}
    cfg.data.train.transforms = [{"name": "Resize", "size": [32, 32]}, *OPS]
    with pytest.raises(ConfigError, match=r"data.train.dataset: .* has 3 classes .* the model 10"):
        Trainer(cfg)
    assert not (tmp_path / "out" / "last.pdparams").exists()


def test_trainer_val_subset_takes_the_train_class_list(tmp_path):
    from passl.engine.trainer import Trainer
    from tests.engine.helpers import tiny_cfg

    cfg = tiny_cfg(tmp_path / "out")
    cfg.model.head.num_classes = 3
    cfg.data.mixup = None
    cfg.model.loss = {"name": "CrossEntropyLoss"}
    ops = [{"name": "Resize", "size": [32, 32]}, *OPS]
    cfg.data.train.dataset = {"name": "ImageFolder", "root": str(_folder(tmp_path / "t", ["a", "b", "c"], 2))}
    cfg.data.train.transforms = ops
    cfg.data.val.dataset = {"name": "ImageFolder", "root": str(_folder(tmp_path / "v", ["a", "c"]))}
    cfg.data.val.transforms = ops
    t = Trainer(cfg)
    assert [label for _, label in t.val_loader.dataset.dataset.samples] == [0, 2]


def test_load_image_is_reusable_for_predict(tmp_path):
    # tools/predict.py reads single images through the same function: mode, cap and path in the message
    path = _png(tmp_path / "x.png", 90, size=16)
    assert load_image(str(path), mode="L").mode == "L"
    with pytest.raises(CorruptImageError, match=r"x.png claims 16x16 = 256 pixels.*raise data.val.dataset.max_pixels"):
        load_image(str(path), max_pixels=100, cap_key="data.val.dataset.max_pixels")
    (tmp_path / "t.png").write_bytes(open(path, "rb").read()[:60])  # truncated
    with pytest.raises(CorruptImageError, match=r"cannot decode image .*t.png"):
        load_image(str(tmp_path / "t.png"))
