"""The one schema of every config key: its type, its range, and the check that enforces them at load time.

``validate_config(cfg)`` walks a config against :data:`SCHEMA` and stops at the first bad value with one line that
names the key, the value and what is allowed (and, for a misspelt key, the close matches). ``get_config`` calls it
after ``_base_`` and ``-o`` are applied, and the trainer calls it again on the config it is handed, so a bad value
fails before any data is read or any step is taken. docs/configuration.md is tested against this schema
(tests/test_config_docs.py): every key here is documented there and every documented key is here.

Components (a mapping with a ``name`` built through a registry) have an explicit argument table per registered name
(:data:`COMPONENT_ARGS`), which tests/utils/test_schema.py checks against the constructors' signatures. A component
registered later without a table (a new model family) is still checked: its argument names against the
constructor's signature, and its values against the constructor's ``int``/``float``/``bool``/``str`` annotations.
"""

from __future__ import annotations

import difflib
import inspect
import math
import typing
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from passl.registry import ConfigError

__all__ = [
    "SCHEMA",
    "COMPONENT_ARGS",
    "validate_config",
    "schema_paths",
    "schema_items",
    "Spec",
    "Int",
    "Float",
    "Bool",
    "Str",
    "ListOf",
    "OneOf",
    "Section",
    "Component",
    "DEFAULT_MAX_PIXELS",
]

# Largest decoded image (width x height) the image datasets and tools/predict.py accept; PIL's own default limit.
DEFAULT_MAX_PIXELS = 89_478_485


def _fmt(value: Any) -> str:
    """A value as the YAML file spells it (null, true), shortened."""
    if isinstance(value, Mapping):
        return "a mapping"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"config key '{key}' is {_fmt(value)}; allowed: {allowed}")


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


class Spec:
    """One key's type and range. ``check`` raises ConfigError naming ``key``; ``describe`` says what is allowed."""

    def __init__(self, null: bool = False, required: bool = False) -> None:
        self.null, self.required = null, required

    def describe(self) -> str:
        return self._describe() + (", or null" if self.null else "")

    def _describe(self) -> str:  # pragma: no cover - every subclass says
        raise NotImplementedError

    def check(self, value: Any, key: str) -> None:
        if value is None:
            if not self.null:
                raise _bad(key, value, self.describe())
            return
        self._check(value, key)

    def _check(self, value: Any, key: str) -> None:
        if not self.accepts(value):
            raise _bad(key, value, self.describe())

    def accepts(self, value: Any) -> bool:  # pragma: no cover
        raise NotImplementedError

    def items(self, prefix: str) -> Iterator[Tuple[str, "Spec"]]:
        """(key path, spec) below this one, in the documentation's scheme (dots, ``[]`` for list entries)."""
        return iter(())


def _range_text(lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi:g}"
    return ""


def _in_range(v, lo, hi, lo_open, hi_open) -> bool:
    if lo is not None and (v < lo or (lo_open and v == lo)):
        return False
    if hi is not None and (v > hi or (hi_open and v == hi)):
        return False
    return True


class Int(Spec):
    """An integer (not a bool, not a float such as 4.5 or 4.0: nothing is truncated)."""

    def __init__(self, min: Optional[int] = None, max: Optional[int] = None, **kw) -> None:
        super().__init__(**kw)
        self.lo, self.hi = min, max

    def _describe(self) -> str:
        return "an integer" + _range_text(self.lo, self.hi, False, False)

    def accepts(self, v: Any) -> bool:
        return type(v) is int and _in_range(v, self.lo, self.hi, False, False)


