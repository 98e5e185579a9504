"""The ONNX graph passes run by export_onnx (passl/inference/onnx_passes.py): exact on ConvNeXt V1 and V2 models
whose every block matters, the layer-scale Mul and the blocks' Transposes really gone, and a graph without the
patterns (or with a near miss) left as it was."""

import os

import numpy as np
import paddle
import pytest

onnx = pytest.importorskip("onnx", reason="optional ONNX export (pip install passl-convnext[onnx])")
ort = pytest.importorskip("onnxruntime", reason="optional ONNX backend (pip install passl-convnext[onnx])")
pytest.importorskip("paddle2onnx", reason="optional ONNX export (pip install passl-convnext[onnx])")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from passl.inference import OnnxPredictor, export_model, export_onnx, verify_export  # noqa: E402
from passl.inference.onnx_passes import optimize_onnx, optimize_onnx_bytes  # noqa: E402
from passl.modeling import build_model  # noqa: E402

DEPTHS, DIMS = [2, 1, 3, 1], [16, 32, 48, 64]


def _random_model(name, seed):
    """Layer scale ~ U(0.5, 1.5), biases and GRN gamma/beta ~ N(0, 0.3), norm weights ~ 1 + N(0, 0.3), head weights
    ~ N(0, 1): far from init, so a wrongly folded gamma or a misplaced residual changes the logits."""
    model = build_model(
        {
            "architecture": {"name": name, "depths": DEPTHS, "dims": DIMS},
            "head": {"name": "ConvNeXtClsHead", "in_channels": DIMS[-1], "num_classes": 7},
        }
    )
    rng = np.random.RandomState(seed)
    for pname, p in model.named_parameters():
        shape = list(p.shape)
        if pname.endswith("gamma") and ".grn." not in pname:
            value = rng.uniform(0.5, 1.5, shape)
        elif pname.endswith(("bias", "beta", "gamma")):
            value = rng.randn(*shape) * 0.3
        elif len(shape) == 1:
            value = 1.0 + rng.randn(*shape) * 0.3
        elif pname == "head.fc.weight":  # init 0.02 would shrink every difference the blocks make 50-fold
            value = rng.randn(*shape)
        else:
            continue
        p.set_value(paddle.to_tensor(value.astype("float32")))
    model.eval()
    return model


@pytest.fixture(scope="module", params=["ConvNeXt", "ConvNeXtV2"])
def exported(request, tmp_path_factory):
    """(name, model, folder with the optimized model.onnx, the unoptimized plain.onnx)."""
    model = _random_model(request.param, seed=5)
    folder = tmp_path_factory.mktemp(request.param)
    export_model(model, str(folder / "model"), (2, 3, 64, 64))
    export_onnx(str(folder))
    plain = export_onnx(str(folder), str(folder / "plain.onnx"), optimize=False)
    return request.param, model, folder, plain


def _consts(graph):
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return values


def _source(graph, name):
    producer = {o: n for n in graph.node for o in n.output}
    while name in producer and producer[name].op_type == "Identity":
        name = producer[name].input[0]
    return producer.get(name)


def _layer_scale_muls(graph):
    """Mul nodes scaling a Linear's output (MatMul + bias) by a per-channel constant (GELU's Muls use scalars, GRN's
    scale a normalized tensor)."""
    values = _consts(graph)
    found = []
    for n in graph.node:
        if n.op_type != "Mul" or not any(values.get(i, np.zeros(1)).size > 1 for i in n.input):
            continue
        ups = [_source(graph, i) for i in n.input]
        adds = [u for u in ups if u is not None and u.op_type == "Add"]
        if any(_source(graph, i) is not None and _source(graph, i).op_type == "MatMul" for a in adds for i in a.input):
            found.append(n)
    return found


def _branch_transposes(graph):
    """Adds that read a Transpose to NCHW: each block's branch added to a channels-first residual stream."""
    found = []
    for n in graph.node:
        ups = [_source(graph, i) for i in n.input] if n.op_type == "Add" else []
        if any(u is not None and u.op_type == "Transpose" and list(u.attribute[0].ints) == [0, 3, 1, 2] for u in ups):
            found.append(n)
    return found


def test_logits_match_dygraph(exported):
    _, model, folder, plain = exported
    predictor = OnnxPredictor(str(folder / "model.onnx"))
    assert verify_export(model, predictor, (4, 3, 64, 64), atol=1e-4) <= 1e-4
    # the check can fail: the unoptimized export agrees with it, and a block made invisible would not
    assert verify_export(model, OnnxPredictor(plain), (4, 3, 64, 64), atol=1e-4) <= 1e-4
    x = np.random.RandomState(3).randn(4, 3, 64, 64).astype("float32")
    logits = predictor(x)
    assert np.abs(logits - logits.mean(0)).max() > 0.1  # the images' logits differ far beyond the tolerance


