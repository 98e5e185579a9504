"""A real Paddle 2.x-layout export (PREFIX.pdmodel, written with the PIR API off) is read back and runs correctly."""

import os
import subprocess
import sys

import numpy as np
import paddle

from passl.inference import DygraphPredictor, InferencePredictor, model_files
from passl.modeling import build_model
from tests.engine.helpers import ROOT
from tests.inference.helpers import randomize

_EXPORT = """
import sys, paddle
sys.path.insert(0, {root!r})
from passl.modeling import build_model
from passl.inference import export_model
m = build_model({cfg!r})
m.set_state_dict(paddle.load({weights!r}))
export_model(m, {prefix!r}, (1, 3, 32, 32))
"""


def test_pdmodel_layout_is_read_back(tmp_path):
    cfg = {
        "architecture": {"name": "ConvNeXt", "arch": "atto", "layer_scale_init_value": 0.5},
        "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 4},
    }
    model = randomize(build_model(cfg))  # random layer scale, norms and biases: every block shows in the logits
    weights = str(tmp_path / "w.pdparams")
    paddle.save(model.state_dict(), weights)
    code = _EXPORT.format(root=ROOT, cfg=cfg, weights=weights, prefix=str(tmp_path / "legacy" / "model"))
    env = {**os.environ, "FLAGS_enable_pir_api": "0"}  # Paddle 2.x's program format
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    program, params = model_files(str(tmp_path / "legacy"))
    assert program.endswith("model.pdmodel") and os.path.isfile(params)
    x = np.random.RandomState(0).randn(3, 3, 32, 32).astype("float32")
    got = InferencePredictor(str(tmp_path / "legacy"))(x)
    np.testing.assert_allclose(got, DygraphPredictor(model)(x), atol=1e-4)
