"""Plots: confusion matrix, learning curves.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot), so they work headless and do
not disturb a notebook's backend; pass ``ax`` to draw into an existing axes instead.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import numpy as np


def _save(fig, path: str | os.PathLike | None, dpi: int = 120) -> None:
    if path is None:
        return
    from posrec.io.atomic import atomic_write

    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi,
                    bbox_inches="tight")


def _new_axes(figsize: tuple[float, float]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


def plot_confusion(cm: np.ndarray, class_names: Sequence[str],
                   path: str | os.PathLike | None = None, normalize: bool = True, ax=None,
                   title: str = ""):
    """Confusion matrix (K, K) counts, rows = true class, columns = predicted class.

    ``normalize``: colour and print each row as a fraction of its true class; ``title``: what was
    scored, e.g. "best.pt on test" (heads the plot). Returns the figure.
    """
    cm = np.asarray(cm, dtype=np.float64)
    k = len(class_names)
    if ax is None:
        s = max(4.0, 0.45 * k + 2)
        fig, ax = _new_axes((s + 1, s))
    else:
        fig = ax.figure
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:  # numbers stay legible up to about this many classes
        top = shown.max() if shown.size else 1
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}",
                            ha="center", va="center", fontsize=6,
                            color="white" if shown[i, j] > 0.5 * top else "black")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title + ': ' if title else ''}confusion "
                 f"({'row-normalised' if normalize else 'counts'}), top-1 {acc:.1%}")
    _save(fig, path)
    return fig


def read_metrics_csv(path: str | os.PathLike) -> list[dict]:
    """Rows of a run's ``metrics.csv`` with numbers as floats (empty cells as NaN)."""
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in r.items()}
                for r in csv.DictReader(f)]


def plot_learning_curves(history: Sequence[dict] | str | os.PathLike,
                         path: str | os.PathLike | None = None):
    """Loss, accuracy (train and validation top-1/top-5) and learning rate per epoch.

    ``history``: metrics.csv rows (dicts; a missing or None value is not plotted) or the path of
    a metrics.csv. Returns the figure.
    """
    from matplotlib.figure import Figure

    rows = read_metrics_csv(history) if isinstance(history, (str, os.PathLike)) else list(history)
    col = {k: np.array([np.nan if r.get(k) is None else float(r[k]) for r in rows]) for k in
           ("epoch", "train_loss", "train_acc", "val_top1", "val_top5", "lr")}
    fig = Figure(figsize=(12, 3.5))
    a1, a2, a3 = fig.subplots(1, 3)
    e = col["epoch"]
    a1.plot(e, col["train_loss"], "o-", ms=3, label="train")
    a1.set_title("loss")
    a2.plot(e, col["train_acc"], "o-", ms=3, label="train")
    for k, style in (("val_top1", "s-"), ("val_top5", "^--")):
        ok = ~np.isnan(col[k])
        if ok.any():
            a2.plot(e[ok], col[k][ok], style, ms=3, label=k.replace("_", " "))
    a2.set_ylim(0, 1.02)
    a2.set_title("accuracy")
    a2.legend(fontsize=8)
    a3.plot(e, col["lr"], "o-", ms=3)
    a3.set_title("learning rate (epoch start)")
    for a in (a1, a2, a3):
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return fig
