"""tools/eval.py as a user runs it: an existing export is evaluated as it is (checked only against weights that are
given), the default report never replaces a file, the predictions CSV names the classes, and --ema errors advise the
flag."""

import csv
import json
import re

import pytest

from passl.data.datasets.fashion_mnist import CLASSES
from tests.tools.tool_helpers import DEMO, TINY, export_tiny, run_tool, tiny_weights


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    weights, other = tmp / "w.pdparams", tmp / "other.pdparams"
    tiny_weights(weights, head_init_scale=1.0, seed=0)
    tiny_weights(other, head_init_scale=1.0, seed=1)
    export_tiny(weights, tmp / "inf")
    return tmp, weights, other, tmp / "inf"


def _eval(*args):
    return run_tool(["tools/eval.py", "-c", DEMO, *TINY, *map(str, args)])


def test_model_dir_without_weights_is_evaluated_as_it_is(setup, tmp_path):
    tmp, weights, other, inf = setup
    res = _eval("--model-dir", inf, "--backend", "paddle", "--report", tmp_path / "export.json")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Do not deploy" not in res.stderr and "randomly initialised" not in res.stderr
    assert "as it is" in res.stderr
    res = _eval("--weights", weights, "--backend", "dygraph", "--report", tmp_path / "dygraph.json")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = (json.load(open(tmp_path / f"{n}.json")) for n in ("export", "dygraph"))
    assert a["count"] == b["count"] == 10000
    assert a["top1"] == pytest.approx(b["top1"], abs=0.02) and a["loss"] == pytest.approx(b["loss"], abs=1e-3)
    assert a["backend"] == "paddle" and a["model_dir"] == str(inf) and a["weights"] is None


def test_model_dir_with_weights_is_verified_against_them(setup, tmp_path):
    tmp, weights, other, inf = setup
    res = _eval("--model-dir", inf, "--weights", other, "--report", tmp_path / "r.json")
    assert res.returncode != 0 and "differ from the dygraph model's" in res.stderr, res.stderr[-3000:]
    assert not (tmp_path / "r.json").exists()
    res = _eval("--model-dir", inf, "--weights", weights, "--report", tmp_path / "r.json")
    assert res.returncode == 0 and "matches the dygraph model" in res.stderr, res.stderr[-3000:]
    res = _eval("--model-dir", inf, "--backend", "dygraph", "--weights", weights)
    assert res.returncode == 2 and "--backend paddle or onnx" in res.stderr


def test_default_report_never_replaces_a_run_report(setup, tmp_path):
    tmp, weights, other, inf = setup
    out = tmp_path / "run"
    out.mkdir()
    (out / "eval_report.json").write_text('{"top1": 88.42, "written_by": "the training run"}')
    said = []
    for _ in range(2):
        res = _eval("--model-dir", inf, "-o", f"output_dir={out}")
        assert res.returncode == 0, res.stderr[-3000:]
        said += [ln.split("report: ", 1)[1] for ln in res.stderr.splitlines() if ln.startswith("report: ")]
    assert json.load(open(out / "eval_report.json"))["written_by"] == "the training run"
    names = sorted(p.name for p in out.iterdir() if p.name != "eval_report.json")
    new = [n for n in names if re.fullmatch(r"eval_report_[0-9-]+(_[0-9]+)?\.json", n)]
    assert len(new) == 2, names
    for n in new:  # each report's per-class files are named after it, so neither run replaced the other's
        stem = n[: -len(".json")]
        assert {f"{stem}_per_class.json", f"{stem}_predictions.json", f"{stem}_confusion_matrix.png"} <= set(names)
    assert sorted(said) == [str(out / n) for n in new]  # each run says where its report went
    assert json.load(open(out / new[0]))["count"] == 10000


def test_predictions_csv_has_class_names(setup, tmp_path):
    tmp, weights, other, inf = setup
    preds = tmp_path / "preds.csv"
    res = _eval("--model-dir", inf, "--predictions", preds, "--report", tmp_path / "r.json")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader(open(preds, newline="")))
    assert len(rows) == 10000
    for r in rows[:50]:
        assert r["label_name"] == CLASSES[int(r["label"])]
        assert [r[f"top{k}_name"] for k in range(1, 6)] == [CLASSES[int(r[f"top{k}"])] for k in range(1, 6)]


def test_ema_error_advises_the_flag(setup, tmp_path):
    tmp, weights, other, inf = setup
    res = _eval("--weights", weights, "--ema", "--backend", "dygraph", "--report", tmp_path / "r.json")
    assert res.returncode == 2, res.stderr[-3000:]
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "no EMA weights" in err[0] and "--ema" in err[0], res.stderr[-3000:]
    assert "pretrained_ema" not in err[0] and "Traceback" not in res.stderr