class Float(Spec):
    """A finite number (an int is fine, a bool or a string is not)."""

    def __init__(self, min=None, max=None, min_open: bool = False, max_open: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.lo, self.hi, self.lo_open, self.hi_open = min, max, min_open, max_open

    def _describe(self) -> str:
        return "a number" + _range_text(self.lo, self.hi, self.lo_open, self.hi_open)

    def accepts(self, v: Any) -> bool:
        return (
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and _in_range(v, self.lo, self.hi, self.lo_open, self.hi_open)
        )


class Bool(Spec):
    """true or false (YAML booleans only: the string "false" is not a bool)."""

    def _describe(self) -> str:
        return "true or false (unquoted)"

    def accepts(self, v: Any) -> bool:
        return isinstance(v, bool)


class Str(Spec):
    def __init__(self, choices: Optional[Sequence[str]] = None, **kw) -> None:
        super().__init__(**kw)
        self.choices = tuple(choices) if choices else None

    def _describe(self) -> str:
        return f"one of {', '.join(self.choices)}" if self.choices else "a string"

    def accepts(self, v: Any) -> bool:
        return isinstance(v, str) and (self.choices is None or v in self.choices)

    def _check(self, value: Any, key: str) -> None:
        if not self.accepts(value):
            hint = _did_you_mean(value, self.choices) if self.choices and isinstance(value, str) else ""
            raise ConfigError(f"config key '{key}' is {_fmt(value)}{hint}; allowed: {self.describe()}")


class ListOf(Spec):
    """A list whose entries all match ``item``; ``length`` fixes its length, ``min_len`` bounds it."""

    def __init__(self, item: Spec, length: Optional[int] = None, min_len: int = 0, **kw) -> None:
        super().__init__(**kw)
        self.item, self.length, self.min_len = item, length, min_len

    def _describe(self) -> str:
        n = f"{self.length} " if self.length else ""
        least = f" (at least {self.min_len})" if self.min_len and not self.length else ""
        return f"a list of {n}entries{least}, each {self.item._describe()}"

    def accepts(self, v: Any) -> bool:
        return isinstance(v, (list, tuple)) and all(self.item.accepts(x) or (x is None and self.item.null) for x in v)

    def _check(self, value: Any, key: str) -> None:
        if not isinstance(value, (list, tuple)):
            raise _bad(key, value, self.describe())
        if (self.length is not None and len(value) != self.length) or len(value) < self.min_len:
            raise _bad(key, value, self.describe())
        for i, x in enumerate(value):
            self.item.check(x, f"{key}[{i}]")

    def items(self, prefix: str) -> Iterator[Tuple[str, Spec]]:
        yield from self.item.items(prefix + "[]")


class OneOf(Spec):
    """Any one of several forms (``size``: an int or an [h, w] pair)."""

    def __init__(self, *options: Spec, **kw) -> None:
        super().__init__(**kw)
        self.options = options

    def _describe(self) -> str:
        return " or ".join(o._describe() for o in self.options)

    def accepts(self, v: Any) -> bool:
        return any(o.accepts(v) for o in self.options)


class Section(Spec):
    """A mapping with known keys; an unknown key is an error with the close matches and the allowed keys."""

    def __init__(self, keys: Dict[str, Spec], **kw) -> None:
        super().__init__(**kw)
        self.keys = keys

    def _describe(self) -> str:
        return f"a mapping with the keys {', '.join(self.keys)}"

    def _check(self, value: Any, key: str) -> None:
        if not isinstance(value, Mapping):
            raise _bad(key, value, self.describe())
        check_keys(value, key, self.keys)

    def items(self, prefix: str) -> Iterator[Tuple[str, Spec]]:
        for k, spec in self.keys.items():
            path = f"{prefix}.{k}" if prefix else k
            yield path, spec
            yield from spec.items(path)


def _where(key: str) -> str:
    return key if key else "the config's top level"


def check_keys(value: Mapping, key: str, keys: Mapping[str, Spec]) -> None:
    """Check every key of ``value`` against ``keys``: unknown keys first (all of them in one message), then the
    required ones, then each value."""
    unknown = [k for k in value if k not in keys]
    if unknown:
        parts = [f"{k} (= {_fmt(value[k])}){_did_you_mean(k, list(keys))}" for k in unknown]
        raise ConfigError(
            f"{_where(key)} has unknown key(s) {', '.join(parts)}; allowed: {', '.join(sorted(keys))} "
            f"(see docs/configuration.md)"
        )
    for k, spec in keys.items():
        sub = f"{key}.{k}" if key else str(k)
        if k not in value:
            if spec.required:
                raise ConfigError(f"config key '{sub}' is missing; it must be {spec.describe()}")
            continue
        spec.check(value[k], sub)


# ----------------------------------------------------------------------------------------------- components
def _registry(kind: str):
    # Importing these packages registers their components.
    import passl.data  # noqa: F401
    import passl.modeling  # noqa: F401
    import passl.solver  # noqa: F401
    from passl import registry

    return {
        "backbone": registry.BACKBONES,
        "head": registry.HEADS,
        "loss": registry.LOSSES,
        "architecture": registry.ARCHITECTURES,
        "dataset": registry.DATASETS,
        "transform": registry.TRANSFORMS,
        "optimizer": registry.OPTIMIZERS,
        "scheduler": registry.SCHEDULERS,
    }[kind]


# Arguments the code passes itself (never from the config), per registry.
INJECTED = {
    "dataset": {"transform"},
    "scheduler": {"learning_rate", "epochs", "steps_per_epoch"},
    "optimizer": {"params", "learning_rate", "weight_decay", "_"},
}


class Component(Spec):
    """A mapping ``{name: X, arg: value, ...}`` built through registry ``kind``. ``common`` are keys every name takes
    (the optimizer's ``lr``); ``default`` is the name used when ``name`` is absent (else ``name`` is required)."""

    def __init__(
        self,
        kind: str,
        common: Optional[Dict[str, Spec]] = None,
        default: Optional[str] = None,
        alias: bool = False,
        **kw,
    ):
        super().__init__(**kw)
        self.kind, self.common, self.default, self.alias = kind, dict(common or {}), default, alias

    def _describe(self) -> str:
        return f"a mapping with a 'name' key (a registered {self.kind}) and its arguments"

    def args_of(self, name: str) -> Dict[str, Spec]:
        table = COMPONENT_ARGS.get(self.kind, {})
        if name in table:
            return {**self.common, **table[name]}
        return {**self.common, **_args_from_signature(_registry(self.kind).get(name), INJECTED.get(self.kind, set()))}

    def _check(self, value: Any, key: str) -> None:
        if not isinstance(value, Mapping):
            raise _bad(key, value, self.describe())
        reg = _registry(self.kind)
        name = value.get("name", self.default)
        nkey = f"{key}.name"
        if name is None:
            raise ConfigError(f"config key '{nkey}' is missing; allowed: one of {', '.join(reg.names())}")
        if not isinstance(name, str) or name not in reg:
            hint = _did_you_mean(name, reg.names()) if isinstance(name, str) else ""
            raise ConfigError(
                f"config key '{nkey}' is {_fmt(name)}{hint}; allowed: a registered {self.kind}: {', '.join(reg.names())}"
            )
        args = self.args_of(name)
        rest = {k: v for k, v in value.items() if k != "name"}
        unknown = [k for k in rest if k not in args]
        if unknown:
            parts = [f"{k} (= {_fmt(rest[k])}){_did_you_mean(k, list(args))}" for k in unknown]
            raise ConfigError(
                f"{key} ({self.kind} {name}) has unknown key(s) {', '.join(parts)}; {name} accepts: "
                f"{', '.join(sorted(args)) or 'no arguments'} (see docs/configuration.md)"
            )
        check_keys(rest, key, args)

    def items(self, prefix: str) -> Iterator[Tuple[str, Spec]]:
        if self.alias:  # another spelling of a key documented in full elsewhere (model.backbone)
            return
        yield f"{prefix}.name", Str(required=self.default is None)
        for name in list(COMPONENT_ARGS.get(self.kind, {})) or [None]:
            args = {**self.common, **(COMPONENT_ARGS.get(self.kind, {}).get(name, {}) if name else {})}
            for k, spec in args.items():
                path = f"{prefix}.{k}"
                yield path, spec
                yield from spec.items(path)


class _AnyValue(Spec):
    def _describe(self) -> str:
        return "any value"

    def accepts(self, v: Any) -> bool:
        return True


def _spec_of_annotation(ann: Any) -> Spec:
    """int/float/bool/str annotations, optionally Optional[...]; anything else is not checked."""
    null = False
    origin = typing.get_origin(ann)
    if origin is typing.Union:
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        null = len(args) < len(typing.get_args(ann))
        if len(args) != 1:
            return _AnyValue(null=True)
        ann = args[0]
    simple = {int: Int, float: Float, bool: Bool, str: Str}
    if ann in simple:
        return simple[ann](null=null)
    return _AnyValue(null=True)


def _args_from_signature(target: Any, injected: set) -> Dict[str, Spec]:
    """Argument specs of a component without an explicit table: names from the signature, types from annotations,
    required when the parameter has no default."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # annotations that do not resolve are simply not checked
        hints = {}
    out: Dict[str, Spec] = {}
    for p in sig.parameters.values():
        if p.name in injected or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        spec = _spec_of_annotation(hints.get(p.name, Any))
        spec.required = p.default is inspect.Parameter.empty
        if p.default is None:
            spec.null = True
        out[p.name] = spec
    return out


# --------------------------------------------------------------------------------------------------- schema
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


def _size(**kw) -> Spec:
    return OneOf(Int(min=1), ListOf(Int(min=1), length=2), **kw)


def _jitter() -> Spec:
    return OneOf(Float(min=0), ListOf(Float(min=0), length=2))


def _image_dataset_args(**extra: Spec) -> Dict[str, Spec]:
    return {
        "root": Str(required=True),
        "on_corrupt": Str(["fail", "skip"]),
        "num_classes": Int(min=1, null=True),
        "max_pixels": Int(min=1),
        **extra,
    }


def _classes() -> Spec:
    return OneOf(ListOf(Str(), min_len=1), Str(), null=True)


COMPONENT_ARGS: Dict[str, Dict[str, Dict[str, Spec]]] = {
    "architecture": {
        "Classification": {
            "architecture": Component("backbone", null=True),
            "backbone": Component("backbone", null=True, alias=True),  # PASSL v1's name for "architecture"
            "head": Component("head", required=True),
            "loss": Component("loss", null=True),
            "pretrained": Str(null=True),
            "pretrained_ema": Bool(),
            "drop_head": Bool(),
        },
        "FCMAE": {  # self-supervised pre-training (passl/modeling/architectures/fcmae.py): no head, no loss key
            "architecture": Component("backbone", null=True),
            "backbone": Component("backbone", null=True, alias=True),
            "patch_size": Int(min=1, null=True),  # null: the encoder's total stride
            "mask_ratio": Float(min=0, max=1, min_open=True, max_open=True),
            "decoder_embed_dim": Int(min=1),
            "decoder_depth": Int(min=0),
            "norm_pix_loss": Bool(),
            "pretrained": Str(null=True),
            "pretrained_ema": Bool(),
            "drop_head": Bool(),
        },
    },
    "backbone": {
        "ConvNeXt": {
            "arch": Str(["atto", "femto", "pico", "nano", "tiny", "small", "base", "large", "xlarge"], null=True),
            "depths": ListOf(Int(min=1), min_len=1, null=True),
            "dims": ListOf(Int(min=1), min_len=1, null=True),
            "in_chans": Int(min=1),
            "drop_path_rate": Float(min=0, max=1, max_open=True),
            "layer_scale_init_value": Float(),
            "patch_size": Int(min=1),
            "out_indices": ListOf(Int(min=0), null=True),
        },
        "ConvNeXtV2": {  # no layer scale in V2
            "arch": Str(["atto", "femto", "pico", "nano", "tiny", "base", "large", "huge"], null=True),
            "depths": ListOf(Int(min=1), min_len=1, null=True),
            "dims": ListOf(Int(min=1), min_len=1, null=True),
            "in_chans": Int(min=1),
            "drop_path_rate": Float(min=0, max=1, max_open=True),
            "patch_size": Int(min=1),
            "out_indices": ListOf(Int(min=0), null=True),
        },
    },
    "head": {
        "ConvNeXtClsHead": {
            # null: the head takes its input width from the backbone
            "in_channels": Int(min=1, null=True),
            # null: the number of class folders of data.root/train (configs/finetune)
            "num_classes": Int(min=1, null=True),
            "head_init_scale": Float(),
            "drop_rate": Float(min=0, max=1, max_open=True),
        }
    },
    "loss": {
        "CrossEntropyLoss": {"label_smoothing": Float(min=0, max=1, max_open=True)},
        "SoftTargetCrossEntropy": {},
    },
    "dataset": {
        "ImageNet": _image_dataset_args(split=Str(), classes=_classes()),
        "ImageFolder": _image_dataset_args(skip_as=Str(["substitute", "ignore"]), classes=_classes()),
        "ClassFolders": {
            **_image_dataset_args(
                split=Str(["train", "val"]),
                val_ratio=Float(min=0, max=1, min_open=True, max_open=True),
                split_seed=Int(min=0),
                skip_as=Str(["substitute", "ignore"]),
                classes=_classes(),
            ),
            "root": Str(null=True),  # null: data.root
        },
        "ImageList": {
            **_image_dataset_args(list_file=Str(required=True), skip_as=Str(["substitute", "ignore"])),
        },
        "FashionMNIST": {
            "root": Str(),
            "split": Str(["train", "holdout", "test"]),
            "mode": Str(["L", "RGB"]),
            "holdout_per_class": Int(min=0),
            "holdout_seed": Int(min=0),
            "subset_per_class": Int(min=1, null=True),
            "subset_seed": Int(min=0),
        },
        "SyntheticImages": {
            "num_samples": Int(min=1),
            "image_size": Int(min=1),
            "num_classes": Int(min=1),
            "channels": Int(min=1),
        },
    },
    "transform": {
        "ToRGB": {},
        "Resize": {"size": _size(required=True), "interpolation": Str(INTERPOLATIONS)},
        "CenterCrop": {"size": _size(required=True)},
        "ResizeCrop": {
            "size": Int(min=1),
            "crop_pct": Float(min=0, max=1, min_open=True),
            "crop_mode": Str(["auto", "center", "squash"]),
            "interpolation": Str(INTERPOLATIONS),
        },
        "RandomResizedCrop": {
            "size": _size(),
            "scale": ListOf(Float(min=0, max=1, min_open=True), length=2),
            "ratio": ListOf(Float(min=0, min_open=True), length=2),
            "interpolation": Str(INTERPOLATIONS),
        },
        "RandomHorizontalFlip": {"prob": Float(min=0, max=1)},
        "ColorJitter": {
            "brightness": _jitter(),
            "contrast": _jitter(),
            "saturation": _jitter(),
            "hue": OneOf(Float(min=0, max=0.5), ListOf(Float(min=-0.5, max=0.5), length=2)),
        },
        "RandAugment": {
            "config_str": Str(),
            "interpolation": Str(INTERPOLATIONS),
            "mean": ListOf(Float(min=0, max=1), min_len=1),
            "translate_pct": Float(min=0),
        },
        "Normalize": {
            "mean": ListOf(Float(), min_len=1),
            "std": ListOf(Float(min=0, min_open=True), min_len=1),
        },
        "RandomErasing": {
            "prob": Float(min=0, max=1),
            "mode": Str(["pixel", "rand", "const"]),
            "min_area": Float(min=0, max=1, min_open=True),
            "max_area": Float(min=0, max=1, min_open=True),
            "min_aspect": Float(min=0, min_open=True),
            "max_aspect": Float(min=0, min_open=True, null=True),
            "min_count": Int(min=1),
            "max_count": Int(min=1),
        },
    },
    "optimizer": {
        "AdamW": {
            "betas": ListOf(Float(min=0, max=1, max_open=True), length=2),
            "epsilon": Float(min=0, min_open=True),
        },
        "Momentum": {"momentum": Float(min=0), "nesterov": Bool()},
        "SGD": {},
    },
    "scheduler": {
        "WarmupCosine": {
            "warmup_epochs": Float(min=0),
            "warmup_start_lr": Float(min=0),
            "min_lr": Float(min=0),
            "warmup_steps": Int(min=-1),
        },
        "ConstantLR": {},
    },
}


def _split(required: bool) -> Section:
    return Section(
        {
            "dataset": Component("dataset", required=True),
            "transforms": ListOf(Component("transform"), null=True),
            "batch_size": Int(min=1, required=True),
            "num_workers": Int(min=0),
            "use_shared_memory": Bool(),
            "persistent_workers": Bool(),
        },
        null=not required,
        required=required,
    )


SCHEMA = Section(
    {
        "seed": Int(min=0),
        "output_dir": Str(),
        "model": Component("architecture", default="Classification"),
        "data": Section(
            {
                "root": Str(null=True),  # class-folder datasets without a root of their own use it
                "train": _split(True),
                "val": _split(False),
                "mixup": Section(
                    {
                        "mixup_alpha": Float(min=0),
                        "cutmix_alpha": Float(min=0),
                        "cutmix_minmax": ListOf(Float(min=0, max=1), length=2, null=True),
                        "prob": Float(min=0, max=1),
                        "switch_prob": Float(min=0, max=1),
                        "mode": Str(["batch"]),
                        "label_smoothing": Float(min=0, max=1, max_open=True),
                        "correct_lam": Bool(),
                    },
                    null=True,
                ),
            }
        ),
        "optimizer": Component(
            "optimizer",
            common={
                "lr": Float(min=0),
                "weight_decay": Float(min=0),
                "layer_decay": Float(min=0, max=1, min_open=True, null=True),
                "layer_decay_type": Str(["group", "single"], null=True),
                "clip_grad": Float(min=0, null=True),
                "no_weight_decay": ListOf(Str()),
            },
            default="AdamW",
        ),
        "lr_scheduler": Component("scheduler"),
        "train": Section(
            {
                "epochs": Int(min=1),
                "accum_steps": Int(min=1),
                "amp": Section(
                    {
                        "enable": Bool(),
                        "dtype": Str(["float16", "bfloat16"]),
                        "level": Str(["O1", "O2"]),
                        "init_loss_scaling": Float(min=0, min_open=True),
                        "custom_white_list": ListOf(Str()),
                    },
                    null=True,
                ),
                "ema": Section({"enable": Bool(), "decay": Float(min=0, max=1, max_open=True)}, null=True),
                "log_interval": Int(min=1),
                "eval_interval": Int(min=1),
                "save_interval": Int(min=1),
                "save_every_steps": Int(min=0),
                "keep_last": Int(),
                "max_steps": Int(min=1, null=True),
                "visualdl": Bool(),
                "auto_resume": Bool(),
                "device": Str(null=True),
                "recon_png": Section({"interval": Int(min=1), "num_images": Int(min=1, max=64)}, null=True),
            },
            null=True,
        ),
        "export": Section({"image_size": _size()}, null=True),
    }
)


def validate_config(cfg: Mapping[str, Any], require: Sequence[str] = ()) -> None:
    """Check every key of ``cfg`` against :data:`SCHEMA`; ``require`` lists dotted keys that must be present and
    not null (the trainer needs ``model``, ``data``, ``optimizer``, ``lr_scheduler``). Raises ConfigError."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a config must be a mapping, got {_fmt(cfg)}")
    for dotted in require:
        node: Any = cfg
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            parent = dotted.rsplit(".", 1)[0] if "." in dotted else "the top level"
            raise ConfigError(f"config key '{dotted}' is missing (in {parent}); it is required here")
    SCHEMA.check(cfg, "")
    check_pretraining_keys(cfg)


