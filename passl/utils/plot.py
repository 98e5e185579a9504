"""A PNG of a run's training curves (loss, lr, eval top-1) from its metrics.jsonl."""

from __future__ import annotations

import json
import os
from typing import List, Optional

__all__ = ["plot_training_curves", "read_metrics", "truncate_metrics"]


def plot_training_curves(metrics_path: str, out_png: str, title: Optional[str] = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = [], []
    for rec in read_metrics(metrics_path):
        (train if rec["type"] == "train" else evals).append(rec)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["step"] for r in train]
    axes[0].plot(steps, [r["loss"] for r in train], lw=0.8, label="loss")
    axes[0].plot(steps, [r["loss_avg"] for r in train], lw=1.5, label="running mean (epoch)")
    axes[0].set(title="training loss", xlabel="optimizer step")
    axes[0].legend()
    axes[1].plot(steps, [r["lr"] for r in train])
    axes[1].set(title="learning rate", xlabel="optimizer step")
    axes[1].ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for key, label in (("model_top1", "model"), ("ema_top1", "EMA")):
        pts = [(r["epoch"], r[key]) for r in evals if key in r]
        if pts:
            axes[2].plot(*zip(*pts), marker="o", label=label)
            for x, y in pts:
                axes[2].annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center")
    axes[2].set(title="test top-1 (%)", xlabel="epoch")
    axes[2].xaxis.get_major_locator().set_params(integer=True)
    axes[2].margins(y=0.15)
    if evals:
        axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    tmp = out_png + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)
    return out_png


def _redo(records: List[dict], rec: dict) -> List[dict]:
    """Drop the records that ``rec`` redoes (a resumed run repeats the steps after its checkpoint)."""
    if rec.get("type") == "train":
        return [r for r in records if r["step"] < rec["step"]]
    return [r for r in records if not (r["type"] != "train" and r["epoch"] >= rec["epoch"])]


def read_metrics(metrics_path: str) -> List[dict]:
    """The records of metrics.jsonl, where a record of a step or epoch that was done again (after a resume from an
    older checkpoint) replaces the earlier ones: one record per train step and per evaluated epoch."""
    records: List[dict] = []
    with open(metrics_path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash
                continue
            records = _redo(records, rec)
            records.append(rec)
    return records


def truncate_metrics(metrics_path: str, step: int, epochs_done: int) -> None:
    """Keep the records up to optimizer step ``step`` and evaluated epoch ``epochs_done`` (a resume point), written
    atomically; a fresh run (step 0) starts an empty file."""
    if not os.path.isfile(metrics_path):
        return
    kept = [
        r
        for r in read_metrics(metrics_path)
        if r["step"] <= step and (r["type"] == "train" or r["epoch"] <= epochs_done)
    ]
    tmp = f"{metrics_path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(tmp, metrics_path)
