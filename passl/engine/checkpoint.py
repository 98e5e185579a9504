"""Checkpoints: atomic writes, RNG state, optimizer state under structured parameter names."""

from __future__ import annotations

import glob
import os
import random
import re
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from passl.registry import ConfigError

__all__ = [
    "CheckpointWriteError",
    "RefusedCheckpointError",
    "save_atomic",
    "load_checkpoint",
    "latest_checkpoint",
    "rng_state",
    "set_rng_state",
    "rng_state_of",
    "set_rng_state_of",
    "optimizer_state",
    "float32_state",
    "load_model_state",
]


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, folder gone read-only); the previous file is intact."""


def save_atomic(obj: Dict[str, Any], path: str) -> None:
    """paddle.save to a temporary file in the same folder, then rename: a crash never leaves a half-written file,
    and a failed write (disk full) leaves the previous file as it was and no temporary file."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        paddle.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as e:
        kept = "the previous one is intact" if os.path.exists(path) else "no earlier one exists"
        raise CheckpointWriteError(
            f"could not write checkpoint {path} ({e.strerror or e}); {kept}. Free space or fix the folder's "
            f"permissions, then run the same command again to resume"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class RefusedCheckpointError(ConfigError):
    """The file asked the unpickler for something outside the allow-list (it would run code): never skipped or
    replaced silently, since someone put it there."""


def load_checkpoint(path: str) -> Dict[str, Any]:
    """A training checkpoint, read with an allow-list unpickler (plain data only: no file runs code); tensors
    come back as paddle Tensors, as ``paddle.load`` returns them."""
    from passl.weights.paddle_pickle import UnsafePickleError, load_paddle

    if not os.path.isfile(path):
        raise ConfigError(f"checkpoint not found: {path}")
    try:
        ckpt = load_paddle(path)
    except UnsafePickleError as e:
        raise RefusedCheckpointError(str(e)) from None
    except Exception as e:  # a truncated or foreign file
        raise ConfigError(f"{path} is not a readable PASSL checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "epoch" not in ckpt:
        raise ConfigError(
            f"{path} is not a PASSL training checkpoint (no 'model'/'epoch' keys); for weights only, "
            f"use model.pretrained instead of --resume"
        )
    if "optimizer" not in ckpt:
        raise ConfigError(
            f"{path} holds weights and metrics only (best.pdparams / best_ema.pdparams keep no optimizer state), so a "
            f"run cannot continue from it; resume from last.pdparams or epoch_N.pdparams in the same folder, or "
            f"start a new run with -o model.pretrained={path}"
        )
    return ckpt


_CKPT_RE = re.compile(r"epoch_(\d+)\.pdparams$")


def latest_checkpoint(output_dir: str) -> Optional[str]:
    """The newest ``last.pdparams`` or ``epoch_N.pdparams`` in ``output_dir`` (auto-resume)."""
    last = os.path.join(output_dir, "last.pdparams")
    if os.path.isfile(last):
        return last
    found = [
        (int(m.group(1)), p)
        for p in glob.glob(os.path.join(output_dir, "epoch_*.pdparams"))
        if (m := _CKPT_RE.search(p))
    ]
    return max(found)[1] if found else None


def _generator_state(gen) -> List[Any]:
    """A Paddle generator's state as plain data: [device id, seed, offset, engine state text]."""
    dev, seed, offset, engine = gen.get_state().__getstate__()
    return [int(dev), int(seed), int(offset), bytes(engine).decode("ascii")]


def _set_generator_state(gen, state: Sequence[Any]) -> None:
    own = gen.get_state()
    dev = own.__getstate__()[0]  # this process's device, whichever device wrote the state
    new = type(own).__new__(type(own))
    new.__setstate__((dev, int(state[1]), int(state[2]), list(str(state[3]).encode("ascii"))))
    gen.set_state(new)


def _device_generator():
    """(kind, generator) of the device this process computes on: its own GPU/XPU/custom device, else the CPU."""
    place = paddle.framework._current_expected_place_()
    core = paddle.base.core
    if isinstance(place, paddle.CUDAPlace):
        return "gpu", core.default_cuda_generator(place.get_device_id())
    if isinstance(place, paddle.XPUPlace):
        return "xpu", core.default_xpu_generator(place.get_device_id())
    if isinstance(place, paddle.CustomPlace):
        return place.get_device_type(), core.default_custom_device_generator(place)
    return "cpu", None


def rng_state(extra: Optional[Dict[str, np.random.RandomState]] = None) -> Dict[str, Any]:
    """This process's Python, NumPy and Paddle RNG states (the CPU generator and, on an accelerator, only this
    process's own device's generator) as plain lists, numbers and text: no pickle. ``extra`` adds named
    ``RandomState`` objects (the mixup generator)."""
    version, words, gauss = random.getstate()
    kind, gen = _device_generator()
    state: Dict[str, Any] = {
        "python": [int(version), [int(w) for w in words], gauss],
        "numpy": rng_state_of(np.random.mtrand._rand),
        "paddle_cpu": _generator_state(paddle.base.core.default_cpu_generator()),
        "device": kind,
        "paddle_device": _generator_state(gen) if gen is not None else None,
    }
    for name, rng in (extra or {}).items():
        state[name] = rng_state_of(rng)
    return state


def set_rng_state(state: Dict[str, Any], extra: Optional[Dict[str, np.random.RandomState]] = None) -> bool:
    """Restore :func:`rng_state`'s output. Returns False (and changes nothing) when ``state`` was written for another
    device kind (GPU checkpoint resumed on CPU, or the reverse), or is not in this format: the caller reseeds."""
    if not isinstance(state, dict) or "python" not in state:
        return False
    kind, gen = _device_generator()
    if state.get("device") != kind or (gen is not None and not state.get("paddle_device")):
        return False
    version, words, gauss = state["python"]
    random.setstate((int(version), tuple(int(w) for w in words), gauss))
    set_rng_state_of(np.random.mtrand._rand, state["numpy"])
    _set_generator_state(paddle.base.core.default_cpu_generator(), state["paddle_cpu"])
    if gen is not None:
        _set_generator_state(gen, state["paddle_device"])
    for name, rng in (extra or {}).items():
        if state.get(name) is not None:
            set_rng_state_of(rng, state[name])
    return True


def rng_state_of(rng: np.random.RandomState) -> List[Any]:
    """A NumPy ``RandomState`` as [name, key words, position, has_gauss, cached_gaussian]."""
    name, keys, pos, has_gauss, cached = rng.get_state()
    return [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def set_rng_state_of(rng: np.random.RandomState, state: Sequence[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    rng.set_state((str(name), np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))


def float32_state(model: nn.Layer, masters: Optional[Dict[str, paddle.Tensor]] = None) -> Dict[str, paddle.Tensor]:
    """The model's state with float16/bfloat16 tensors (parameters under AMP O2) cast to float32: checkpoints are
    float32 whatever the training precision. ``masters`` (AMP O2's float32 master weights by parameter name) replace
    the low-precision copies they belong to."""
    low = (paddle.float16, paddle.bfloat16)
    masters = masters or {}
    out = {}
    for k, v in model.state_dict().items():
        m = masters.get(getattr(v, "name", None))
        out[k] = m if m is not None else (v.astype("float32") if v.dtype in low else v)
    return out


def load_model_state(model: nn.Layer, state: Dict[str, Any]) -> None:
    """``set_state_dict``, casting each floating tensor to the dtype the model holds it in (float16 or bfloat16
    under AMP O2; Paddle refuses a dtype mismatch)."""
    own = model.state_dict()
    cast = {}
    for k, v in state.items():
        if k in own and isinstance(v, paddle.Tensor) and paddle.is_floating_point(v) and v.dtype != own[k].dtype:
            v = v.astype(own[k].dtype)
        cast[k] = v
    model.set_state_dict(cast)


_MASTER_SUFFIX = re.compile(r"_fp32_master_\d+$")


def optimizer_state(optimizer: paddle.optimizer.Optimizer, model: nn.Layer, to_structured: bool, state=None):
    """Rename optimizer-state keys between Paddle's auto-generated parameter names (which depend on creation
    order in the process) and the model's structured names, so a resumed process maps state to the right tensor.

    Accumulator keys start with the parameter's name (``linear_3.w_0_moment1_0``, and under AMP O2
    ``linear_3.w_0_fp32_master_0_moment1_0``); the float32 master weights of AMP O2 sit in a nested dict keyed by
    parameter name. When loading, each master weight is also renamed after the current parameter, because Paddle
    names the master weight's accumulators after the master weight's own name."""
    pairs = [(p.name, n) for n, p in model.named_parameters()]
    src, dst = (0, 1) if to_structured else (1, 0)
    table = sorted(((a[src], a[dst]) for a in pairs), key=lambda t: -len(t[0]))
    exact = dict(table)

    def rename(key: str) -> str:
        for old_prefix, new_prefix in table:
            if key.startswith(old_prefix + "_"):
                return new_prefix + key[len(old_prefix) :]
        return key

    state = optimizer.state_dict() if state is None else state
    out = {}
    for key, value in state.items():
        if key == "master_weights" and isinstance(value, dict):
            masters = {}
            for name, tensor in value.items():
                new = exact.get(name, name)
                if not to_structured and isinstance(tensor, paddle.Tensor):
                    m = _MASTER_SUFFIX.search(tensor.name)
                    tensor.name = new + (m.group(0) if m else "_fp32_master_0")
                masters[new] = tensor
            out[key] = masters
        else:
            out[rename(key)] = value
    return out
