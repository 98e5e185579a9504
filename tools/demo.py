"""The Fashion-MNIST demo, end to end: train -> evaluate -> export (verified) -> predict -> report and curves.

    python tools/demo.py [-c configs/demo/fashion_mnist_convnext.yaml] [--output output/fashion_mnist_demo]
                         [--nproc 2] [-o key=value ...]

Training runs as --nproc CPU processes through paddle.distributed.launch (gloo on 127.0.0.1), the same launcher
as a multi-GPU run. The console shows the trainer's own lines (a live progress bar per epoch on a terminal); the
launcher's and Paddle's messages go to OUTPUT/launch_logs/. Everything lands in the output folder: train.log,
checkpoints, config.yaml, metrics.jsonl, eval_report.json, inference/, samples/, training_curves.png and
demo_report.json. A second run over a finished demo reuses it and changes nothing (use a new --output to start
afresh); Ctrl-C during training saves the run after the current step, and the next run resumes it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import warnings

# Paddle warns on import that it has no ccache (it matters only when compiling C++ extensions): not our line.
warnings.filterwarnings("ignore", message="No ccache found")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_common.py

from _common import local_launch  # noqa: E402

from passl.data.datasets.fashion_mnist import CLASSES, FashionMNIST  # noqa: E402
from passl.engine.resume import finished_run  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402
from passl.utils.plot import plot_training_curves, read_metrics  # noqa: E402

_PREFIX = re.compile(r"^\[[^\]]*\] \w+ passl[.\w]*: ")
_ITER = re.compile(r"^epoch (\d+)/(\d+) iter (\d+)/(\d+) ")


class _Console:
    """Shows the trainer's own lines while it runs: new lines of train.log, and on a terminal a live tqdm bar per
    epoch drawn from progress.json (the per-step log lines then only feed the bar)."""

    def __init__(self, out: str) -> None:
        self.log, self.progress = os.path.join(out, "train.log"), os.path.join(out, "progress.json")
        self.offset = os.path.getsize(self.log) if os.path.isfile(self.log) else 0
        self.seen_progress = os.path.getmtime(self.progress) if os.path.isfile(self.progress) else None
        self.tty = sys.stdout.isatty()
        self.bar, self.bar_epoch, self.partial = None, None, ""

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def poll(self) -> None:
        if os.path.isfile(self.log):
            with open(self.log) as f:
                f.seek(self.offset)
                chunk = f.read()
                self.offset = f.tell()
            lines = (self.partial + chunk).split("\n")
            self.partial = lines.pop()  # an unfinished last line waits for its end
            for line in lines:
                text = _PREFIX.sub("", line)
                if self.tty and _ITER.match(text):
                    continue  # the bar shows it
                self._print(text)
        if self.tty and os.path.isfile(self.progress):
            try:
                mtime = os.path.getmtime(self.progress)
                if mtime == self.seen_progress:
                    return
                with open(self.progress) as f:
                    p = json.load(f)
            except (OSError, ValueError):
                return
            self._bar(p)

    def _bar(self, p: dict) -> None:
        from tqdm import tqdm

        if self.bar_epoch != p["epoch"]:
            self.close()
            self.bar = tqdm(total=p["iters"], desc=f"epoch {p['epoch']}/{p['epochs']}", unit="step", leave=True)
            self.bar_epoch = p["epoch"]
        self.bar.n = p["iter"]
        eta = time.strftime("%H:%M:%S", time.gmtime(max(p["eta_seconds"], 0)))
        self.bar.set_postfix_str(f"loss {p['loss']:.4f}, run eta {eta}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _run(title: str, cmd, timings: dict) -> None:
    print(f"\n=== {title}: {' '.join(cmd)}", flush=True)
    t = time.time()
    res = subprocess.run(cmd, cwd=ROOT)
    timings[title] = round(time.time() - t, 1)
    if res.returncode != 0:
        raise SystemExit(f"demo: step '{title}' failed with exit code {res.returncode}")


def _messages(path: str) -> list:
    """The one-line messages tools/train.py ends with (error, stop), from a worker's log."""
    if not os.path.isfile(path):
        return []
    keep = ("error:", "stopped by", "aborted by")
    return [ln.rstrip() for ln in open(path, errors="replace") if ln.startswith(keep)]


def _train(cmd, out: str, nproc: int, timings: dict) -> None:
    """Run training with its launcher's and Paddle's output in out/launch_logs/, showing our own lines."""
    log_dir = os.path.join(out, "launch_logs")
    os.makedirs(log_dir, exist_ok=True)
    worker0 = os.path.join(log_dir, "workerlog.0")
    sink = os.path.join(log_dir, "launcher.log") if nproc > 1 else worker0
    where = f"{sink} and {log_dir}/workerlog.N" if nproc > 1 else sink
    print(f"\n=== train: {' '.join(cmd)}\n    (launcher and Paddle messages: {where})", flush=True)
    console = _Console(out)
    t = time.time()
    with open(sink, "a") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        interrupted = False
        while proc.poll() is None:
            try:
                console.poll()
                time.sleep(0.25)
            except KeyboardInterrupt:  # the launcher got the same Ctrl-C: it stops its workers, which save first
                if interrupted:
                    proc.kill()
                    raise
                interrupted = True
                console._print("demo: Ctrl-C: training stops after the current step and saves (Ctrl-C again to kill)")
        console.poll()
        console.close()
    timings["train"] = round(time.time() - t, 1)
    if proc.returncode != 0:
        for line in _messages(worker0):
            print(line, file=sys.stderr)
        raise SystemExit(
            f"demo: step 'train' failed with exit code {proc.returncode} (details: {where}); run the same command "
            f"again to resume"
        )


