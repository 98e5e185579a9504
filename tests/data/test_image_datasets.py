"""Image datasets: a corrupt image is skipped by substitution in training and left out of evaluation metrics."""

import numpy as np
from PIL import Image

from passl.data import build_dataset


def _folder(root):
    for c in range(2):
        d = root / f"class_{c}"
        d.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * (c + 1) + i, np.uint8)).save(d / f"img_{i}.png")
    (root / "class_0" / "img_0.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


def test_corrupt_image_substituted_for_training_ignored_for_eval(tmp_path):
    root = _folder(tmp_path / "data")
    cfg = {"name": "ImageFolder", "root": str(root), "on_corrupt": "skip"}
    ops = [{"name": "Normalize", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}]
    train = build_dataset(cfg, ops)
    img, label = train[0]  # the next readable image stands in, with its own label
    assert label == 0 and np.allclose(img * 255, 41)
    evaluation = build_dataset(cfg, ops, for_eval=True)
    assert evaluation[0][1] == -1  # the evaluator leaves label -1 out and counts it as skipped
    assert [evaluation[i][1] for i in range(1, 4)] == [0, 1, 1]
    explicit = build_dataset({**cfg, "skip_as": "substitute"}, ops, for_eval=True)
    assert explicit[0][1] == 0
