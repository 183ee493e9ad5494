"""Metrics of the plugin (fastai ``Metric`` objects accumulated over the epoch) and the
confusion-matrix summary of a classifier."""

from __future__ import annotations

from typing import Any

import torch
from fastai.learner import Metric

from .confusion import class_report, per_class_accuracy
from .regression import angle_error_degrees

__all__ = ["AngleError", "angle_error", "class_report", "per_class_accuracy"]


class AngleError(Metric):
    """Mean angle in degrees between predicted and true 3-vectors (direction regression), over
    every sample of the epoch (not a mean of batch means)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        """pred, targ: float [B, 3]."""
        err = angle_error_degrees(pred.detach().float().cpu().numpy(), targ.detach().float().cpu().numpy())
        self.total += float(err.sum())
        self.count += len(err)

    def accumulate(self, learn) -> None:
        self.update(learn.pred, learn.yb[0])

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def name(self) -> str:
        return "angle_error"


def angle_error(target_type: Any = None) -> AngleError:
    """Factory of the registered metric ``"angle-error"``."""
    return AngleError()
