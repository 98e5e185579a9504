"""tools/model_info.py counts MACs at the config's own input size, changes of architecture need one override (the
head's in_channels is null: the backbone's width), and a head that does not fit gives a one-line error; plus the
small user-facing fixes: ``import passl; passl.modeling.build_model``, and the override type message."""

import pytest

from passl.modeling import build_model
from passl.registry import ConfigError
from passl.utils.config import get_config
from passl.utils.model_info import count_macs, count_params
from tests.tools.tool_helpers import DEMO, ROOT, run_tool


def _info(*args):
    return run_tool(["tools/model_info.py", *args])


def test_macs_at_the_configs_input_size():
    res = _info("-c", DEMO)
    assert res.returncode == 0, res.stderr[-2000:]
    model = build_model(get_config(f"{ROOT}/{DEMO}").model)
    macs = count_macs(model, (1, 1, 28, 28))["total"]
    assert f"MACs@28: {macs / 1e6:.3f} M" in res.stdout, res.stdout
    res = _info("-c", "configs/convnext/convnext_tiny_22k_1k_384.yaml")
    assert "MACs@384: " in res.stdout, res.stderr[-2000:]
    res = _info("-c", DEMO, "--size", "56")
    assert f"MACs@56: {count_macs(model, (1, 1, 56, 56))['total'] / 1e6:.3f} M" in res.stdout


def test_changing_the_arch_needs_one_override():
    atto = build_model(
        {"architecture": {"name": "ConvNeXt", "arch": "atto"}, "head": {"name": "ConvNeXtClsHead", "in_channels": 320}}
    )
    for cfg in ("configs/convnext/convnext_small.yaml", "configs/convnext/convnext_base_22k_1k_224.yaml"):
        res = _info("-c", cfg, "-o", "model.architecture.arch=atto")
        assert res.returncode == 0, res.stderr[-2000:]
        assert f"params: {count_params(atto):,}" in res.stdout
    res = _info("-c", DEMO, "-o", "model.architecture.dims=[8, 16, 32, 48]")
    assert res.returncode == 0, res.stderr[-2000:]
    # a config with an explicit width (convnext_tiny.yaml: the origin snippet builds its head alone) says what to do
    res = _info("-c", "configs/convnext/convnext_tiny.yaml", "-o", "model.architecture.arch=atto")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model.head.in_channels is 768"), res.stderr
    assert "model.head.in_channels=320" in lines[0] and "model.head.in_channels=null" in lines[0]
    res = _info(
        "-c",
        "configs/convnext/convnext_tiny.yaml",
        "-o",
        "model.architecture.arch=atto",
        "-o",
        "model.head.in_channels=null",
    )
    assert res.returncode == 0 and f"params: {count_params(atto):,}" in res.stdout, res.stderr[-2000:]


def test_null_in_channels_head_alone_is_a_clear_error():
    from passl.modeling.heads import build_head

    with pytest.raises(ConfigError, match="in_channels is null; it is taken from the backbone"):
        build_head({"name": "ConvNeXtClsHead", "in_channels": None, "num_classes": 3})
    model = build_model(
        {
            "architecture": {"name": "ConvNeXt", "depths": [1, 1, 1, 1], "dims": [8, 16, 32, 40]},
            "head": {"name": "ConvNeXtClsHead", "in_channels": None, "num_classes": 3},
        }
    )
    assert model.head.in_channels == 40 and list(model.head.fc.weight.shape) == [40, 3]


def test_import_passl_then_build_model():
    code = (
        "import sys, passl\n"
        "assert 'paddle' not in sys.modules, 'import passl must stay cheap'\n"
        "from passl.utils.config import get_config\n"
        f"m = passl.modeling.build_model(get_config({ROOT + '/' + DEMO!r}).model)\n"
        "print(type(m).__name__, m.num_classes, passl.__version__)\n"
    )
    res = run_tool(["-c", code])
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().startswith("Classification 10 ")


def test_override_type_message_reads_right():
    with pytest.raises(ConfigError) as e:
        get_config(f"{ROOT}/{DEMO}", ["train.epochs=three"])
    msg = str(e.value)
    assert "train.epochs" in msg and "int" in msg and "'three'" in msg
    assert "the config has an int (3)" in msg and "got a str ('three')" in msg and " a int" not in msg
