"""Hooks: everything the training loop does besides forward/backward/step. Registered in HOOKS."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import paddle

from passl.engine.checkpoint import save_atomic
from passl.engine.evaluator import evaluate
from passl.registry import HOOKS, ConfigError
from passl.utils.dist import barrier, is_main_process
from passl.utils.plot import truncate_metrics

__all__ = [
    "Hook",
    "LrSchedulerHook",
    "EMAHook",
    "LoggerHook",
    "EvalHook",
    "CheckpointHook",
    "VisualDLHook",
    "StopOnSignalHook",
    "ReconstructionHook",
]

logger = logging.getLogger("passl.train")


class Hook:
    """Called by the Trainer at fixed points; ``trainer`` exposes model, optimizer, state, cfg, output_dir."""

    def before_run(self, trainer) -> None: ...

    def before_epoch(self, trainer) -> None: ...

    def after_step(self, trainer) -> None:
        """After each optimizer step (every ``accum_steps`` micro-batches)."""

    def after_epoch(self, trainer) -> None: ...

    def after_run(self, trainer) -> None: ...


@HOOKS.register
class LrSchedulerHook(Hook):
    """Steps the per-iteration schedule after every optimizer step."""

    def after_step(self, trainer) -> None:
        trainer.lr_scheduler.step()


@HOOKS.register
class EMAHook(Hook):
    """Updates the EMA weights after every optimizer step (the trainer owns the ModelEMA so it is checkpointed)."""

    def after_step(self, trainer) -> None:
        if trainer.ema is not None:
            trainer.ema.update(trainer.model_without_ddp)


def _fmt_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


@HOOKS.register
class LoggerHook(Hook):
    """One grep-able line per ``interval`` optimizer steps, a tqdm bar on a terminal, and ``metrics.jsonl``."""

    def __init__(self, interval: int = 10, progress_bar: bool = True) -> None:
        self.interval = max(int(interval), 1)
        self.progress_bar = progress_bar
        self.bar = None

    def before_run(self, trainer) -> None:
        self.metrics_path = os.path.join(trainer.output_dir, "metrics.jsonl")
        self.run_start = time.perf_counter()
        self.start_step = trainer.state["step"]
        self.progress_written = 0.0
        # (a run resumed after the last step of an epoch goes straight to that epoch's end: no before_epoch)
        self.epoch_start, self.epoch_first_step = self.run_start, self.start_step
        self.epoch_loss_sum, self.epoch_loss_n = 0.0, 0
        if is_main_process():
            # A resumed run redoes what came after its checkpoint: drop those records so they are not doubled.
            truncate_metrics(self.metrics_path, trainer.state["step"], trainer.state["epoch"])

    def before_epoch(self, trainer) -> None:
        self.t_last = self.epoch_start = time.perf_counter()
        self.epoch_first_step = trainer.state["step"]
        self.epoch_loss_sum, self.epoch_loss_n = 0.0, 0
        self.batch_cost = self.reader_cost = 0.0
        self.n = 0
        self.loss_sum = 0.0
        self.loss_n = 0
        if self.progress_bar and is_main_process() and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=trainer.steps_per_epoch,
                initial=trainer.state["step_in_epoch"],
                leave=False,
                desc=f"epoch {trainer.state['epoch'] + 1}/{trainer.epochs}",
            )

    def after_step(self, trainer) -> None:
        now = time.perf_counter()
        self.batch_cost += now - self.t_last
        self.t_last = now
        self.reader_cost += trainer.last_reader_cost
        self.n += 1
        self.loss_sum += trainer.last_loss
        self.loss_n += 1
        self.epoch_loss_sum += trainer.last_loss
        self.epoch_loss_n += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{trainer.last_loss:.4f}")
        s = trainer.state
        if is_main_process() and (now - self.progress_written >= 0.5 or s["step_in_epoch"] == trainer.steps_per_epoch):
            self._write_progress(trainer, now)
        if s["step_in_epoch"] % self.interval != 0 and s["step_in_epoch"] != trainer.steps_per_epoch:
            return
        bc, rc = self.batch_cost / self.n, self.reader_cost / self.n
        ips = trainer.global_batch / max(bc, 1e-9)
        done = s["step"] - self.start_step
        left = trainer.total_steps - s["step"]
        eta = (time.perf_counter() - self.run_start) / max(done, 1) * left
        lr = trainer.last_lr
        mem = ""
        if paddle.device.is_compiled_with_cuda() and "gpu" in paddle.device.get_device():
            mem = f" mem {paddle.device.cuda.max_memory_allocated() / 2**30:.2f}GB"
        if is_main_process():
            logger.info(
                f"epoch {s['epoch'] + 1}/{trainer.epochs} iter {s['step_in_epoch']}/{trainer.steps_per_epoch} "
                f"lr {lr:.6e} loss {trainer.last_loss:.4f} (avg {self.loss_sum / self.loss_n:.4f}) "
                f"batch_cost {bc:.4f}s reader_cost {rc:.4f}s ips {ips:.1f} samples/s eta {_fmt_eta(eta)}{mem}"
            )
            with open(self.metrics_path, "a") as f:
                f.write(
                    json.dumps(
                        {
                            "type": "train",
                            "epoch": s["epoch"] + 1,
                            "step": s["step"],
                            "lr": lr,
                            "loss": trainer.last_loss,
                            "loss_avg": self.loss_sum / self.loss_n,
                            "batch_cost": bc,
                            "reader_cost": rc,
                            "ips": ips,
                        }
                    )
                    + "\n"
                )
        self.batch_cost = self.reader_cost = 0.0
        self.n = 0

    def _write_progress(self, trainer, now: float) -> None:
        """``progress.json``: where the run is, rewritten at most twice a second (tools/demo.py draws its live
        progress bar from it)."""
        s = trainer.state
        done = s["step"] - self.start_step
        record = {
            "epoch": s["epoch"] + 1,
            "epochs": trainer.epochs,
            "iter": s["step_in_epoch"],
            "iters": trainer.steps_per_epoch,
            "loss": trainer.last_loss,
            "eta_seconds": (now - self.run_start) / max(done, 1) * (trainer.total_steps - s["step"]),
        }
        path = os.path.join(trainer.output_dir, "progress.json")
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.replace(tmp, path)
        except OSError:
            pass  # progress is a convenience; the checkpoint writes report real disk errors
        self.progress_written = now

    def after_epoch(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        s = trainer.state
        if is_main_process() and self.epoch_loss_n:
            took = time.perf_counter() - self.epoch_start
            done = s["step"] - self.start_step
            eta = (time.perf_counter() - self.run_start) / max(done, 1) * (trainer.total_steps - s["step"])
            logger.info(
                f"epoch {s['epoch'] + 1}/{trainer.epochs} done: {s['step'] - self.epoch_first_step} steps in "
                f"{_fmt_eta(took)}, loss {self.epoch_loss_sum / self.epoch_loss_n:.4f}, run eta {_fmt_eta(eta)}"
            )


@HOOKS.register
class EvalHook(Hook):
    """Evaluates the raw model and the EMA model every ``interval`` epochs and keeps the best top-1 of each."""

    def __init__(self, interval: int = 1) -> None:
        self.interval = max(int(interval), 1)

    def after_epoch(self, trainer) -> None:
        epoch = trainer.state["epoch"] + 1
        if trainer.val_loader is None or (epoch % self.interval and epoch != trainer.epochs):
            return
        results: Dict[str, Dict[str, float]] = {}
        models = [("", trainer.model_without_ddp)]
        if trainer.ema is not None:
            models.append(("ema", trainer.ema.module))
        for tag, model in models:
            res = evaluate(model, trainer.val_loader, amp_dtype=trainer.amp_eval_dtype)
            results[tag or "model"] = res
            key = "top1_ema" if tag else "top1"
            best = trainer.state["best"]
            improved = res["top1"] > best.get(key, -1.0)
            if improved:
                best[key] = res["top1"]
                best[f"{key}_epoch"] = epoch
            trainer.state["last_eval"][key] = res["top1"]
            trainer.improved[key] = improved
            if is_main_process():
                name = "EMA model" if tag else "model"
                logger.info(
                    f"eval epoch {epoch} {name}: top1 {res['top1']:.3f} top5 {res['top5']:.3f} loss {res['loss']:.4f} "
                    f"({res['count']} images, {res['images_per_sec']:.1f} img/s) best {best[key]:.3f} "
                    f"(epoch {best[f'{key}_epoch']})"
                )
        if is_main_process():
            with open(os.path.join(trainer.output_dir, "metrics.jsonl"), "a") as f:
                f.write(
                    json.dumps(
                        {
                            "type": "eval",
                            "epoch": epoch,
                            "step": trainer.state["step"],
                            **{f"{k}_{m}": v for k, r in results.items() for m, v in r.items()},
                        }
                    )
                    + "\n"
                )
        trainer.last_eval_results = results


@HOOKS.register
class CheckpointHook(Hook):
    """``last.pdparams`` every epoch, ``epoch_N.pdparams`` every ``interval`` epochs (the newest ``keep_last``
    kept; 0 keeps all), ``best.pdparams`` / ``best_ema.pdparams`` (weights and metrics) when top-1 improves, and
    mid-epoch ``last.pdparams`` every ``every_steps`` optimizer steps and when the run stops (signal, max_steps).

    Every process builds the checkpoint (``checkpoint_dict`` is collective); rank 0 writes it. At an epoch end the
    files are written best first and ``last.pdparams`` last: ``last`` is the record a resume starts from, so a crash
    at any write leaves files that a resumed run (which redoes the epoch) brings back to the uninterrupted result."""

    def __init__(self, interval: int = 1, keep_last: int = 3, every_steps: int = 0) -> None:
        self.interval, self.keep_last = max(int(interval), 1), int(keep_last)
        self.every_steps = int(every_steps or 0)
        if self.every_steps < 0:
            raise ConfigError(f"train.save_every_steps must be >= 0 (0 = off), got {every_steps}")

    def after_step(self, trainer) -> None:
        s = trainer.state
        mid_epoch = s["step_in_epoch"] < trainer.steps_per_epoch
        stop = trainer.stop_reason is not None and (trainer.stop_reason != "max_steps" or mid_epoch)
        periodic = self.every_steps > 0 and s["step"] % self.every_steps == 0 and mid_epoch
        if not (stop or periodic):
            return
        ckpt = trainer.checkpoint_dict(epoch_done=False)
        if is_main_process():
            save_atomic(ckpt, os.path.join(trainer.output_dir, "last.pdparams"))
        if stop:
            barrier()  # no process exits (and makes the launcher stop the others) before rank 0 has written

    def after_epoch(self, trainer) -> None:
        epoch = trainer.state["epoch"] + 1
        ckpt = trainer.checkpoint_dict(epoch_done=True)
        if not is_main_process():
            trainer.improved.clear()
            return
        for key, fname, weights in (("top1", "best.pdparams", "model"), ("top1_ema", "best_ema.pdparams", "ema")):
            if trainer.improved.get(key) and ckpt.get(weights) is not None:
                save_atomic(
                    {
                        "model": ckpt[weights],
                        "epoch": epoch,
                        "best": dict(trainer.state["best"]),
                        "config": ckpt["config"],
                        "classes": ckpt.get("classes"),
                    },
                    os.path.join(trainer.output_dir, fname),
                )
        trainer.improved.clear()
        if epoch % self.interval == 0 or epoch == trainer.epochs:
            save_atomic(ckpt, os.path.join(trainer.output_dir, f"epoch_{epoch}.pdparams"))
        save_atomic(ckpt, os.path.join(trainer.output_dir, "last.pdparams"))
        self._prune(trainer.output_dir)

    def _prune(self, output_dir: str) -> None:
        if self.keep_last <= 0:
            return
        found = []
        for name in os.listdir(output_dir):
            if name.startswith("epoch_") and name.endswith(".pdparams"):
                try:
                    found.append((int(name[6:-9]), name))
                except ValueError:
                    continue
        for _, name in sorted(found)[: -self.keep_last]:
            os.remove(os.path.join(output_dir, name))


def _truncate_vdl(path: str, step: int, epochs_done: int) -> None:
    """Rewrite a VisualDL log with the scalars up to a resume point (train tags by step, eval tags by epoch), so the
    resumed run continues one whole curve instead of doubling back over the steps it redoes."""
    from visualdl import LogReader, LogWriter

    with contextlib.redirect_stdout(io.StringIO()):
        reader = LogReader(file_path=path)
        tags = reader.get_tags().get("scalar", [])
        keep = {}
        for tag in tags:
            limit = epochs_done if tag.startswith("eval/") else step
            keep[tag] = [(r.id, r.value, r.timestamp) for r in reader.get_data("scalar", tag) if r.id <= limit]
        tmpdir = f"{path}.dir.tmp{os.getpid()}"
        os.makedirs(tmpdir, exist_ok=True)
        writer = LogWriter(logdir=tmpdir, file_name=os.path.basename(path))
        for tag, rows in keep.items():
            for sid, value, ts in rows:
                writer.add_scalar(tag, value, sid, walltime=ts)
        writer.close()
    os.replace(os.path.join(tmpdir, os.path.basename(path)), path)
    shutil.rmtree(tmpdir, ignore_errors=True)


@HOOKS.register
class VisualDLHook(Hook):
    """Scalars for VisualDL (``visualdl --logdir OUTPUT/vdl --disable-telemetry``): train loss and lr every
    ``interval`` steps, eval top-1/top-5/loss every evaluation."""

    def __init__(self, interval: int = 10) -> None:
        self.interval = max(int(interval), 1)
        self.writer = None

    FILE = "vdlrecords.passl.log"  # one file per run, continued by every resume (VisualDL shows one per folder)

    def before_run(self, trainer) -> None:
        if not is_main_process():
            return
        from visualdl import LogWriter

        logdir = os.path.join(trainer.output_dir, "vdl")
        path = os.path.join(logdir, self.FILE)
        if os.path.isfile(path):
            _truncate_vdl(path, trainer.state["step"], trainer.state["epoch"])
        with contextlib.redirect_stdout(io.StringIO()):  # VisualDL prints a line when it continues a file
            self.writer = LogWriter(logdir=logdir, file_name=self.FILE)

    def after_step(self, trainer) -> None:
        if self.writer is not None and trainer.state["step"] % self.interval == 0:
            self.writer.add_scalar("train/loss", trainer.last_loss, trainer.state["step"])
            self.writer.add_scalar("train/lr", trainer.last_lr, trainer.state["step"])

    def after_epoch(self, trainer) -> None:
        res: Optional[Dict[str, Any]] = getattr(trainer, "last_eval_results", None)
        if self.writer is None or not res:
            return
        for tag, r in res.items():
            for m in ("top1", "top5", "loss"):
                self.writer.add_scalar(f"eval/{tag}_{m}", r[m], trainer.state["epoch"] + 1)
        trainer.last_eval_results = None

    def after_run(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()


@HOOKS.register
class ReconstructionHook(Hook):
    """``train.recon_png: {interval: N, num_images: K}`` for masked-image-modelling models (FCMAE): every N epochs
    (and after the last) rank 0 writes ``recon_epoch_E.png`` to the output folder: K training images, their masked
    inputs and the reconstructions, the same images and masks each time (passl/engine/visualize.py)."""

    def __init__(self, interval: int = 1, num_images: int = 8) -> None:
        self.interval, self.num_images = max(int(interval), 1), max(int(num_images), 1)

    def after_epoch(self, trainer) -> None:
        epoch = trainer.state["epoch"] + 1
        if not is_main_process() or (epoch % self.interval and epoch != trainer.epochs):
            return
        from passl.engine.visualize import write_reconstruction_png

        path = os.path.join(trainer.output_dir, f"recon_epoch_{epoch}.png")
        write_reconstruction_png(
            trainer.model_without_ddp,
            trainer.train_loader.dataset,
            path,
            self.num_images,
            seed=trainer.seed,
            transforms=trainer.cfg.data.train.get("transforms"),
        )
        logger.info(f"reconstructions of {self.num_images} training images: {path}")


@HOOKS.register
class StopOnSignalHook(Hook):
    """SIGINT (Ctrl-C) and SIGTERM (pre-emption, the launcher stopping its workers) ask the run to stop: the trainer
    tells every process at the next step boundary, each finishes that optimizer step, CheckpointHook saves
    ``last.pdparams`` and ``train()`` raises TrainingInterrupted. A second SIGINT aborts at once without saving;
    repeated SIGTERMs (paddle.distributed.launch sends a few) change nothing. Handlers are restored after the run."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.previous: Dict[int, Any] = {}
        self.trainer = None

    def before_run(self, trainer) -> None:
        self.trainer = trainer
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        for sig in self.SIGNALS:
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.trainer.stop_signal is None:
            self.trainer.stop_signal = name
            if is_main_process():
                logger.warning(
                    f"{name} received: finishing the current step, then saving last.pdparams "
                    f"(press Ctrl-C again to abort without saving)"
                )
            return
        if signum == signal.SIGINT:
            self._restore()
            raise KeyboardInterrupt(f"second {name}: aborted without saving")

    def _restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def after_run(self, trainer) -> None:
        self._restore()


def default_hooks(train_cfg: Dict[str, Any]) -> List[Hook]:
    """The standard hook list from the ``train`` section (order matters: eval before checkpoint)."""
    hooks: List[Hook] = [LrSchedulerHook(), EMAHook(), LoggerHook(train_cfg.get("log_interval", 10))]
    hooks.append(EvalHook(train_cfg.get("eval_interval", 1)))
    if train_cfg.get("recon_png"):
        hooks.append(ReconstructionHook(**dict(train_cfg["recon_png"])))
    if train_cfg.get("visualdl", False):
        hooks.append(VisualDLHook(train_cfg.get("log_interval", 10)))
    hooks.append(
        CheckpointHook(
            train_cfg.get("save_interval", 1), train_cfg.get("keep_last", 3), train_cfg.get("save_every_steps", 0)
        )
    )
    hooks.append(StopOnSignalHook())
    return hooks
