"""tools/convert_weights.py and tools/eval.py on ConvNeXt V2 weights: the FCMAE Minkowski layout (encoder only) and a
Hugging Face file convert with --verify, and the converted weights evaluate through a shipped V2 config."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="torch is a test-only reference (pip install -r requirements-dev.txt)")
timm = pytest.importorskip("timm", reason="timm is a test-only reference (pip install -r requirements-dev.txt)")

from tests.weights.v2_layouts import (  # noqa: E402
    decoder,
    official_to_hf,
    official_to_minkowski,
    randomize,
    timm_to_official,
)


def _run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _convert(src, out, cwd, *extra):
    return _run(["tools/convert_weights.py", str(src), str(out), *extra], cwd)


@pytest.fixture(scope="module")
def atto_files(tmp_path_factory):
    torch.manual_seed(0)
    ref = timm.create_model("convnextv2_atto", pretrained=False, num_classes=3).eval()
    randomize(ref)
    official = timm_to_official(ref.state_dict())
    folder = tmp_path_factory.mktemp("v2convert")
    mink = {**official_to_minkowski(official), **decoder(official["norm.weight"].shape[0])}
    torch.save({"model": mink, "epoch": 1599}, folder / "checkpoint-1599.pth")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in official_to_hf(official).items()}, str(folder / "model.safetensors"))
    return ref, folder


def test_convert_minkowski_fcmae_with_verify(atto_files, repo_root):
    _, folder = atto_files
    out = folder / "fcmae.pdparams"
    res = _convert(folder / "checkpoint-1599.pth", out, repo_root, "--arch", "atto", "--verify")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "fcmae_minkowski layout (FCMAE encoder only), ConvNeXtV2 weights" in res.stdout
    assert "missing 0" in res.stdout and "encoder-only FCMAE weights: left at init (fine-tune them) 4" in res.stdout
    assert float(res.stdout.split("max |logit diff| ")[1].split()[0]) < 1e-4
    # A V1 arch name for V2 weights is refused with the family named.
    res = _convert(folder / "checkpoint-1599.pth", out, repo_root, "--arch", "xlarge")
    assert res.returncode == 2 and "not a ConvNeXtV2 arch" in res.stderr


def test_convert_hf_then_eval_a_v2_config(atto_files, repo_root, tmp_path):
    ref, folder = atto_files
    out = tmp_path / "atto_hf.pdparams"
    res = _convert(folder / "model.safetensors", out, repo_root, "--arch", "atto", "--verify")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "hf layout, ConvNeXtV2 weights" in res.stdout and "missing 0; unexpected 0" in res.stdout
    assert float(res.stdout.split("max |logit diff| ")[1].split()[0]) < 1e-4

    rng = np.random.RandomState(0)
    for c in range(3):
        d = tmp_path / "data" / "val" / f"n0000{c}"
        d.mkdir(parents=True)
        for i in range(2):
            Image.fromarray((rng.rand(70, 90, 3) * 255).astype(np.uint8)).save(d / f"{i}.png")
    report, preds = tmp_path / "report.json", tmp_path / "preds.csv"
    res = _run(
        ["tools/eval.py", "-c", "configs/convnext_v2/convnextv2_atto.yaml", "--weights", str(out)]
        + ["--report", str(report), "--predictions", str(preds), "--backend", "dygraph"]
        + ["-o", "model.head.num_classes=3", "-o", f"data.val.dataset.root={tmp_path / 'data'}"]
        + ["-o", "data.val.dataset.num_classes=3", "-o", "data.val.batch_size=3", "-o", "data.val.num_workers=0"]
        + ["-o", "data.val.transforms.1.size=64"],
        repo_root,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "missing 0; unexpected 0" in res.stderr
    from timm.data import create_transform

    tf = create_transform(input_size=(3, 64, 64), is_training=False, interpolation="bicubic", crop_pct=0.875)
    files = sorted((d.name, f.name) for d in (tmp_path / "data" / "val").iterdir() for f in d.iterdir())
    batch = torch.stack([tf(Image.open(tmp_path / "data" / "val" / d / f).convert("RGB")) for d, f in files])
    with torch.no_grad():
        logits = ref(batch).numpy()
    rows = list(csv.DictReader(open(preds)))
    assert [int(r["top1"]) for r in rows] == logits.argmax(1).tolist()
    labels = np.array([int(d[-1]) for d, _ in files])
    result = json.loads(report.read_text())
    assert result["count"] == 6 and result["top1"] == pytest.approx(100 * (logits.argmax(1) == labels).mean())