def _reuse(out: str, ckpt: str) -> int:
    """A finished demo in ``out``: say so, show its results, change nothing."""
    path = os.path.join(out, "demo_report.json")
    with open(path) as f:
        report = json.load(f)
    train_s = (report.get("seconds") or {}).get("train")
    print(
        f"demo: {out} holds a finished demo run ({ckpt}, trained in {train_s}s); reusing it, nothing was retrained "
        f"or rewritten. To start afresh: rm -rf {out}, or pass --output NEW_DIR"
    )
    print(
        f"=== done: test top-1 {report['test_top1']:.2f}% top-5 {report['test_top5']:.2f}% on "
        f"{report['test_images']} images; curves {report.get('curves')}; report {path}"
    )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default="configs/demo/fashion_mnist_convnext.yaml")
    p.add_argument("--output", default=None, help="output folder (default: the config's output_dir)")
    p.add_argument("--nproc", type=int, default=min(2, os.cpu_count() or 1), help="training processes")
    p.add_argument("-o", "--override", action="append", default=[])
    args = p.parse_args(argv)
    start = time.time()
    try:
        cfg = get_config(
            os.path.join(ROOT, args.config) if not os.path.isabs(args.config) else args.config, args.override
        )
        out = os.path.abspath(args.output or cfg.output_dir)
        test = FashionMNIST(cfg.data.val.dataset.get("root", "/usr/share/datasets/fashion-mnist"), "test")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    overrides = [x for o in args.override for x in ("-o", o)] + ["-o", f"output_dir={out}"]
    py, timings = sys.executable, {}
    train = local_launch(
        ["tools/train.py", "-c", args.config, *overrides], args.nproc, os.path.join(out, "launch_logs")
    )
    done = finished_run(out, cfg, args.nproc)
    reused = None
    if done and os.path.isfile(os.path.join(out, "demo_report.json")):
        return _reuse(out, done)
    if done:  # trained, but the later steps did not finish: redo those only
        print(f"demo: {out} holds a finished training run ({done}); not retraining (to start afresh: rm -rf {out})")
        reused = done
    else:
        os.makedirs(out, exist_ok=True)
        _train(train, out, args.nproc, timings)
    # The final weights, not best.pdparams: "best" was picked on these same test images, so its score would be
    # optimistic. Fashion-MNIST has no separate validation split.
    final = os.path.join(out, "last.pdparams")
    _run(
        "evaluate",
        [
            py,
            "tools/eval.py",
            "-c",
            args.config,
            *overrides,
            "--weights",
            final,
            "--report",
            os.path.join(out, "eval_report.json"),
        ],
        timings,
    )
    _run(
        "export",
        [
            py,
            "tools/export_model.py",
            "-c",
            args.config,
            *overrides,
            "--weights",
            final,
            "--output",
            os.path.join(out, "inference"),
        ],
        timings,
    )
    samples = os.path.join(out, "samples")
    os.makedirs(samples, exist_ok=True)
    truth = {}
    for i in range(0, 10000, 1250):  # eight test images, saved as the PNG files a user would have
        img, label = test[i]
        name = f"test_{i:05d}.png"
        img.save(os.path.join(samples, name))
        truth[name] = CLASSES[label]
    _run(
        "predict",
        [
            py,
            "tools/predict.py",
            "-c",
            args.config,
            *overrides,
            "--model-dir",
            os.path.join(out, "inference"),
            "--topk",
            "3",
            samples,
        ],
        timings,
    )
    print("true classes: " + ", ".join(f"{k}: {v}" for k, v in truth.items()))
    png = plot_training_curves(
        os.path.join(out, "metrics.jsonl"), os.path.join(out, "training_curves.png"), "ConvNeXt on Fashion-MNIST"
    )
    with open(os.path.join(out, "eval_report.json")) as f:
        evals = json.load(f)
    epochs = [r for r in read_metrics(os.path.join(out, "metrics.jsonl")) if r["type"] == "eval"]
    report = {
        "test_top1": evals["top1"],
        "test_top5": evals["top5"],
        "test_images": evals["count"],
        "per_epoch_top1": [e["model_top1"] for e in epochs],
        "seconds": timings,  # without "train" when the training was reused from an earlier run
        "train_reused_from": reused,
        "total_seconds": round(time.time() - start, 1),
        "processes": args.nproc,
        "curves": png,
    }
    tmp = os.path.join(out, f"demo_report.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, os.path.join(out, "demo_report.json"))
    print(
        f"\n=== done in {report['total_seconds']:.0f}s: test top-1 {evals['top1']:.2f}% top-5 {evals['top5']:.2f}% "
        f"on {evals['count']} images; curves {png}; report {os.path.join(out, 'demo_report.json')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
