"""The held-out split, data.root resolution and the per-class report, without training."""

import json
import os

import pytest

from passl.data.datasets.class_folders import ClassFolders, stratified_split
from passl.registry import ConfigError
from passl.utils.config import get_config
from passl.utils.report import class_report, read_class_names, write_class_names
from tests.finetune.test_finetune_e2e import make_folders

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_split_is_stratified_deterministic_and_complementary():
    samples = [(f"c{c}/{i:02d}.png", c) for c in range(3) for i in range(10 + 5 * c)]
    train, val = stratified_split(samples, 0.2, seed=3)
    assert sorted(train + val) == sorted(samples) and not set(train) & set(val)
    assert [sum(1 for _, c in val if c == k) for k in range(3)] == [2, 3, 4]  # round(0.2 * n) per class
    assert set(val) == set(stratified_split(list(reversed(samples)), 0.2, seed=3)[1])  # order-independent
    assert set(val) != set(stratified_split(samples, 0.2, seed=4)[1])  # the seed chooses
    # a class of two images gives one to val; a class of one keeps it in train
    _, v = stratified_split([("a/1", 0), ("a/2", 0), ("b/1", 1)], 0.1)
    assert [c for _, c in v] == [0]


def test_train_and_val_datasets_share_classes_and_split(tmp_path):
    root = make_folders(str(tmp_path / "d"), ["b", "a", "c"], 6)
    tr, va = ClassFolders(root, "train", val_ratio=0.34), ClassFolders(root, "val", val_ratio=0.34)
    assert tr.classes == va.classes == ["a", "b", "c"]
    assert len(va) == 6 and len(tr) == 12 and not {p for p, _ in tr.samples} & {p for p, _ in va.samples}
    tr.write_record(str(tmp_path / "out"))
    rec = json.load(open(tmp_path / "out" / "split.json"))
    assert sorted(rec["val"]) == sorted(os.path.relpath(p, os.path.join(root, "train")) for p, _ in va.samples)
    assert read_class_names(str(tmp_path / "out")) == ["a", "b", "c"]


def test_val_folder_is_used_when_present(tmp_path):
    root = make_folders(str(tmp_path / "d"), ["a", "b"], 4, val_per_class=2)
    va = ClassFolders(root, "val")
    assert len(va) == 4 and all(os.sep + "val" + os.sep in p for p, _ in va.samples)
    assert len(ClassFolders(root, "train")) == 8


def test_data_root_fills_roots_and_class_count(tmp_path):
    root = make_folders(str(tmp_path / "d"), ["x", "y", "z", "w"], 2)
    cfg = get_config(os.path.join(ROOT, "configs", "finetune", "convnext_tiny.yaml"), [f"data.root={root}"])
    assert cfg.data.train.dataset.root == cfg.data.val.dataset.root == root
    assert cfg.model.head.num_classes == 4
    with pytest.raises(ConfigError, match="data.root.*train"):
        get_config(os.path.join(ROOT, "configs", "finetune", "convnext_tiny.yaml"), [f"data.root={tmp_path}/none"])


def test_class_report_counts_and_names():
    rep = class_report([0, 0, 1, 2, -1], [0, 1, 1, 1, 0], ["a", "b", "c"], 3)
    assert rep["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert [r["accuracy"] for r in rep["per_class"]] == [50.0, 100.0, 0.0]
    assert rep["images"] == 4 and rep["top1"] == 50.0


def test_class_names_file_refuses_multiline_names(tmp_path):
    with pytest.raises(ConfigError, match="single lines"):
        write_class_names(str(tmp_path), ["a", "b\nc"])
