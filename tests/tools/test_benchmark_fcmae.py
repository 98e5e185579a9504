"""tools/benchmark_fcmae.py end to end at its --quick scale (a few hundred images, one epoch per run, one process):
FCMAE pre-training, both arms at both label fractions on the same class-balanced subsets, the test evaluation, the
JSON, the reconstruction PNG; a second run reuses every finished run and evaluation. (The real benchmark takes ~40
minutes: docs/self_supervised.md.)"""

import json
import os

import pytest
from PIL import Image
from tool_helpers import run_tool

FMNIST = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FMNIST), reason="Debian's dataset-fashion-mnist is not installed")
def test_quick_benchmark_writes_both_arms_both_fractions_and_the_picture(tmp_path):
    out = tmp_path / "bench"
    res = run_tool(["tools/benchmark_fcmae.py", "--quick", "--out", str(out)])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    assert report["quick"] is True
    assert set(report["results"]) == {"1pct", "10pct"} and set(report["gain_points"]) == {"1pct", "10pct"}
    per_class = {"1pct": 2, "10pct": 4}  # --quick's subsets
    for frac, arms in report["results"].items():
        assert set(arms) == {"scratch", "fcmae"}
        for arm, rec in arms.items():
            assert 0.0 <= rec["test"]["top1"] <= 100.0 and rec["test"]["images"] == 100  # 10 test images per class
            assert rec["val_top1"] is not None  # validated on the held-out training images
            assert os.path.isfile(os.path.join(rec["run"], "last.pdparams"))
        # only the FCMAE arm starts from the pre-trained encoder; both saw the same balanced subset
        assert any(o.startswith("model.pretrained=") for o in arms["fcmae"]["overrides"])
        assert not any(o.startswith("model.pretrained=") for o in arms["scratch"]["overrides"])
        assert report["subsets"][frac]["per_class"] == [per_class[frac]] * 10
        gain = arms["fcmae"]["test"]["top1"] - arms["scratch"]["test"]["top1"]
        assert report["gain_points"][frac] == pytest.approx(gain, abs=0.01)
    assert report["subsets"]["1pct"]["indices_sha256"] != report["subsets"]["10pct"]["indices_sha256"]
    png = report["reconstruction_png"]
    assert png and os.path.isfile(png)
    with Image.open(png) as im:
        im.verify()  # a complete, valid PNG
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 32 and im.size[1] > 32
    assert "FCMAE fine-tuned" in res.stdout and "1pct" in res.stdout and "10pct" in res.stdout

    # A second run trains nothing and evaluates nothing again: every run folder is reused as it is.
    weights = sorted(out.glob("*/last.pdparams"))
    before = {p: p.stat().st_mtime_ns for p in [*weights, *out.glob("*/test_eval.json")]}
    again = run_tool(["tools/benchmark_fcmae.py", "--quick", "--out", str(out)])
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("reused, not retrained") == 5
    assert {p: p.stat().st_mtime_ns for p in before} == before
    second = json.loads((out / "results.json").read_text())
    assert second["results"]["1pct"]["fcmae"]["test"] == report["results"]["1pct"]["fcmae"]["test"]
