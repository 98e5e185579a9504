"""tools/eval.py end to end on a generated class-folder dataset: predictions and metrics equal timm's; two
processes count every image once; corrupt images and missing folders behave as documented."""

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.engine.helpers import ROOT

CFG = "configs/convnext/convnext_tiny.yaml"


def _make_imagenet(root, n_classes=3, per_class=(4, 3, 4)):
    rng = np.random.RandomState(0)
    for c in range(n_classes):
        d = root / "val" / f"n0000{c}"
        d.mkdir(parents=True)
        for i in range(per_class[c]):
            w, h = rng.randint(40, 120, size=2)
            arr = (rng.rand(h, w, 3) * 80 + c * 60).astype(np.uint8)
            img = Image.fromarray(arr)
            (img.convert("L") if i == 1 else img).save(d / f"img_{i}.{'png' if i % 2 else 'jpg'}")
    return root


def _overrides(data_root, weights, n_classes=3):
    return [
        "-o",
        "model.architecture.arch=atto",
        "-o",
        "model.head.in_channels=320",
        "-o",
        f"model.head.num_classes={n_classes}",
        "-o",
        f"model.pretrained={weights}",
        "-o",
        f"data.val.dataset.root={data_root}",
        "-o",
        f"data.val.dataset.num_classes={n_classes}",
        "-o",
        "data.val.batch_size=4",
        "-o",
        "data.val.num_workers=0",
        "-o",
        "data.val.transforms.1.size=64",  # ResizeCrop: short side int(64 / 0.875) = 73, crop 64
    ]


def _run(args, cwd=ROOT, **kw):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600, **kw)


def test_predictions_and_metrics_equal_timm(tmp_path):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from timm.data import create_transform

    data = _make_imagenet(tmp_path / "imagenet")
    torch.manual_seed(0)
    ref = timm.create_model("convnext_atto", num_classes=3).eval()
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if n.endswith(("gamma", "bias")):
                p.copy_(torch.randn_like(p) * 0.3)
    weights = tmp_path / "timm_atto.pth"
    torch.save(ref.state_dict(), weights)
    preds, report = tmp_path / "preds.csv", tmp_path / "report.json"
    scratch = tmp_path / "scratch"  # the CPU default exports to a temporary folder, removed afterwards
    scratch.mkdir()
    res = _run(
        ["tools/eval.py", "-c", CFG, *_overrides(data, weights), "--predictions", str(preds), "--report", str(report)],
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert [n for n in os.listdir(scratch) if n != ".ses"] == []  # (.ses: onnxruntime's own session id file)
    rows = list(csv.DictReader(open(preds)))
    tf = create_transform(input_size=(3, 64, 64), is_training=False, interpolation="bicubic", crop_pct=0.875)
    files = sorted((d, f) for d in os.listdir(data / "val") for f in os.listdir(data / "val" / d))
    batch = torch.stack([tf(Image.open(data / "val" / d / f).convert("RGB")) for d, f in files])
    labels = np.array([int(d[-1]) for d, _ in files])
    with torch.no_grad():
        logits = ref(batch).numpy()
    assert [int(r["top1"]) for r in rows] == logits.argmax(1).tolist()
    assert [int(r["label"]) for r in rows] == labels.tolist()
    out = json.load(open(report))
    assert out["count"] == len(files) == 11
    assert out["top1"] == pytest.approx(100 * (logits.argmax(1) == labels).mean())
    top3 = np.argsort(-logits, 1)[:, :3]
    assert out["top5"] == pytest.approx(100 * np.mean([lab in t for lab, t in zip(labels, top3)]))
    assert (
        out["backend"] == "onnx"
    )  # the CPU default: a verified ONNX Runtime export (paddle2onnx + onnxruntime installed)
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    assert out["loss"] == pytest.approx(loss, abs=1e-4)

    # The dygraph backend gives the same predictions and metrics.
    dy_preds, dy_report = tmp_path / "dy.csv", tmp_path / "dy.json"
    res = _run(
        ["tools/eval.py", "-c", CFG, *_overrides(data, weights), "--backend", "dygraph"]
        + ["--predictions", str(dy_preds), "--report", str(dy_report)]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert list(csv.DictReader(open(dy_preds))) == rows
    dy = json.load(open(dy_report))
    assert dy["backend"] == "dygraph" and dy["top1"] == out["top1"] and dy["top5"] == out["top5"]
    assert dy["loss"] == pytest.approx(out["loss"], abs=1e-5)


def test_two_processes_count_each_image_once(tmp_path):
    import paddle

    from passl.modeling import build_model

    data = _make_imagenet(tmp_path / "imagenet")
    model = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": "atto"},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 3},
        }
    )
    weights = tmp_path / "w.pdparams"
    paddle.save(model.state_dict(), str(weights))
    one = _run(["tools/eval.py", "-c", CFG, *_overrides(data, weights), "--report", str(tmp_path / "one.json")])
    assert one.returncode == 0, one.stderr[-2000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    two = _run(
        [
            "-m",
            "paddle.distributed.launch",
            "--nproc_per_node",
            "2",
            "--master",
            f"127.0.0.1:{port}",
            "--log_dir",
            str(tmp_path / "logs"),
            "tools/eval.py",
            "-c",
            CFG,
            *_overrides(data, weights),
            "--report",
            str(tmp_path / "two.json"),
        ],
        env=env,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = json.load(open(tmp_path / "one.json")), json.load(open(tmp_path / "two.json"))
    assert a["count"] == b["count"] == 11  # 11 images over 2 processes: 6 + 5, no padded duplicates
    for k in ("top1", "top5", "loss"):
        assert a[k] == pytest.approx(b[k], abs=1e-5)


def test_corrupt_image_and_missing_folder(tmp_path):
    import paddle

    from passl.modeling import build_model

    data = _make_imagenet(tmp_path / "imagenet")
    (data / "val" / "n00001" / "img_0.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    model = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": "atto"},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 3},
        }
    )
    weights = tmp_path / "w.pdparams"
    paddle.save(model.state_dict(), str(weights))
    res = _run(["tools/eval.py", "-c", CFG, *_overrides(data, weights)])
    assert res.returncode != 0 and "img_0.png" in res.stderr and "on_corrupt: skip" in res.stderr
    report = tmp_path / "r.json"
    res = _run(
        [
            "tools/eval.py",
            "-c",
            CFG,
            *_overrides(data, weights),
            "-o",
            "data.val.dataset.on_corrupt=skip",
            "--report",
            str(report),
        ]
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.load(open(report))["skipped_images"] == 1 and "skipped 1 corrupt images" in res.stdout
    res = _run(["tools/eval.py", "-c", CFG, *_overrides(tmp_path / "nowhere", weights)])
    assert res.returncode == 2 and "ImageNet val folder not found" in res.stderr
