"""Resume policy: which checkpoint a run continues from, what may differ from the run that wrote it, and when a run
is already finished. The file reading itself is ``checkpoint.load_checkpoint``; this module decides around it."""

from __future__ import annotations

import errno
import logging
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from passl.engine.checkpoint import RefusedCheckpointError, load_checkpoint
from passl.registry import ConfigError
from passl.utils.config import to_dict
from passl.utils.process import pid_alive

__all__ = [
    "RunFinished",
    "clean_stale_temp_files",
    "check_output_dir_writable",
    "find_resume_checkpoint",
    "config_differences",
    "is_finished",
    "refuse_changed_config",
    "check_model_state_matches",
    "finished_run",
]

logger = logging.getLogger("passl.train")

ALLOW_FLAG = "--allow-config-change"

# What a resumed run may change freely: how often it logs, evaluates and saves, where it runs, how data is loaded, and
# when it stops early. Everything else under these sections changes what the run computes.
COMPARED_SECTIONS = ("seed", "model", "data.train", "data.mixup", "optimizer", "lr_scheduler", "train")
MAY_DIFFER = {
    "model.pretrained",
    "model.pretrained_ema",
    "model.drop_head",
    "data.train.num_workers",
    "data.train.batch_size",  # compared as world size x batch x accumulation
    "train.accum_steps",  # idem
    "train.log_interval",
    "train.eval_interval",
    "train.save_interval",
    "train.save_every_steps",
    "train.keep_last",
    "train.max_steps",
    "train.visualdl",
    "train.auto_resume",
    "train.device",
}

_TMP_RE = re.compile(r"\.tmp(\d+)(\.png)?$")


class RunFinished(Exception):
    """The output folder holds a run that has done all its steps: nothing to train, nothing to write."""


def clean_stale_temp_files(output_dir: str) -> List[str]:
    """Remove ``NAME.tmp<pid>`` files that a killed process left behind (atomic writes that never got renamed).
    Files of a process that is still alive are kept. Returns the removed names."""
    removed = []
    if not os.path.isdir(output_dir):
        return removed
    for name in sorted(os.listdir(output_dir)):
        m = _TMP_RE.search(name)
        if m and not pid_alive(int(m.group(1))):
            try:
                os.remove(os.path.join(output_dir, name))
                removed.append(name)
            except OSError:
                pass
    if removed:
        logger.warning(f"removed {len(removed)} temporary file(s) left by an interrupted write: {', '.join(removed)}")
    return removed