def test_predictor_runs_micro_batches(exported):
    """OnnxPredictor runs a batch in chunks (faster: a smaller working set) and returns the whole batch's logits."""
    _, model, folder, _ = exported
    x = np.random.RandomState(4).randn(5, 3, 64, 64).astype("float32")
    pred = OnnxPredictor(str(folder), chunk=2)
    sizes, run = [], pred.session.run
    pred.session.run = lambda out, feed: sizes.append(len(next(iter(feed.values())))) or run(out, feed)
    logits = pred(x)
    assert sizes == [2, 2, 1]
    np.testing.assert_allclose(logits, OnnxPredictor(str(folder), chunk=16)(x), rtol=0, atol=1e-5)
    assert verify_export(model, pred, (5, 3, 64, 64), atol=1e-4) <= 1e-4


def test_layer_scale_folded(exported):
    name, _, folder, plain = exported
    before = _layer_scale_muls(onnx.load(plain).graph)
    after = _layer_scale_muls(onnx.load(str(folder / "model.onnx")).graph)
    assert len(before) == (sum(DEPTHS) if name == "ConvNeXt" else 0)  # V2 has no layer scale
    assert after == []


def test_residual_stream_channels_last(exported, tmp_path):
    _, _, folder, plain = exported
    assert len(_branch_transposes(onnx.load(plain).graph)) == sum(DEPTHS)
    assert _branch_transposes(onnx.load(str(folder / "model.onnx")).graph) == []

    def ort_transposes(path):  # what ONNX Runtime runs after its own optimizations
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.optimized_model_filepath = str(tmp_path / f"ort_{os.path.basename(path)}")
        ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        return sum(n.op_type == "Transpose" for n in onnx.load(opts.optimized_model_filepath).graph.node)

    assert ort_transposes(str(folder / "model.onnx")) < ort_transposes(plain)


def _tiny_graph(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _arr(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


NEAR_MISSES = {
    # the MatMul + bias result is also a graph output: folding gamma into it would change that output
    "sum_read_twice": lambda: _tiny_graph(
        [
            helper.make_node("MatMul", ["h", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["s"]),
            helper.make_node("Mul", ["g", "s"], ["y"]),
        ],
        [_f("h", [2, 3, 4])],
        [_f("y", [2, 3, 5]), _f("s", [2, 3, 5])],
        [_arr("w", np.ones([4, 5])), _arr("b", np.ones(5)), _arr("g", np.full(5, 2.0))],
    ),
    # gamma per row, not per channel
    "gamma_not_per_channel": lambda: _tiny_graph(
        [
            helper.make_node("MatMul", ["h", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["s"]),
            helper.make_node("Mul", ["s", "g"], ["y"]),
        ],
        [_f("h", [2, 3, 4])],
        [_f("y", [2, 3, 5])],
        [_arr("w", np.ones([4, 5])), _arr("b", np.ones(5)), _arr("g", np.full([3, 1], 2.0))],
    ),
    # a non-constant scale
    "scale_is_input": lambda: _tiny_graph(
        [
            helper.make_node("MatMul", ["h", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["s"]),
            helper.make_node("Mul", ["s", "g"], ["y"]),
        ],
        [_f("h", [2, 3, 4]), _f("g", [5])],
        [_f("y", [2, 3, 5])],
        [_arr("w", np.ones([4, 5])), _arr("b", np.ones(5))],
    ),
    # a residual add of a transposed branch whose stream is a graph input, not a Conv or Transpose output
    "stream_is_input": lambda: _tiny_graph(
        [
            helper.make_node("Transpose", ["m"], ["t"], perm=[0, 3, 1, 2]),
            helper.make_node("Add", ["r", "t"], ["y"]),
        ],
        [_f("r", [1, 5, 2, 3]), _f("m", [1, 2, 3, 5])],
        [_f("y", [1, 5, 2, 3])],
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(NEAR_MISSES))
def test_graph_without_pattern_unchanged(case):
    model = NEAR_MISSES[case]()
    data = model.SerializeToString()
    assert optimize_onnx_bytes(data) is data
    assert sum(optimize_onnx(model).values()) == 0
    assert model.SerializeToString() == data


@pytest.mark.parametrize("bias", [[0.5, -1.0, 2.0, 0.0, 3.0], [0.7]], ids=["per_channel_bias", "scalar_bias"])
def test_fold_applies_to_the_minimal_pattern(bias):
    """The near misses above differ from this graph in one point each, so they test the checks, not a typo."""
    model = NEAR_MISSES["gamma_not_per_channel"]()
    model.graph.initializer[1].CopyFrom(_arr("b", bias))
    model.graph.initializer[2].CopyFrom(_arr("g", [1.0, 2.0, 3.0, 4.0, 5.0]))
    h = np.random.RandomState(0).randn(2, 3, 4).astype("float32")

    def run(m):
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"h": h})[0]

    expected = run(model)
    assert optimize_onnx(model)["fold_layer_scale"] == 1
    assert [n.op_type for n in model.graph.node if n.op_type != "Identity"] == ["MatMul", "Add"]
    np.testing.assert_allclose(run(model), expected, rtol=1e-6, atol=1e-6)


def test_failing_pass_keeps_the_converted_graph(monkeypatch, caplog):
    from passl.inference import onnx_passes

    def broken(graph):
        raise ValueError("planted")

    monkeypatch.setattr(onnx_passes, "PASSES", (("broken", broken),))
    data = NEAR_MISSES["stream_is_input"]().SerializeToString()
    assert optimize_onnx_bytes(data) is data
    assert "planted" in caplog.text