# Keys that only mean something for a classifier (evaluation, labels, export): a pre-training config refuses them.
EVAL_ONLY_KEYS = ("data.val", "data.mixup", "train.eval_interval", "export")


def is_pretraining(cfg: Mapping[str, Any]) -> bool:
    """True when ``model.name`` is a self-supervised pre-training architecture (its class sets
    ``self_supervised = True``: FCMAE)."""
    model = cfg.get("model") if isinstance(cfg, Mapping) else None
    name = model.get("name", "Classification") if isinstance(model, Mapping) else None
    reg = _registry("architecture")
    return isinstance(name, str) and name in reg and bool(getattr(reg.get(name), "self_supervised", False))


def check_pretraining_keys(cfg: Mapping[str, Any]) -> None:
    """A pre-training config has no evaluation and no labels: refuse the keys that would suggest otherwise, and
    ``train.recon_png`` (reconstruction pictures) on a model that cannot reconstruct."""
    pretraining = is_pretraining(cfg)
    if pretraining:
        for dotted in EVAL_ONLY_KEYS:
            node: Any = cfg
            for part in dotted.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            if node is not None:
                raise ConfigError(
                    f"config key '{dotted}' is for training or evaluating a classifier, but model.name "
                    f"{cfg['model'].get('name')} is self-supervised pre-training (no labels, no evaluation): remove "
                    f"it. To evaluate, fine-tune the pre-trained encoder with a classification config "
                    f"(model.pretrained: <run>/last.pdparams; see docs/self_supervised.md)"
                )
    train = cfg.get("train")
    if not pretraining and isinstance(train, Mapping) and train.get("recon_png"):
        raise ConfigError(
            "config key 'train.recon_png' draws reconstructions of a masked-image model (model.name: FCMAE); "
            f"model.name {(cfg.get('model') or {}).get('name', 'Classification')} does not reconstruct: remove it"
        )


def refuse_pretraining_config(cfg: Mapping[str, Any], tool: str) -> None:
    """Tools that need a classifier (eval, export, predict) stop with one line on a pre-training config."""
    if is_pretraining(cfg):
        raise ConfigError(
            f"{tool}: this is a pre-training config (model.name {cfg['model'].get('name')}): it trains an encoder "
            f"and has no classifier to evaluate, export or run. Fine-tune it first with a classification config "
            f"(e.g. configs/convnext_v2/convnextv2_tiny.yaml -o model.pretrained=<run>/last.pdparams), then use "
            f"that config (docs/self_supervised.md)"
        )


def schema_items() -> List[Tuple[str, Spec]]:
    """Every (key path, spec) the schema knows, in the documentation's scheme (``data.train.transforms[].size``);
    a path that several components share (``prob``) comes once per component."""
    return list(SCHEMA.items(""))


def schema_paths() -> List[str]:
    """Every key path the schema knows, once each, in schema order."""
    return list(dict.fromkeys(p for p, _ in schema_items()))


def component_table(kind: str) -> Dict[str, Dict[str, Spec]]:
    """The explicit argument tables of registry ``kind`` (for tests and docs)."""
    return COMPONENT_ARGS.get(kind, {})
