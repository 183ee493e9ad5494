"""Confusion-matrix plot (matplotlib, PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_confusion_matrix"]


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str] | None = None,
    *,
    normalize: bool = True,
    path: str | Path | None = None,
    title: str | None = None,
    annotate: bool | None = None,
    dpi: float = 100,
) -> Any:
    """Draw a confusion matrix (rows = true class, columns = predicted class).

    cm: int [K, K]. normalize: colour and print each row as a fraction of its true count (rows
    with no sample stay 0). annotate: print the values in the cells (default when K <= 20).
    Title: overall and mean class accuracy. Writes a PNG to ``path`` when given. Returns the
    matplotlib Figure.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .confusion import class_report

    cm = np.asarray(cm, np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square [K, K] matrix, got shape {list(cm.shape)}")
    k = len(cm)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k} x {k} matrix")
    support = cm.sum(1, keepdims=True)
    shown = np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0) if normalize else cm
    rep = class_report(cm, names)
    size = max(4.0, 0.35 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size, size), dpi=dpi)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1, int(cm.max())))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), names, rotation=90, fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if annotate if annotate is not None else k <= 20:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    v = f"{shown[i, j]:.2f}" if normalize else str(cm[i, j])
                    ax.text(
                        j,
                        i,
                        v,
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black",
                    )
    acc, mca = rep["accuracy"], rep["mean_class_accuracy"]
    sub = f"accuracy {acc:.3f}, mean class accuracy {mca:.3f}" if acc is not None else "no samples"
    ax.set_title(f"{title}\n{sub}" if title else sub, fontsize=10)
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig
