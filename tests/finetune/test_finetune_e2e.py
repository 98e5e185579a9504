"""End to end through the real tools: the configs/finetune recipe on generated class folders, with and without a
val folder; class names read from the folders, saved in checkpoints, printed by predict, written by eval and carried
through an export. Tiny: 16-px images, dims 8..64, a few steps."""

import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

from passl.engine.checkpoint import load_checkpoint
from passl.utils.report import checkpoint_classes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = os.path.join(ROOT, "configs", "finetune", "_base_", "class_folders.yaml")


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_ft_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_folders(root, classes, per_class, val_per_class=0, size=16):
    """root/train/<class>/*.png (and root/val/...): each class a colour, with noise; mixed sizes and modes."""
    rng = np.random.RandomState(len(classes))
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c, name in enumerate(classes):
            if not n:
                continue
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(n):
                colour = np.array([(c * 97) % 256, (c * 53 + 80) % 256, (c * 29 + 160) % 256])
                side = size + (i % 3) * 4
                img = np.clip(colour + rng.randint(-30, 30, (side, side, 3)), 0, 255).astype("uint8")
                im = Image.fromarray(img)
                (im.convert("L") if i % 4 == 3 else im).save(os.path.join(root, split, name, f"{i:03d}.png"))
    return root


def tiny_config(tmp_path, name="tiny.yaml"):
    """The shipped recipe with a tiny backbone, 16-px crops and no workers: only what CI needs changes."""
    path = tmp_path / name
    path.write_text(
        f"""_base_: {BASE}
output_dir: {tmp_path / "run"}
model:
  architecture: {{name: ConvNeXt, depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], drop_path_rate: 0.0}}
  head: {{in_channels: 64}}
  pretrained: null
data:
  train:
    transforms:
      - {{name: ToRGB}}
      - {{name: RandomResizedCrop, size: 16, scale: [0.25, 1.0], interpolation: bicubic}}
      - {{name: RandomHorizontalFlip, prob: 0.5}}
      - {{name: Normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}}
    batch_size: 4
    num_workers: 0
  val:
    transforms:
      - {{name: ToRGB}}
      - {{name: ResizeCrop, size: 16, crop_pct: 0.875, interpolation: bicubic}}
      - {{name: Normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}}
    batch_size: 8
    num_workers: 0
lr_scheduler: {{warmup_epochs: 0.5}}
train:
  epochs: 2
  accum_steps: 1
  visualdl: false
  log_interval: 1
"""
    )
    return str(path)


def _train(cfg, *overrides):
    assert _tool("train").main(["-c", cfg, *[a for o in overrides for a in ("-o", o)]]) == 0


def test_finetune_without_and_with_val_folder_names_travel(tmp_path, capsys):
    # "Pre-training": 4 classes with a val folder; the head has 4 outputs, read from the folders.
    pre = make_folders(str(tmp_path / "pre"), ["p0", "p1", "p2", "p3"], 4, val_per_class=2)
    cfg = tiny_config(tmp_path)
    pre_out = str(tmp_path / "pre_run")
    _train(cfg, f"data.root={pre}", f"output_dir={pre_out}")
    ck = load_checkpoint(os.path.join(pre_out, "last.pdparams"))
    assert ck["classes"] == ["p0", "p1", "p2", "p3"]
    assert list(ck["model"]["head.fc.weight"].shape) == [64, 4]
    assert not os.path.exists(os.path.join(pre_out, "split.json"))  # a val folder: nothing held out

    # Fine-tune on 3 other classes without a val folder: the 4-class head is dropped and a 3-class one trained.
    own = make_folders(str(tmp_path / "own"), ["cat", "dog", "zebra"], 7)
    out = str(tmp_path / "own_run")
    _train(cfg, f"data.root={own}", f"output_dir={out}", f"model.pretrained={pre_out}/last.pdparams")
    ck = load_checkpoint(os.path.join(out, "last.pdparams"))
    assert ck["classes"] == ["cat", "dog", "zebra"]
    assert list(ck["model"]["head.fc.weight"].shape) == [64, 3]
    for best in ("best.pdparams", "best_ema.pdparams"):  # weights-only files carry the names too
        assert checkpoint_classes(os.path.join(out, best)) == ["cat", "dog", "zebra"]
    with open(os.path.join(out, "classes.txt")) as f:
        assert f.read().split() == ["cat", "dog", "zebra"]
    split = json.load(open(os.path.join(out, "split.json")))
    assert split["val_ratio"] == 0.1 and split["classes"] == ["cat", "dog", "zebra"]
    every = sorted(f"{c}/{i:03d}.png" for c in ("cat", "dog", "zebra") for i in range(7))
    assert sorted(split["train"] + split["val"]) == every and not set(split["train"]) & set(split["val"])
    assert sorted({p.split("/")[0] for p in split["val"]}) == ["cat", "dog", "zebra"]  # stratified: every class

    # Eval: per-image predictions with names, a per-class table and a confusion matrix (JSON and PNG).
    run_cfg = os.path.join(out, "config.yaml")
    rep = str(tmp_path / "eval" / "report.json")
    assert _tool("eval").main(["-c", run_cfg, "--weights", f"{out}/last.pdparams", "--report", rep]) == 0
    per_class = json.load(open(os.path.join(os.path.dirname(rep), "report_per_class.json")))
    assert [r["class"] for r in per_class["per_class"]] == ["cat", "dog", "zebra"]
    assert per_class["images"] == len(split["val"]) == sum(map(sum, per_class["confusion_matrix"]))
    preds = json.load(open(os.path.join(os.path.dirname(rep), "report_predictions.json")))
    assert {os.path.relpath(p["path"], os.path.join(own, "train")) for p in preds} == set(split["val"])
    assert all(p["true"] == p["path"].split(os.sep)[-2] and p["top"][0] in ("cat", "dog", "zebra") for p in preds)
    assert os.path.getsize(os.path.join(os.path.dirname(rep), "report_confusion_matrix.png")) > 0

    # Predict with the run's config: class names, not indices.
    run_cfg = os.path.join(out, "config.yaml")
    # The data folder is gone: the names can only come from the checkpoint and the export's classes.txt.
    image = str(tmp_path / "query.png")
    os.replace(os.path.join(own, "train", "dog", "000.png"), image)
    os.rename(own, own + "_moved")
    capsys.readouterr()
    assert _tool("predict").main([image, "-c", run_cfg, "--weights", f"{out}/last.pdparams", "--topk", "3"]) == 0
    shown = capsys.readouterr().out
    assert all(n in shown for n in ("cat", "dog", "zebra")), shown

    # Export: classes.txt beside the model; the Paddle Inference predictor prints the same names.
    export = str(tmp_path / "export")
    assert _tool("export_model").main(["-c", run_cfg, "--weights", f"{out}/last.pdparams", "--output", export]) == 0
    with open(os.path.join(export, "classes.txt")) as f:
        assert f.read().split() == ["cat", "dog", "zebra"]
    capsys.readouterr()
    assert _tool("predict").main([image, "-c", run_cfg, "--model-dir", export, "--topk", "3"]) == 0
    shown = capsys.readouterr().out
    assert all(n in shown for n in ("cat", "dog", "zebra")), shown


def test_missing_data_root_is_one_clear_error(tmp_path, capsys):
    assert _tool("train").main(["-c", tiny_config(tmp_path)]) == 2
    assert "data.root" in capsys.readouterr().err


@pytest.mark.parametrize("given", [2, 5])
def test_class_count_in_the_config_is_checked_against_the_folders(tmp_path, capsys, given):
    own = make_folders(str(tmp_path / "own"), ["a", "b", "c"], 3)
    rc = _tool("train").main(
        ["-c", tiny_config(tmp_path), "-o", f"data.root={own}", "-o", f"model.head.num_classes={given}"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "3 classes" in err and str(given) in err
