"""Class names that travel with a model, and the per-class evaluation report.

- ``classes.txt`` (one name per line, line i = label i) sits beside an export and in a training run's folder;
  training checkpoints hold the same list under ``"classes"`` (:func:`checkpoint_classes` reads it).
- :func:`class_report` turns per-image (label, top-k) rows into a per-class accuracy table and a confusion matrix;
  :func:`write_class_report` writes them as JSON (and the matrix as a PNG) with the per-image predictions.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from passl.registry import ConfigError

__all__ = [
    "CLASSES_FILE",
    "write_class_names",
    "read_class_names",
    "checkpoint_classes",
    "class_report",
    "write_class_report",
    "plot_confusion",
    "model_class_names",
    "eval_class_report",
]

CLASSES_FILE = "classes.txt"


def write_class_names(folder: str, names: Sequence[str]) -> str:
    """``folder/classes.txt``: one class name per line, line i = label i (written atomically)."""
    bad = [n for n in names if "\n" in str(n) or not str(n).strip()]
    if bad:
        raise ConfigError(f"class names must be non-empty single lines, got {bad[0]!r}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CLASSES_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(f"{n}\n" for n in names)
    os.replace(tmp, path)
    return path


def read_class_names(folder_or_file: str) -> Optional[List[str]]:
    """The names of ``folder/classes.txt`` (or of that file itself); None when there is none."""
    path = os.path.join(folder_or_file, CLASSES_FILE) if os.path.isdir(folder_or_file) else folder_or_file
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n") for ln in f if ln.strip()]


def checkpoint_classes(path: str) -> Optional[List[str]]:
    """The class list a PASSL checkpoint (``.pdparams`` written by the trainer) carries, else None. Read with the
    allow-list unpickler; any file that is not such a checkpoint gives None."""
    if not (isinstance(path, str) and path.endswith(".pdparams") and os.path.isfile(path)):
        return None
    from passl.weights.paddle_pickle import load_paddle

    try:
        ckpt = load_paddle(path)
    except Exception:
        return None
    names = ckpt.get("classes") if isinstance(ckpt, dict) else None
    return [str(n) for n in names] if isinstance(names, (list, tuple)) and names else None


def class_report(
    labels: Sequence[int], preds: Sequence[int], names: Optional[Sequence[str]], num_classes: int
) -> Dict[str, Any]:
    """Per-class accuracy (recall), precision and counts, and the confusion matrix (rows: true label, columns:
    predicted). Labels < 0 (unreadable images skipped by the dataset) are left out."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    keep = y >= 0
    y, p = y[keep], p[keep]
    k = int(num_classes)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    names = list(names) if names is not None else [str(i) for i in range(k)]
    rows = []
    for i in range(k):
        n, hit, predicted = int(cm[i].sum()), int(cm[i, i]), int(cm[:, i].sum())
        rows.append(
            {
                "label": i,
                "class": names[i],
                "images": n,
                "correct": hit,
                "accuracy": 100.0 * hit / n if n else None,
                "precision": 100.0 * hit / predicted if predicted else None,
            }
        )
    total = int(cm.sum())
    return {
        "classes": names,
        "images": total,
        "top1": 100.0 * int(np.trace(cm)) / total if total else None,
        "per_class": rows,
        "confusion_matrix": cm.tolist(),
    }


def plot_confusion(report: Dict[str, Any], out_png: str, title: str = "confusion matrix") -> str:
    """The confusion matrix of :func:`class_report` as a PNG (row-normalised colours, counts written in cells when
    there are at most 30 classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report["confusion_matrix"], dtype=np.float64)
    names = report["classes"]
    k = len(names)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = min(4 + 0.45 * k, 40)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        ax.set_xticks(range(k), names, rotation=90)
        ax.set_yticks(range(k), names)
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "k")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    tmp = f"{out_png}.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)
    return out_png


def write_class_report(
    out_dir: str,
    labels: Sequence[int],
    topk: Sequence[Sequence[int]],
    names: Optional[Sequence[str]],
    num_classes: int,
    paths: Optional[Sequence[str]] = None,
    prefix: str = "",
) -> Dict[str, str]:
    """Write ``predictions.json`` (per image: path, true class, top-k classes), ``per_class.json`` (per-class
    accuracy table + confusion matrix) and ``confusion_matrix.png`` into ``out_dir``, each name after ``prefix``;
    returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    name = (lambda i: names[i] if names is not None and 0 <= i < len(names) else str(i)) if names else str
    preds = []
    for n, (lab, top) in enumerate(zip(labels, topk)):
        row = {"path": paths[n] if paths is not None else None, "label": int(lab)}
        row["true"] = name(int(lab)) if lab >= 0 else None
        row["top"] = [name(int(t)) for t in top]
        row["top_labels"] = [int(t) for t in top]
        row["correct"] = bool(lab >= 0 and int(top[0]) == int(lab))
        preds.append(row)
    report = class_report(labels, [int(t[0]) for t in topk], names, num_classes)
    out = {
        "predictions": os.path.join(out_dir, f"{prefix}predictions.json"),
        "per_class": os.path.join(out_dir, f"{prefix}per_class.json"),
        "confusion_png": os.path.join(out_dir, f"{prefix}confusion_matrix.png"),
    }
    for key, obj in (("predictions", preds), ("per_class", report)):
        tmp = f"{out[key]}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False)
        os.replace(tmp, out[key])
    plot_confusion(report, out["confusion_png"])
    return out


def model_class_names(predictor: Any, fallback: Optional[List[str]], explicit: bool = False) -> Optional[List[str]]:
    """The names to print for a predictor: an explicit list (``--class-names``) wins; else the names the model
    carries (checkpoint or export ``classes.txt``), with ImageNet-1k wnids shown as their readable names; else
    ``fallback``."""
    carried = getattr(predictor, "class_names", None)
    if explicit or not carried:
        return fallback
    from passl.data import imagenet_class_names, imagenet_wnids

    return imagenet_class_names() if list(carried) == imagenet_wnids() else list(carried)


def eval_class_report(
    dataset: Any,
    rows: Sequence[Sequence[int]],
    names: Optional[Sequence[str]],
    num_classes: int,
    out_dir: str,
    prefix: str = "eval_",
) -> Optional[Dict[str, str]]:
    """tools/eval.py's per-class report from its per-image rows ``(dataset index, label, top1, ..., topk)``: the
    rows of every process are gathered (each image once), and rank 0 writes :func:`write_class_report`'s files,
    named after ``prefix`` (tools/eval.py: its report's name), into ``out_dir``. Returns their paths on rank 0, None
    elsewhere."""
    from passl.data.datasets.classes import _unwrap
    from passl.utils.dist import all_gather_json, is_main_process

    every = [r for part in all_gather_json([list(map(int, r)) for r in rows]) for r in part]
    if not is_main_process():
        return None
    every.sort(key=lambda r: r[0])
    base = _unwrap(dataset)
    samples = getattr(base, "samples", None)
    if names is None:
        names = getattr(base, "classes", None)
    paths = [samples[r[0]][0] if samples is not None else None for r in every]
    out = write_class_report(
        out_dir, [r[1] for r in every], [r[2:] for r in every], names, num_classes, paths=paths, prefix=prefix
    )
    return out
