"""Summaries of a confusion matrix (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["class_report", "per_class_accuracy"]


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class, float64 [K]: ``cm[k, k] / cm[k].sum()`` (NaN for a class with no
    sample). cm: int [K, K], rows = true class, columns = predicted class."""
    cm = np.asarray(cm, np.float64)
    support = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.where(support > 0, support, 1), np.nan)


def class_report(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"accuracy", "mean_class_accuracy", "per_class": {name: recall or None}, "support":
    {name: count}}`` from a confusion matrix (rows truth, columns prediction). Mean class
    accuracy averages the classes that have samples."""
    cm = np.asarray(cm, np.int64)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(cm))]
    acc = per_class_accuracy(cm)
    total = int(cm.sum())
    return {
        "accuracy": float(np.trace(cm) / total) if total else None,
        "mean_class_accuracy": float(np.nanmean(acc)) if np.isfinite(acc).any() else None,
        "per_class": {n: (None if np.isnan(a) else float(a)) for n, a in zip(names, acc)},
        "support": {n: int(s) for n, s in zip(names, cm.sum(1))},
    }