def check_output_dir_writable(output_dir: str) -> None:
    """Fail before any training work when the output folder cannot be written (read-only mount, permissions)."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = os.path.join(output_dir, f".write_test.tmp{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        reason = "it is read-only" if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else e.strerror
        raise ConfigError(
            f"output_dir {output_dir} cannot be written ({reason}); choose another with -o output_dir=PATH"
        ) from None


_EPOCH_RE = re.compile(r"^epoch_(\d+)\.pdparams$")


def _candidates(output_dir: str) -> List[str]:
    """last.pdparams first, then epoch_N.pdparams newest first."""
    out = []
    last = os.path.join(output_dir, "last.pdparams")
    if os.path.isfile(last):
        out.append(last)
    if os.path.isdir(output_dir):
        found = [(int(m.group(1)), n) for n in os.listdir(output_dir) if (m := _EPOCH_RE.match(n))]
        out += [os.path.join(output_dir, n) for _, n in sorted(found, reverse=True)]
    return out


def find_resume_checkpoint(output_dir: str) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """The newest intact training checkpoint in ``output_dir`` and its contents, or (None, None). A checkpoint that
    does not load (truncated by a crash, a foreign file) is skipped with a warning naming the one used instead; one
    that the allow-list refused (it would run code) stops the run, naming it."""
    bad = []
    for path in _candidates(output_dir):
        try:
            ckpt = load_checkpoint(path)
        except RefusedCheckpointError:
            raise
        except ConfigError as e:
            bad.append(f"{os.path.basename(path)} ({e})")
            continue
        if bad:
            logger.warning(f"unreadable checkpoint(s) skipped: {'; '.join(bad)}; resuming from {path} instead")
        return path, ckpt
    if bad:
        logger.warning(f"no intact checkpoint in {output_dir} ({'; '.join(bad)}): starting from scratch")
    return None, None


def _flatten(node: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(node, Mapping):
        out: Dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: node}


def _section(flat: Dict[str, Any], key: str) -> bool:
    return any(key == s or key.startswith(s + ".") for s in COMPARED_SECTIONS)


def _may_differ(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in MAY_DIFFER)


def config_differences(
    saved_cfg: Any, cfg: Mapping, saved_shape: Optional[Tuple[int, int, int]], shape: Tuple[int, int, int]
) -> List[str]:
    """What differs, in what a run computes, between the config a checkpoint was written with and ``cfg``.
    ``*_shape`` are (world size, batch per process, accumulation steps); only their product (the global batch)
    must match."""
    if isinstance(saved_cfg, str):
        try:
            saved_cfg = yaml.safe_load(saved_cfg)
        except yaml.YAMLError:
            return []
    if not isinstance(saved_cfg, Mapping):
        return []
    old, new = _flatten(to_dict(saved_cfg)), _flatten(to_dict(cfg))
    diffs = []
    for key in sorted(set(old) | set(new)):
        if not _section(old, key) or _may_differ(key):
            continue
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}")
    if saved_shape is not None:
        (w0, b0, a0), (w1, b1, a1) = saved_shape, shape
        if w0 * b0 * a0 != w1 * b1 * a1:
            diffs.append(
                f"global batch (processes x batch x accum_steps): {w0} x {b0} x {a0} = {w0 * b0 * a0} -> "
                f"{w1} x {b1} x {a1} = {w1 * b1 * a1}"
            )
    return diffs


def refuse_changed_config(path: str, diffs: List[str], output_dir: str) -> None:
    raise ConfigError(
        f"refusing to resume from {path}: the config differs from the one that run used in {len(diffs)} place(s): "
        f"{'; '.join(diffs)}. Either train in a new folder (-o output_dir=NEW_DIR), or continue this run with the "
        f"new settings anyway (tools/train.py {ALLOW_FLAG}, or Trainer(..., allow_config_change=True))"
    )


def is_finished(ckpt: Mapping, epochs: int, max_steps: Optional[int]) -> bool:
    """A checkpoint that has done every epoch, or reached ``max_steps`` (the stopping point of this config)."""
    if int(ckpt.get("epoch", 0)) >= epochs:
        return True
    return max_steps is not None and int(ckpt.get("step", 0)) >= int(max_steps)


def check_model_state_matches(model: Any, state: Mapping[str, Any], path: str) -> None:
    """Refuse, in one line, a checkpoint whose weights do not fit the model (the architecture changed), instead of
    Paddle's per-key "Skip loading" warnings followed by an AssertionError in the optimizer."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if hasattr(state[k], "shape") and list(state[k].shape) != list(own[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return

    def few(items: List[str]) -> str:
        return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es) (checkpoint vs model): {few(shapes)}")
    if missing:
        parts.append(f"{len(missing)} model key(s) not in the checkpoint: {few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} checkpoint key(s) not in the model: {few(unexpected)}")
    raise ConfigError(
        f"{path} does not fit this model (was the architecture changed?): {'; '.join(parts)}. Resume with the "
        f"architecture that wrote it, or train the new one in a new folder (-o output_dir=NEW_DIR, and "
        f"-o model.pretrained={path} to start from its weights)"
    )


def finished_run(output_dir: str, cfg: Mapping, world_size: int) -> Optional[str]:
    """The checkpoint of a finished run of ``cfg`` (same config in what matters, all steps done) in ``output_dir``,
    else None: what ``Trainer`` would find before training nothing (tools/demo.py asks before launching)."""
    path, ckpt = find_resume_checkpoint(output_dir)
    if path is None:
        return None
    tcfg = cfg.get("train") or {}
    shape = (int(world_size), int(cfg["data"]["train"]["batch_size"]), int(tcfg.get("accum_steps", 1)))
    saved = tuple(ckpt["global_batch_shape"]) if ckpt.get("global_batch_shape") else None
    if config_differences(ckpt.get("config"), cfg, saved, shape):
        return None
    return path if is_finished(ckpt, int(tcfg.get("epochs", 1)), tcfg.get("max_steps")) else None
