"""fastai metrics for spatial targets, accumulated over the whole epoch.

- :class:`DetectionMAP` (``map-0.25``, ``map-0.5``): decodes each batch's outputs with the
  target type (:meth:`BoundingBoxes.detections`, NMS included), keeps every sample's
  detections and ground truth, and computes mAP once at the end of the epoch with
  :func:`fastai_sparse.box_ops.mean_average_precision` (never a mean of per-batch values).
- :class:`KeypointDistance` (``mean-distance``): mean Euclidean keypoint error.
- :class:`PCK` (``pck``, ``pck-0.05``, ``pck-0.2``): fraction of keypoints within a distance
  threshold (cloud units).
- :class:`AxisAngleError` (``axis-angle-error``): mean angle in degrees between predicted and
  true unit axes.

Every factory takes the target type, as the registry calls them. Under DDP these metrics see
only their own process's samples (mAP needs every detection; gather predictions in one
process to score a distributed run).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _fastai  # noqa: F401  (fastai without its import-time deprecation warning: first)

# isort: split
from fastai.learner import Metric

from ..box_ops import mean_average_precision

__all__ = [
    "PCK",
    "AxisAngleError",
    "DetectionMAP",
    "KeypointDistance",
    "axis_angle_error",
    "map_025",
    "map_05",
    "mean_distance",
    "pck",
    "pck_005",
    "pck_02",
]


def _np(t) -> np.ndarray:
    return t.detach().float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


class DetectionMAP(Metric):
    """mAP at 3D IoU ``iou`` over the epoch (per class, greedy matching by score, all-point
    interpolated precision; rotated IoU unless ``rotated=False``). ``value`` is a float (nan
    when the epoch had no ground-truth box); :attr:`last` keeps the full result (AP per class).
    """

    def __init__(self, target_type: Any, iou: float = 0.25, rotated: bool = True):
        self.target_type, self.iou, self.rotated = target_type, float(iou), bool(rotated)
        self.reset()

    def reset(self) -> None:
        self.preds: list[dict[str, np.ndarray]] = []
        self.gt_boxes: list[np.ndarray] = []
        self.gt_labels: list[np.ndarray] = []
        self.last: dict | None = None

    def update(self, pred: torch.Tensor, y: dict) -> None:
        """pred: head outputs [B, C, 12 + K]; y: ``BoundingBoxes.collate`` dict."""
        dets = self.target_type.detections(pred)
        boxes, labels, batch = _np(y["boxes"]), _np(y["labels"]).astype(np.int64), _np(y["batch"])
        for i, d in enumerate(dets):
            self.preds.append(d)
            self.gt_boxes.append(boxes[batch == i].reshape(-1, 7))
            self.gt_labels.append(labels[batch == i])

    def accumulate(self, learn) -> None:
        self.update(learn.pred, learn.yb[0])

    @property
    def value(self) -> float | None:
        if not self.preds:
            return None
        self.last = mean_average_precision(
            [d["boxes"] for d in self.preds],
            [d["scores"] for d in self.preds],
            [d["labels"] for d in self.preds],
            self.gt_boxes,
            self.gt_labels,
            iou_threshold=self.iou,
            num_classes=len(self.target_type.classes),
            rotated=self.rotated,
        )
        return self.last["map"]

    @property
    def name(self) -> str:
        return f"map-{self.iou:g}"


class _KeypointErrors(Metric):
    """Accumulates per-keypoint distances (and axis angles) over the epoch."""

    _name = "keypoints"

    def __init__(self, target_type: Any):
        self.target_type = target_type
        self.reset()

    def reset(self) -> None:
        self.dist: list[np.ndarray] = []
        self.angle: list[np.ndarray] = []

    def update(self, pred: torch.Tensor, y: dict) -> None:
        """pred: head outputs [B, K * (7|4)]; y: ``KeypointTarget.collate`` dict."""
        out = self.target_type.split_output(pred.detach())
        self.dist.append(_np(torch.linalg.norm(out["points"].float() - y["points"].float().cpu(), dim=-1)))
        if "axes" in out and "axes" in y:
            a = torch.nn.functional.normalize(out["axes"].float(), dim=-1)
            t = torch.nn.functional.normalize(y["axes"].float().cpu(), dim=-1)
            self.angle.append(_np(torch.rad2deg(torch.arccos((a * t).sum(-1).clamp(-1, 1)))))

    def accumulate(self, learn) -> None:
        self.update(learn.pred.cpu(), {k: v.cpu() for k, v in learn.yb[0].items()})

    def distances(self) -> np.ndarray:
        """float [N_samples, K] distances seen this epoch."""
        return np.concatenate(self.dist) if self.dist else np.zeros((0, 0))

    @property
    def name(self) -> str:
        return self._name


class KeypointDistance(_KeypointErrors):
    """Mean Euclidean distance between predicted and true keypoints (cloud units)."""

    _name = "mean-distance"

    @property
    def value(self) -> float | None:
        d = self.distances()
        return float(d.mean()) if d.size else None


class PCK(_KeypointErrors):
    """Percentage of correct keypoints: fraction within ``threshold`` (cloud units)."""

    def __init__(self, target_type: Any, threshold: float | None = None):
        self.threshold = float(
            threshold if threshold is not None else getattr(target_type, "pck_threshold", 0.1)
        )
        super().__init__(target_type)

    @property
    def name(self) -> str:
        return f"pck-{self.threshold:g}"

    @property
    def value(self) -> float | None:
        d = self.distances()
        return float((d <= self.threshold).mean()) if d.size else None


class AxisAngleError(_KeypointErrors):
    """Mean angle (degrees) between predicted and true keypoint axes."""

    _name = "axis-angle-error"

    @property
    def value(self) -> float | None:
        if not self.angle:
            return None
        return float(np.concatenate(self.angle).mean())


def map_025(target_type: Any) -> DetectionMAP:
    """mAP at 3D IoU 0.25."""
    return DetectionMAP(target_type, 0.25)


def map_05(target_type: Any) -> DetectionMAP:
    """mAP at 3D IoU 0.5."""
    return DetectionMAP(target_type, 0.5)


def mean_distance(target_type: Any) -> KeypointDistance:
    return KeypointDistance(target_type)


def pck(target_type: Any) -> PCK:
    """PCK at the target type's ``pck_threshold`` (default 0.1)."""
    return PCK(target_type)


def pck_005(target_type: Any) -> PCK:
    return PCK(target_type, 0.05)


def pck_02(target_type: Any) -> PCK:
    return PCK(target_type, 0.2)


def axis_angle_error(target_type: Any) -> AxisAngleError:
    return AxisAngleError(target_type)
