"""The config schema: every key typed and range-checked when a config is loaded (get_config, the Trainer, the tools),
with one-line messages naming the key, the value and what is allowed."""

import inspect
import os
import subprocess
import sys
from typing import Optional

import pytest

from passl.registry import BACKBONES, ConfigError
from passl.utils.config import get_config
from passl.utils.schema import COMPONENT_ARGS, INJECTED, SCHEMA, _registry, validate_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(ROOT, "configs", "demo", "fashion_mnist_convnext.yaml")


def _load(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(f"_base_: {DEMO}\n{text}\n")
    return get_config(str(path))


BAD = [
    # issue 16 point 8, one case per defect it lists
    ("train: {ema: {enabled: true}}", r"train.ema has unknown key\(s\) enabled \(= true\) \(did you mean 'enable'\?\)"),
    ("train: {ema: {decay: 1.5}}", r"'train.ema.decay' is 1.5; allowed: a number in \[0, 1\)"),
    ("train: {ema: {enable: 'false'}}", r"'train.ema.enable' is 'false'; allowed: true or false"),
    ("train: {visualdl: 'no'}", r"'train.visualdl' is 'no'; allowed: true or false"),
    ("data: {train: {batch_size: 4.5}}", r"'data.train.batch_size' is 4.5; allowed: an integer >= 1"),
    ("train: {epochs: 2.5}", r"'train.epochs' is 2.5; allowed: an integer >= 1"),
    ("train: {max_steps: -1}", r"'train.max_steps' is -1; allowed: an integer >= 1, or null"),
    ("model: {head: {num_classes: 0}}", r"'model.head.num_classes' is 0; allowed: an integer >= 1"),
    ("data: {train: {batch_size: 0}}", r"'data.train.batch_size' is 0; allowed: an integer >= 1"),
    ("data: {train: {batch_size: -8}}", r"'data.train.batch_size' is -8"),
    ("data: {val: {batch_size: 0}}", r"'data.val.batch_size' is 0; allowed: an integer >= 1"),
    ("data: {train: {num_workers: -1}}", r"'data.train.num_workers' is -1; allowed: an integer >= 0"),
    ("optimizer: {lr: fast}", r"'optimizer.lr' is 'fast'; allowed: a number >= 0"),
    ("lr_scheduler: {warmup_epochs: five}", r"'lr_scheduler.warmup_epochs' is 'five'; allowed: a number >= 0"),
    ("train: 5", r"'train' is 5; allowed: a mapping with the keys epochs, "),
    ("data: {train: {batch_size: null}}", r"'data.train.batch_size' is null; allowed: an integer >= 1"),
    ("data: {train: {dataset: FashionMNIST}}", r"'data.train.dataset' is 'FashionMNIST'; allowed: a mapping"),
    # misspelt keys anywhere get a did-you-mean
    ("optimiser: {lr: 0.1}", r"top level has unknown key\(s\) optimiser .*did you mean 'optimizer'"),
    ("model: {architecture: {depth: [1, 1, 1, 1]}}", r"has unknown key\(s\) depth .*did you mean 'depths'"),
    ("data: {train: {num_worker: 2}}", r"data.train has unknown key\(s\) num_worker .*did you mean 'num_workers'"),
    ("data: {train: {dataset: {name: FashionMnist}}}", r"'data.train.dataset.name' is 'FashionMnist' \(did you mean"),
    ("train: {amp: {dtype: float32}}", r"'train.amp.dtype' is 'float32'.*; allowed: one of float16, bfloat16"),
    # component arguments, transform ops included
    (
        "data: {train: {transforms: [{name: RandomHorizontalFlip, prob: 1.5}]}}",
        r"'data.train.transforms\[0\].prob' is 1.5; allowed: a number in \[0, 1\]",
    ),
    ("data: {val: {transforms: [{name: Resize}]}}", r"'data.val.transforms\[0\].size' is missing"),
    ("model: {architecture: {drop_path_rate: 1.0}}", r"'model.architecture.drop_path_rate' is 1.0"),
    ("optimizer: {betas: [0.9]}", r"'optimizer.betas' is \[0.9\]; allowed: a list of 2 entries"),
    ("optimizer: {momentum: 0.9}", r"optimizer \(optimizer AdamW\) has unknown key\(s\) momentum"),
    ("data: {mixup: {prob: 2}}", r"'data.mixup.prob' is 2; allowed: a number in \[0, 1\]"),
    ("export: {image_size: 0}", r"'export.image_size' is 0"),
    # keys other helpers add: their types are checked too
    ("train: {save_every_steps: -1}", r"'train.save_every_steps' is -1; allowed: an integer >= 0"),
    ("data: {train: {use_shared_memory: 'yes'}}", r"'data.train.use_shared_memory' is 'yes'"),
    ("data: {val: {persistent_workers: 1}}", r"'data.val.persistent_workers' is 1; allowed: true or false"),
    ("train: {amp: {custom_white_list: conv2d}}", r"'train.amp.custom_white_list' is 'conv2d'; allowed: a list"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[b[0] for b in BAD])
def test_bad_values_fail_at_load_naming_key_value_and_allowed(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as err:
        _load(tmp_path, text)
    assert "\n" not in str(err.value)  # one line


def test_new_keys_and_null_in_channels_are_accepted(tmp_path):
    cfg = _load(
        tmp_path,
        "train: {save_every_steps: 100, amp: {custom_white_list: [conv2d, matmul]}}\n"
        "data: {train: {use_shared_memory: false, persistent_workers: true},"
        " val: {use_shared_memory: true, persistent_workers: false}}\n"
        "model: {head: {in_channels: null}}",
    )
    assert cfg.train.save_every_steps == 100 and cfg.model.head.in_channels is None


def test_overrides_are_validated_too():
    with pytest.raises(ConfigError, match=r"'train.ema.decay' is 1.5"):
        get_config(DEMO, ["train.ema.decay=1.5"])
    with pytest.raises(ConfigError, match=r"'data.val.batch_size' is 0"):
        get_config(DEMO, ["data.val.batch_size=0"])


def test_trainer_validates_the_config_it_is_handed_before_any_work(tmp_path):
    # a config edited in code after loading (as tests and notebooks do) is checked again by the Trainer
    from passl.engine.trainer import Trainer

    cfg = get_config(DEMO)
    cfg.output_dir = str(tmp_path / "run")
    cfg.data.val.batch_size = 0  # used to fail only after a whole epoch of training
    with pytest.raises(ConfigError, match=r"'data.val.batch_size' is 0"):
        Trainer(cfg)
    cfg = get_config(DEMO)
    cfg.output_dir = str(tmp_path / "run")
    cfg.train.ema = {"enabled": True, "decay": 0.999}  # used to train without EMA, silently
    with pytest.raises(ConfigError, match=r"did you mean 'enable'"):
        Trainer(cfg)
    cfg = get_config(DEMO)
    del cfg["lr_scheduler"]
    with pytest.raises(ConfigError, match=r"'lr_scheduler' is missing"):
        Trainer(cfg)
    assert not os.path.exists(tmp_path / "run")


def test_a_tool_refuses_a_bad_value_with_one_line(tmp_path):
    res = subprocess.run(
        [sys.executable, "tools/eval.py", "-c", DEMO, "-o", "data.val.batch_size=0", "--backend", "dygraph"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    assert "config key 'data.val.batch_size' is 0; allowed: an integer >= 1" in res.stderr


def _config_args(target) -> set:
    if inspect.isclass(target) and "__init__" not in vars(target):
        return set()  # no constructor of its own (SoftTargetCrossEntropy): no arguments
    sig = inspect.signature(target)
    return {p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@pytest.mark.parametrize("kind", sorted(COMPONENT_ARGS))
def test_explicit_argument_tables_match_the_constructors(kind):
    reg = _registry(kind)
    common = set()
    if kind == "optimizer":
        common = set(SCHEMA.keys["optimizer"].common)
    for name, table in COMPONENT_ARGS[kind].items():
        assert name in reg, f"{kind} table lists {name}, which is not registered"
        takes = _config_args(reg.get(name)) - INJECTED.get(kind, set())
        assert set(table) <= takes, f"{kind} {name}: the schema lists {set(table) - takes}, the constructor has not"
        assert takes <= set(table) | common, f"{kind} {name}: the constructor takes {takes - set(table)} unchecked"


def test_mixup_keys_match_the_mixup_constructor():
    from passl.data.mixup import Mixup

    # num_classes comes from the model's head and seed from the run's seed
    assert set(SCHEMA.keys["data"].keys["mixup"].keys) == _config_args(Mixup) - {"num_classes", "seed"}


def test_a_component_without_a_table_is_checked_through_its_signature():
    class SchemaProbe:
        def __init__(self, width: int = 4, scale: float = 1.0, tag: Optional[str] = None) -> None:
            pass

    BACKBONES.register(SchemaProbe)
    try:
        base = {
            "model": {
                "architecture": {"name": "SchemaProbe", "width": 8, "tag": None},
                "head": {"name": "ConvNeXtClsHead"},
            }
        }
        validate_config(base)
        base["model"]["architecture"]["widht"] = 8
        with pytest.raises(ConfigError, match=r"unknown key\(s\) widht .*did you mean 'width'"):
            validate_config(base)
        base["model"]["architecture"] = {"name": "SchemaProbe", "width": 4.5}
        with pytest.raises(ConfigError, match=r"'model.architecture.width' is 4.5; allowed: an integer"):
            validate_config(base)
    finally:
        BACKBONES._items.pop("SchemaProbe")


def test_misspelt_override_keys_get_a_did_you_mean():
    with pytest.raises(
        ConfigError, match=r"no key 'train.ema.enabled' in the config \(did you mean 'train.ema.enable'\?\)"
    ):
        get_config(DEMO, ["train.ema.enabled=true"])
    with pytest.raises(ConfigError, match=r"no key 'trian' in the config \(did you mean 'train'\?\)"):
        get_config(DEMO, ["trian.epochs=2"])
