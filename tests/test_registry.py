import pytest

import passl.modeling  # noqa: F401  (registers the backbones the tests below look up, whatever ran before)
from passl.registry import BACKBONES, ConfigError, Registry


class Thing:
    def __init__(self, size: int = 1, scale: float = 1.0):
        self.size, self.scale = size, scale


class Greedy:
    """A component that mutates every mapping and list it is given, at every depth."""

    def __init__(self, size: int = 1, opts=None, stages=None):
        opts["inner"]["depth"] = 99
        opts["inner"]["extra"] = "added"
        opts.pop("drop")
        stages.append(4)
        stages[0]["dim"] = -1
        self.size, self.opts, self.stages = size, opts, stages


def test_register_and_build_does_not_mutate_config():
    from passl.utils.config import AttrDict

    reg = Registry("thing")
    reg.register(Greedy)
    for make in (dict, AttrDict):
        cfg = make(
            name="Greedy",
            size=3,
            opts=make(inner=make(depth=1), drop=True),
            stages=[make(dim=8), 2],
        )
        before = {"name": "Greedy", "size": 3, "opts": {"inner": {"depth": 1}, "drop": True}, "stages": [{"dim": 8}, 2]}
        obj = reg.build(cfg)
        assert obj.size == 3 and obj.opts["inner"]["depth"] == 99  # the component did mutate what it got
        assert cfg == before  # ... a copy, at every depth: the config is untouched
        assert type(obj.opts) is dict and type(obj.opts["inner"]) is dict  # plain values, not AttrDicts


def test_duplicate_name_is_an_error():
    reg = Registry("thing")
    reg.register(Thing)
    with pytest.raises(KeyError, match="already registered"):
        reg.register(Thing)
    reg.register(Thing, name="Other")  # another name is fine
    assert "Other" in reg


def test_unknown_name_lists_close_matches():
    with pytest.raises(KeyError, match="did you mean: ConvNeXt"):
        BACKBONES.get("ConvNext")


def test_bad_argument_names_component_and_argument():
    reg = Registry("thing")
    reg.register(Thing)
    with pytest.raises(ConfigError, match=r"thing 'Thing' does not accept the argument\(s\) sise"):
        reg.build({"name": "Thing", "sise": 3})


def test_missing_name_key():
    reg = Registry("thing")
    with pytest.raises(ConfigError, match="no 'name' key"):
        reg.build({"size": 3})


def test_backbone_rejects_bad_argument_by_name():
    with pytest.raises(ConfigError, match="ConvNeXt' does not accept the argument\\(s\\) depth\\b"):
        BACKBONES.build({"name": "ConvNeXt", "depth": [1, 1, 1, 1]})


def test_modeling_registries_are_populated_on_import():
    from passl.registry import ARCHITECTURES, HEADS, LOSSES

    assert "ConvNeXt" in BACKBONES and "ConvNeXtClsHead" in HEADS and "Classification" in ARCHITECTURES
    assert {"CrossEntropyLoss", "SoftTargetCrossEntropy"} <= set(LOSSES.names())
