"""ShapeNet part metrics exactly as the field reports them.

Per shape: predict the argmax over the shape's category's parts only; IoU of every part of
the category, where a part absent from both the prediction and the truth counts 1; the
shape's score is the mean of those IoUs.

- instance mIoU: mean over shapes of the shape's score;
- class mIoU: mean over categories (present in the evaluated set) of the mean score of
  that category's shapes;
- a per-category table (shapes, mean score).

:class:`InstanceMIoU` and :class:`ClassMIoU` are fastai ``Metric`` objects accumulating the
per-category sums of shape scores over the epoch (summed over ranks under DDP); they read
``learn.pred`` (per-point logits [N_total, 50]), ``learn.yb[0]`` (int64 [N_total] global part
ids) and ``learn.xb[0]["point_offsets"]`` / ``["category"]`` to group points by shape (the
category falls back to the one of the shape's labels when the batch has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from fastai.learner import Metric

from .categories import CATEGORIES, NUM_CATEGORIES, get_category
from .parts import categories_from_labels, mask_logits, point_categories

__all__ = [
    "ClassMIoU",
    "InstanceMIoU",
    "ShapeNetMIoU",
    "class_miou",
    "format_category_table",
    "instance_miou",
    "shape_iou",
    "shapenet_scores",
]


def shape_iou(pred: np.ndarray, true: np.ndarray, category: int | str, ignore_index: int = -100) -> float:
    """The ShapeNet score of one shape: mean IoU over its category's parts, a part absent from
    both ``pred`` and ``true`` (int [N] global part ids) counting 1. Points whose truth is
    ``ignore_index`` are left out."""
    cat = get_category(category)
    pred, true = np.asarray(pred), np.asarray(true)
    keep = true != ignore_index
    pred, true = pred[keep], true[keep]
    ious = []
    for p in cat.part_ids:
        a, b = pred == p, true == p
        union = int((a | b).sum())
        ious.append(1.0 if union == 0 else int((a & b).sum()) / union)
    return float(np.mean(ious))


def shapenet_scores(
    preds: Sequence[np.ndarray], trues: Sequence[np.ndarray], categories: Sequence[int | str]
) -> dict[str, Any]:
    """``{"instance_miou", "class_miou", "per_category": {name: (shapes, mean)}, "shape_ious"}``
    from per-shape predicted and true global part ids (label arrays, not logits)."""
    scores = [shape_iou(p, t, c) for p, t, c in zip(preds, trues, categories)]
    cats = [get_category(c).index for c in categories]
    sums, counts = np.zeros(NUM_CATEGORIES), np.zeros(NUM_CATEGORIES, np.int64)
    np.add.at(sums, cats, scores)
    np.add.at(counts, cats, 1)
    return _summary(sums, counts) | {"shape_ious": scores}


def _summary(sums: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    n = int(counts.sum())
    present = counts > 0
    per_cat = {
        c.name: (int(counts[c.index]), float(sums[c.index] / counts[c.index]))
        for c in CATEGORIES
        if present[c.index]
    }
    return {
        "instance_miou": float(sums.sum() / n) if n else float("nan"),
        "class_miou": float(np.mean(sums[present] / counts[present])) if n else float("nan"),
        "per_category": per_cat,
    }


def format_category_table(summary: dict[str, Any]) -> str:
    """A plain-text table: one line per category (shapes, mIoU) then the two means."""
    lines = [f"{'category':<12} {'shapes':>6} {'mIoU':>7}"]
    for name, (n, v) in summary["per_category"].items():
        lines.append(f"{name:<12} {n:>6} {v:>7.4f}")
    lines.append(
        f"{'instance':<12} {sum(n for n, _ in summary['per_category'].values()):>6} {summary['instance_miou']:>7.4f}"
    )
    lines.append(f"{'class':<12} {len(summary['per_category']):>6} {summary['class_miou']:>7.4f}")
    return "\n".join(lines)


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class ShapeNetMIoU(Metric):
    """Accumulates per-category sums of shape scores over an epoch (see the module docstring).

    ``summary`` gives instance mIoU, class mIoU and the per-category table; subclasses pick
    the scalar ``value``.
    """

    _key = "instance_miou"
    _name = "shapenet_miou"

    def __init__(self, ignore_index: int = -100):
        self.ignore_index = int(ignore_index)
        self.reset()

    def reset(self) -> None:
        self.sums = np.zeros(NUM_CATEGORIES)
        self.counts = np.zeros(NUM_CATEGORIES, np.int64)

    def update(
        self,
        pred: torch.Tensor,
        targ: torch.Tensor,
        point_offsets: torch.Tensor,
        category: torch.Tensor | None = None,
    ) -> None:
        """Add one batch: pred float [N, 50] logits (masked to each shape's category before
        the argmax) or int64 [N] part ids; targ int64 [N]; point_offsets int64 [B+1];
        category int64 [B] (default: from the labels)."""
        po = point_offsets.detach().cpu().long()
        if category is None:
            category = categories_from_labels(targ, po, self.ignore_index)
        category = category.detach().cpu().long()
        pred = pred.detach().cpu()
        if pred.is_floating_point():
            pred = mask_logits(pred.float(), point_categories(po, category)).argmax(1)
        pred, targ = pred.numpy(), targ.detach().cpu().numpy()
        bounds = po.tolist()
        for b in range(len(bounds) - 1):
            c = int(category[b])
            if c < 0:
                continue
            s = shape_iou(
                pred[bounds[b] : bounds[b + 1]], targ[bounds[b] : bounds[b + 1]], c, self.ignore_index
            )
            self.sums[c] += s
            self.counts[c] += 1

    def accumulate(self, learn) -> None:
        x = learn.xb[0]
        self.update(
            learn.pred, learn.yb[0], x["point_offsets"], x.get("category") if hasattr(x, "get") else None
        )

    @property
    def summary(self) -> dict[str, Any]:
        sums, counts = self.sums, self.counts
        if _dist_ready() and torch.distributed.get_world_size() > 1:
            t = torch.from_numpy(np.concatenate([sums, counts.astype(np.float64)]))
            torch.distributed.all_reduce(t)
            sums, counts = t[:NUM_CATEGORIES].numpy(), t[NUM_CATEGORIES:].numpy().round().astype(np.int64)
        return _summary(sums, counts)

    def table(self) -> str:
        """The per-category table of the accumulated epoch."""
        return format_category_table(self.summary)

    @property
    def value(self) -> float:
        return self.summary[self._key]

    @property
    def name(self) -> str:
        return self._name


class InstanceMIoU(ShapeNetMIoU):
    """Mean over shapes of each shape's mean part IoU (ShapeNet rule)."""

    _key, _name = "instance_miou", "shapenet_instance_miou"


class ClassMIoU(ShapeNetMIoU):
    """Mean over categories of the mean shape score of the category's shapes."""

    _key, _name = "class_miou", "shapenet_class_miou"


def instance_miou(target_type: Any = None) -> InstanceMIoU:
    """Factory registered as ``shapenet-instance-miou``."""
    return InstanceMIoU(getattr(target_type, "ignore_index", -100))


def class_miou(target_type: Any = None) -> ClassMIoU:
    """Factory registered as ``shapenet-class-miou``."""
    return ClassMIoU(getattr(target_type, "ignore_index", -100))
