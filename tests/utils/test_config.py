import functools

import pytest
import yaml

from passl.registry import ConfigError
from passl.utils.config import AttrDict, dump_config
from passl.utils.config import get_config as _get_config

# These files exercise the loader's rules (_base_, overrides, markers) with made-up keys, not library configs, so
# the schema check is off here; tests/utils/test_schema.py tests it.
get_config = functools.partial(_get_config, validate=False)


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def cfg_files(tmp_path):
    (tmp_path / "base").mkdir()
    _write(
        tmp_path / "base" / "b.yaml",
        "a: 1\nlr: 0.5\nsec:\n  x: 1\n  y: [1, 2]\n  name: foo\nflag: true\nnone_key: null\n",
    )
    top = _write(tmp_path / "top.yaml", "_base_: base/b.yaml\nsec:\n  x: 2\nextra: hello\n")
    return tmp_path, top


def test_base_merge_and_attribute_access(cfg_files):
    _, top = cfg_files
    cfg = get_config(top)
    assert isinstance(cfg, AttrDict)
    assert cfg.sec.x == 2 and cfg["sec"]["y"] == [1, 2] and cfg.sec.name == "foo" and cfg.a == 1
    assert cfg.extra == "hello" and "_base_" not in cfg


def test_base_is_one_level_only(tmp_path):
    _write(tmp_path / "c.yaml", "q: 1\n")
    _write(tmp_path / "b.yaml", "_base_: c.yaml\nr: 1\n")
    top = _write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    with pytest.raises(ConfigError, match="one level only"):
        get_config(top)


def test_overrides_keep_types(cfg_files):
    _, top = cfg_files
    cfg = get_config(top, ["sec.x=5", "lr=1e-3", "flag=false", "sec.name=bar", "none_key=[1, 2]"])
    assert cfg.sec.x == 5 and cfg.lr == pytest.approx(1e-3) and isinstance(cfg.lr, float)
    assert cfg.flag is False and cfg.sec.name == "bar" and cfg.none_key == [1, 2]
    cfg = get_config(top, ["lr=1"])  # int -> float allowed
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


@pytest.mark.parametrize(
    "override, message",
    [
        ("sec.z=1", "no key 'sec.z'"),
        ("nosuch.x=1", "no key 'nosuch'"),
        ("sec.x=1.5", "has an int"),
        ("flag=3", "has a bool"),
        ("a=hello", "has an int"),
        ("sec.x", "must look like key.sub=value"),
    ],
)
def test_bad_overrides(cfg_files, override, message):
    _, top = cfg_files
    with pytest.raises(ConfigError, match=message):
        get_config(top, [override])


def test_number_looking_strings_are_errors(tmp_path):
    top = _write(tmp_path / "a.yaml", "opt:\n  lr: 1e-6\n")
    with pytest.raises(ConfigError, match="key 'opt.lr' has the value '1e-6'"):
        get_config(top)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        get_config(str(tmp_path / "nope.yaml"))
    bad = _write(tmp_path / "bad.yaml", "a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        get_config(bad)


def test_dump_round_trip(cfg_files, tmp_path):
    _, top = cfg_files
    cfg = get_config(top, ["lr=1.0e-6"])
    out = tmp_path / "resolved.yaml"
    text = dump_config(cfg, str(out))
    again = yaml.safe_load(out.read_text())
    assert again == yaml.safe_load(text) and again["lr"] == pytest.approx(1e-6) and isinstance(again["lr"], float)
    assert again["sec"] == {"x": 2, "y": [1, 2], "name": "foo"}


def test_replace_marker_replaces_and_never_survives(tmp_path):
    (tmp_path / "base.yaml").write_text("data: {mixup: {mixup_alpha: 0.8, cutmix_alpha: 1.0}, keep: 1}\n")
    (tmp_path / "top.yaml").write_text(
        "_base_: base.yaml\n"
        "data: {mixup: {_replace_: true, mixup_alpha: 0.2}}\n"
        "export: {inner: {_replace_: true, deeper: {_replace_: true, a: 1}}}\n"
    )
    cfg = get_config(str(tmp_path / "top.yaml"))
    assert cfg.data.mixup == {"mixup_alpha": 0.2} and cfg.data.keep == 1
    assert cfg.export == {"inner": {"deeper": {"a": 1}}}
