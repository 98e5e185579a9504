"""The training loop. It knows no model names: the model, data, optimizer, schedule and hooks come from the config."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import random
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np
import paddle

from passl.data import build_dataset, check_classes
from passl.data.loader import build_loader, mix_seed
from passl.engine.checkpoint import (
    float32_state,
    load_checkpoint,
    load_model_state,
    optimizer_state,
    rng_state,
    set_rng_state,
)
from passl.engine.ema import ModelEMA
from passl.engine.hooks import Hook, default_hooks
from passl.engine.resume import (
    check_model_state_matches,
    check_output_dir_writable,
    clean_stale_temp_files,
    config_differences,
    find_resume_checkpoint,
    is_finished,
    refuse_changed_config,
)
from passl.modeling import build_model
from passl.registry import ConfigError
from passl.solver import build_lr_scheduler, build_optimizer
from passl.utils.config import AttrDict, dump_config
from passl.utils.dist import (
    all_gather_json,
    all_reduce_sum,
    get_rank,
    get_world_size,
    init_distributed,
    is_main_process,
    main_process_first,
)
from passl.utils.logger import setup_logger
from passl.utils.memory import reuse_freed_memory
from passl.utils.schema import validate_config

__all__ = ["Trainer", "TrainingDiverged", "TrainingInterrupted", "LossScaler"]

logger = logging.getLogger("passl.train")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; nothing was saved after the last good checkpoint."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM: every process finished its optimizer step and the state was saved; ``signal`` is its name."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name


class LossScaler(paddle.amp.GradScaler):
    """``paddle.amp.GradScaler`` with its loss-scale update restated, same rule: after ``decr_every_n_nan_or_inf``
    steps with inf/nan gradients the scale is multiplied by ``decr_ratio``, after ``incr_every_n_steps`` good steps
    by ``incr_ratio``. Paddle 3.2's own ``_update`` prints ``float(self._scale)`` of a shape-[1] tensor when it
    lowers the scale, a TypeError under NumPy >= 2.4: the first overflow would crash the run."""

    def _update(self) -> None:
        if not self._enable:
            return
        if self._cache_found_inf:
            self._incr_count, self._decr_count = 0, self._decr_count + 1
            if self._decr_count == self._decr_every_n_nan_or_inf:
                self._scale = self._scale * self._decr_ratio
                self._decr_count = 0
            logger.info(f"inf/nan gradients: optimizer step skipped; loss scale now {self._scale.item():g}")
        else:
            self._decr_count, self._incr_count = 0, self._incr_count + 1
            if self._incr_count == self._incr_every_n_steps:
                self._scale = self._scale * self._incr_ratio
                self._incr_count = 0


_STOP_SIGNALS = ("SIGTERM", "SIGINT")  # names StopOnSignalHook sets; the first seen on any process names the stop


def _loader_options(dcfg, split: str) -> Dict[str, Any]:
    """Worker options of ``data.<split>``: ``num_workers``, ``use_shared_memory`` and ``persistent_workers`` (both
    true by default; see docs/training.md)."""
    c = dcfg[split]
    out = {"num_workers": int(c.get("num_workers", 0))}
    for key in ("use_shared_memory", "persistent_workers"):
        value = c.get(key, True)
        if not isinstance(value, bool):
            raise ConfigError(f"data.{split}.{key} must be true or false, got {value!r}")
        out[key] = value
    return out


def _device(requested: Optional[str] = None, world_size: int = 1) -> str:
    """This process's device: the GPU the launcher gave it (FLAGS_selected_gpus), else the CPU. ``train.device``
    may name a device type (``gpu``, ``cpu``); a numbered one (``gpu:1``) only with one process, since every process
    would compute on that one device."""
    if requested and ":" in str(requested) and world_size > 1:
        raise ConfigError(
            f"train.device: {requested} puts all {world_size} processes on one device; with several processes leave "
            f"train.device unset (or write '{str(requested).split(':')[0]}') and choose the devices with "
            f"paddle.distributed.launch --devices or CUDA_VISIBLE_DEVICES"
        )
    if requested and ":" in str(requested):
        return str(requested)
    kind = str(requested or "").lower()
    if kind in ("", "gpu") and paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return f"gpu:{os.environ.get('FLAGS_selected_gpus', '0').split(',')[0]}"
    if kind in ("", "cpu", "gpu"):  # gpu requested on a host without one: Paddle's own message below
        return kind if kind == "gpu" else "cpu"
    return kind


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


class Trainer:
    """Builds everything from ``cfg`` and runs ``train()``; ``resume`` is a checkpoint path, or None for
    auto-resume from ``output_dir/last.pdparams`` when ``train.auto_resume`` is true."""

    def __init__(
        self,
        cfg: AttrDict,
        resume: Optional[str] = None,
        hooks: Optional[List[Hook]] = None,
        allow_config_change: bool = False,
    ) -> None:
        self.cfg = cfg
        validate_config(cfg, require=("model", "data", "optimizer", "lr_scheduler"))  # every key, before any work
        tcfg = cfg.get("train") or {}
        init_distributed()
        self.rank, self.world_size = get_rank(), get_world_size()
        paddle.set_device(_device(tcfg.get("device"), self.world_size))
        self.output_dir = cfg.get("output_dir") or "output/run"
        if self.rank == 0:
            check_output_dir_writable(self.output_dir)  # before any work, and before the logger opens train.log
        setup_logger(self.output_dir, self.rank)
        if paddle.get_device() == "cpu":
            reuse_freed_memory()  # the same large blocks every step: keep them instead of faulting them in again
        self.seed = int(cfg.get("seed", 0))
        # The run's seed on every rank until the model and its EMA exist (identical initial weights, so every rank's
        # EMA starts from the weights DataParallel keeps in sync), then seed + rank for each rank's own streams.
        _seed_all(self.seed)

        self.epochs = int(tcfg.get("epochs", 1))
        self.accum_steps = int(tcfg.get("accum_steps", 1))
        if self.accum_steps < 1 or self.epochs < 1:
            raise ConfigError("train.epochs and train.accum_steps must be >= 1")

        # Data (built before the model so a bad data path fails before any heavy work).
        dcfg = cfg.data
        train_ds = build_dataset(dcfg.train.dataset, dcfg.train.get("transforms"))
        self.train_loader = build_loader(
            train_ds, dcfg.train.batch_size, train=True, seed=self.seed, **_loader_options(dcfg, "train")
        )
        self.val_loader = None
        if dcfg.get("val"):
            val_ds = build_dataset(dcfg.val.dataset, dcfg.val.get("transforms"), for_eval=True, classes_from=train_ds)
            self.val_loader = build_loader(
                val_ds, dcfg.val.batch_size, train=False, seed=self.seed, **_loader_options(dcfg, "val")
            )
        self.steps_per_epoch = len(self.train_loader) // self.accum_steps
        self.total_steps = self.steps_per_epoch * self.epochs
        self.global_batch = self.world_size * int(dcfg.train.batch_size) * self.accum_steps

        # Model, EMA, optimizer, schedule, AMP.
        self.model_without_ddp = build_model(cfg.model)
        if cfg.model.get("pretrained"):
            from passl.weights import load_pretrained

            with main_process_first():  # rank 0 downloads, the others wait and read the cached file
                load_pretrained(
                    self.model_without_ddp,
                    cfg.model.pretrained,
                    drop_head=bool(cfg.model.get("drop_head", False)),
                    use_ema=bool(cfg.model.get("pretrained_ema", False)),
                )
        self.pretraining = bool(getattr(self.model_without_ddp, "self_supervised", False))  # labels unused (FCMAE)
        if not self.pretraining:
            check_classes(self.model_without_ddp, train_ds, self.val_loader.dataset if self.val_loader else None)
        names = getattr(train_ds, "classes", None)
        self.class_names = list(names) if names is not None and not self.pretraining else None
        ocfg = dict(cfg.optimizer)
        lr = float(ocfg.get("lr", 1e-3))
        self.lr_scheduler = build_lr_scheduler(cfg.lr_scheduler, lr, self.epochs, self.steps_per_epoch)
        self.optimizer = build_optimizer(ocfg, self.model_without_ddp, self.lr_scheduler)
        ema_cfg = tcfg.get("ema") or {}
        self.ema = (  # built before AMP O2 casts the model: the EMA weights stay float32
            ModelEMA(self.model_without_ddp, float(ema_cfg.get("decay", 0.9999)), optimizer=self.optimizer)
            if ema_cfg.get("enable")
            else None
        )
        _seed_all(self.seed + self.rank)
        amp = tcfg.get("amp") or {}
        self.amp_enable = bool(amp.get("enable", False))
        self.amp_dtype = amp.get("dtype", "float16")
        self.amp_level = amp.get("level", "O1")
        if self.amp_dtype not in ("float16", "bfloat16") or self.amp_level not in ("O1", "O2"):
            raise ConfigError("train.amp.dtype must be float16 or bfloat16 and train.amp.level O1 or O2")
        white = amp.get("custom_white_list") or []
        if not isinstance(white, (list, tuple)) or not all(isinstance(op, str) and op for op in white):
            raise ConfigError(
                f"train.amp.custom_white_list must be a list of Paddle op names (e.g. [depthwise_conv2d]), got {white!r}"
            )
        self.amp_white_list = sorted(set(white)) or None
        self.scaler = None
        if self.amp_enable:
            if paddle.get_device() == "cpu":
                logger.warning(
                    "train.amp.enable is set, but Paddle runs AMP only on GPU/XPU/custom devices: on cpu this run "
                    "trains in float32 (auto_cast, decorate and GradScaler do nothing)"
                )
            if self.amp_level == "O2":
                # float16/bfloat16 weights in the model, float32 master weights in the optimizer (master_weight)
                # master_grad: gradients become float32 after each backward, so accumulation over micro-batches adds
                # in float32 and clipping/weight decay see float32 values
                self.model_without_ddp, self.optimizer = paddle.amp.decorate(
                    models=self.model_without_ddp,
                    optimizers=self.optimizer,
                    level="O2",
                    dtype=self.amp_dtype,
                    master_weight=True,
                    master_grad=True,
                )
            if self.amp_dtype == "float16":  # bfloat16 has float32's range: no loss scaling
                self.scaler = LossScaler(init_loss_scaling=float(amp.get("init_loss_scaling", 65536.0)))
        self.amp_eval_dtype = self.amp_dtype if self.amp_enable else None
        self.model = paddle.DataParallel(self.model_without_ddp) if self.world_size > 1 else self.model_without_ddp

        mcfg = dcfg.get("mixup")
        self.mixup = None
        if mcfg:
            from passl.data.mixup import Mixup

            self.mixup = Mixup(
                num_classes=self.model_without_ddp.num_classes, seed=self.seed + 1000 * self.rank, **dict(mcfg)
            )

        self.state: Dict[str, Any] = {"epoch": 0, "step": 0, "step_in_epoch": 0, "best": {}, "last_eval": {}}
        self.improved: Dict[str, bool] = {}
        self.last_loss = 0.0
        self.last_reader_cost = 0.0
        self.last_lr = 0.0
        self.max_steps = tcfg.get("max_steps")
        self.hooks = hooks if hooks is not None else default_hooks(dict(tcfg))

        self.finished = False  # the output folder already holds this run, done: train() does nothing
        self.stop_signal: Optional[str] = None  # set by StopOnSignalHook when SIGINT/SIGTERM arrives
        self.stop_reason: Optional[str] = None  # what every process agreed on at the last step boundary
        self._start(resume, bool(tcfg.get("auto_resume", True)), allow_config_change)
        if is_main_process() and not self.finished and hasattr(train_ds, "write_record"):
            train_ds.write_record(self.output_dir)  # classes.txt, and split.json when val was held out of train

    # ----------------------------------------------------------------------------------------------- state
    def checkpoint_dict(self, epoch_done: bool) -> Dict[str, Any]:
        """The training state to save. Collective: every process must call it (each contributes its own RNG
        state); only rank 0 writes the result."""
        s = self.state
        rng = all_gather_json(rng_state(self._rng_extra()))
        return {
            "model": float32_state(self.model_without_ddp, self._master_weights()),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": optimizer_state(self.optimizer, self.model_without_ddp, to_structured=True),
            "scheduler": self.lr_scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": s["epoch"] + 1 if epoch_done else s["epoch"],
            "step_in_epoch": 0 if epoch_done else s["step_in_epoch"],
            "step": s["step"],
            "best": dict(s["best"]),
            "rng": {"world_size": self.world_size, "ranks": rng},
            "config": dump_config(self.cfg),
            "global_batch_shape": [self.world_size, int(self.cfg.data.train.batch_size), self.accum_steps],
            "classes": self.class_names,  # label order; tools/predict.py, eval.py and exports read them
        }

    def _start(self, resume: Optional[str], auto: bool, allow_config_change: bool) -> None:
        """Pick the checkpoint to continue from (resume.py's policy), refuse a changed config, detect a finished
        run; write config.yaml and run_info.json only for a run that will train."""
        if is_main_process():
            clean_stale_temp_files(self.output_dir)
        ckpt = None
        if resume is None and auto:
            resume, ckpt = find_resume_checkpoint(self.output_dir)
        if self.world_size > 1:
            # Every process must make the same choice; without shared storage, machines other than rank 0's see no
            # checkpoint and would silently start from scratch while rank 0 resumes.
            found = int(all_reduce_sum([1.0 if resume else 0.0])[0])
            if 0 < found < self.world_size:
                raise ConfigError(
                    f"only {found} of {self.world_size} processes found a checkpoint to resume from "
                    f"(this one: {resume or 'none'} in {self.output_dir}); put output_dir on storage every machine "
                    f"shares, or pass --resume PATH readable by all, or set train.auto_resume=false to start over"
                )
        if resume:
            ckpt = ckpt if ckpt is not None else load_checkpoint(resume)
            shape = (self.world_size, int(self.cfg.data.train.batch_size), self.accum_steps)
            saved_shape = tuple(ckpt["global_batch_shape"]) if ckpt.get("global_batch_shape") else None
            diffs = config_differences(ckpt.get("config"), self.cfg, saved_shape, shape)
            if diffs and not allow_config_change:
                refuse_changed_config(resume, diffs, self.output_dir)
            if diffs:
                logger.warning(f"continuing {resume} with a changed config (allowed): {'; '.join(diffs)}")
            self.resume(resume, ckpt)
            self.finished = is_finished(ckpt, self.epochs, self.max_steps)
        if is_main_process() and not self.finished:
            self._write_run_info()

    def resume(self, path: str, ckpt: Optional[Dict[str, Any]] = None) -> None:
        ckpt = load_checkpoint(path) if ckpt is None else ckpt
        check_model_state_matches(self.model_without_ddp, ckpt["model"], path)
        load_model_state(self.model_without_ddp, ckpt["model"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.set_state_dict(ckpt["ema"])
        self.optimizer.set_state_dict(optimizer_state(self.optimizer, self.model_without_ddp, False, ckpt["optimizer"]))
        self.lr_scheduler.set_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state.update(
            epoch=int(ckpt["epoch"]),
            step=int(ckpt["step"]),
            step_in_epoch=int(ckpt["step_in_epoch"]),
            best=dict(ckpt.get("best") or {}),
        )
        self._restore_rng(ckpt.get("rng"), path)
        logger.info(
            f"resumed from {path}: epoch {self.state['epoch']} step {self.state['step']} best {self.state['best']}"
        )

    def _rng_extra(self) -> Dict[str, np.random.RandomState]:
        return {"mixup": self.mixup.rng} if self.mixup is not None else {}

    def _master_weights(self) -> Dict[str, paddle.Tensor]:
        """AMP O2: the optimizer's float32 master weights by parameter name (empty before the first step)."""
        return dict(getattr(self.optimizer, "_master_weights", None) or {})

    def _restore_rng(self, saved: Any, path: str) -> None:
        """Each rank takes its own saved RNG state. Another world size, another device kind or an older
        checkpoint: warn and reseed every stream from (seed, rank, step), the same on every rerun."""
        ranks = saved.get("ranks") if isinstance(saved, dict) else None
        if isinstance(ranks, list) and len(ranks) == self.world_size:
            if set_rng_state(ranks[self.rank], self._rng_extra()):
                return
            why = f"it was written on {ranks[self.rank].get('device')}, this run computes on {paddle.get_device()}"
        elif isinstance(ranks, list):
            why = f"it was written by {len(ranks)} processes, this run has {self.world_size}"
        else:
            why = "it holds no per-process RNG state (an older format)"
        s = mix_seed(self.seed, self.rank, self.state["step"])
        _seed_all(s)
        if self.mixup is not None:
            self.mixup.rng.seed(mix_seed(self.seed, self.rank, self.state["step"], 1))
        logger.warning(
            f"resume: random states in {path} not restored ({why}); reseeded from (seed {self.seed}, rank "
            f"{self.rank}, step {self.state['step']}): the run continues, not bit-identical to an uninterrupted one"
        )

    def _write_run_info(self) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        dump_config(self.cfg, os.path.join(self.output_dir, "config.yaml"))
        info = {
            "seed": self.seed,
            "world_size": self.world_size,
            "python": sys.version.split()[0],
            "paddle": paddle.__version__,
            "platform": platform.platform(),
            "device": paddle.get_device(),
            "global_batch": self.global_batch,
            "steps_per_epoch": self.steps_per_epoch,
            "argv": sys.argv,
        }
        from passl import __version__

        info["passl"] = __version__
        tmp = os.path.join(self.output_dir, "run_info.json.tmp")
        with open(tmp, "w") as f:
            json.dump(info, f, indent=2)
        os.replace(tmp, os.path.join(self.output_dir, "run_info.json"))

    # ------------------------------------------------------------------------------------------------ loop
    def _call(self, event: str) -> None:
        for h in self.hooks:
            getattr(h, event)(self)

    def train(self) -> Dict[str, Any]:
        if self.finished:
            s = self.state
            logger.warning(
                f"{self.output_dir} holds a finished run (epoch {s['epoch']}/{self.epochs}, step {s['step']}): nothing "
                f"to train, nothing written. To start afresh, use a new folder (-o output_dir=NEW_DIR) or delete this "
                f"one"
            )
            return self.state
        micro = int(self.cfg.data.train.batch_size)
        logger.info(
            f"effective batch {self.global_batch} = {self.world_size} processes x {micro} per process x "
            f"{self.accum_steps} accumulation steps; {self.steps_per_epoch} optimizer steps per epoch, "
            f"{self.epochs} epochs, base lr {self.cfg.optimizer.get('lr')}"
        )
        try:
            self._call("before_run")
            while self.state["epoch"] < self.epochs:
                if self.max_steps is not None and self.state["step"] >= int(self.max_steps):
                    break
                self._train_epoch()
                if self.state["step_in_epoch"] < self.steps_per_epoch:  # stopped early by max_steps
                    break
                self._call("after_epoch")
                self.state["epoch"] += 1
                self.state["step_in_epoch"] = 0
        finally:
            self._call("after_run")
        return self.state

    def _train_epoch(self) -> None:
        s = self.state
        n_micro = (self.steps_per_epoch - s["step_in_epoch"]) * self.accum_steps
        if n_micro == 0:  # stopped after the epoch's last step, before its evaluation and checkpoint
            return
        self.train_loader.batch_sampler.set_epoch(s["epoch"], start_batch=s["step_in_epoch"] * self.accum_steps)
        self.train_loader.dataset.set_epoch(s["epoch"])
        self.model.train()
        self._call("before_epoch")
        it = iter(self.train_loader)
        reader_cost, losses = 0.0, []
        for i in range(n_micro):
            t0 = time.perf_counter()
            images, labels = next(it)
            reader_cost += time.perf_counter() - t0
            final = (i + 1) % self.accum_steps == 0
            losses.append(self._forward_backward(images, labels, sync=final))
            if not final:
                continue
            # The step boundary: every process learns whether any loss was not finite and whether any process was
            # asked to stop, in one small all-reduce (which is also where the loss leaves the device).
            self.last_loss = self._agree(losses)
            self.last_lr = self.optimizer.get_lr()  # the lr this step uses (hooks step the schedule afterwards)
            if self.scaler is not None:
                # step() unscales the gradients, then optimizer.step() clips them (optimizer.clip_grad) and updates;
                # when a gradient is inf/nan the update is skipped and update() lowers the loss scale.
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            # release the gradients (as torch's set_to_none) instead of zero-filling them: the next backward writes
            # them afresh, and a memset of every gradient (ConvNeXt-T: 110 MB) is ~1% of a CPU step
            self.optimizer.clear_grad(set_to_zero=False)
            s["step"] += 1
            s["step_in_epoch"] += 1
            self.last_reader_cost = reader_cost
            reader_cost, losses = 0.0, []
            if self.stop_reason is None and self.max_steps is not None and s["step"] >= int(self.max_steps):
                self.stop_reason = "max_steps"
            self._call("after_step")  # CheckpointHook saves here for save_every_steps and for a stop
            if self.stop_reason == "max_steps":
                if s["step_in_epoch"] < self.steps_per_epoch:
                    logger.info(
                        f"stopped at train.max_steps={self.max_steps}; state saved to {self.output_dir}/last.pdparams"
                    )
                return
            if self.stop_reason is not None:
                raise TrainingInterrupted(
                    f"stopped by {self.stop_reason} after step {s['step']} (epoch {s['epoch'] + 1}, step "
                    f"{s['step_in_epoch']}/{self.steps_per_epoch}); state saved to "
                    f"{os.path.join(self.output_dir, 'last.pdparams')}. Run the same command again to resume",
                    self.stop_reason,
                )

    def _agree(self, losses: List[paddle.Tensor]) -> float:
        """One all-reduce of [SIGINT seen, SIGTERM seen, non-finite losses, loss sum] at the step boundary: a NaN on
        one rank stops every rank here (before the optimizer step), and a signal on any rank stops all after this
        step. Returns the step's loss averaged over micro-batches and processes."""
        loss = paddle.add_n([x.reshape([1]) for x in losses]) / len(losses)
        bad = paddle.logical_not(paddle.isfinite(loss)).astype("float32")
        seen = [1.0 if self.stop_signal == name else 0.0 for name in _STOP_SIGNALS]
        flags = paddle.concat(
            [paddle.to_tensor(seen, dtype="float32"), bad, paddle.where(bad > 0, paddle.zeros_like(loss), loss)]
        )
        if get_world_size() > 1:
            paddle.distributed.all_reduce(flags)
        values = [float(v) for v in flags.numpy()]
        n_bad, total = values[len(_STOP_SIGNALS)], values[len(_STOP_SIGNALS) + 1]
        if n_bad > 0:
            mine = float(loss.numpy()[0])
            where = f"on {int(n_bad)} of {get_world_size()} processes " if get_world_size() > 1 else ""
            raise TrainingDiverged(
                f"loss is {mine if not math.isfinite(mine) else 'not finite'} {where}at epoch "
                f"{self.state['epoch'] + 1}, step {self.state['step'] + 1}; every process stopped without saving. The "
                f"last good checkpoint is {os.path.join(self.output_dir, 'last.pdparams')} (if any). Lower "
                f"optimizer.lr, set optimizer.clip_grad, or disable train.amp, then resume."
            )
        if self.stop_reason is None:
            self.stop_reason = next((n for n, v in zip(_STOP_SIGNALS, values) if v > 0), None)
        return total / get_world_size()

    def _forward_backward(self, images, labels, sync: bool) -> paddle.Tensor:
        """Forward and backward of one micro-batch; returns the (unscaled, detached) loss, still on the device."""
        targets = labels
        if self.mixup is not None:
            images, targets = self.mixup(images, labels)
        no_sync = self.world_size > 1 and not sync
        ctx = self.model.no_sync() if no_sync else contextlib.nullcontext()
        with ctx:
            with paddle.amp.auto_cast(
                enable=self.amp_enable,
                dtype=self.amp_dtype,
                level=self.amp_level,
                custom_white_list=self.amp_white_list,
            ):
                logits = self.model(images)
            loss = self.model_without_ddp.compute_loss(logits.astype("float32"), targets)
            value = loss.detach()
            loss = loss / self.accum_steps
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        return value
