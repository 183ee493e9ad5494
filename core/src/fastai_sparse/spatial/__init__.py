"""Spatial targets and their metrics: boxes, keypoints (with axes) and vectors that move with
the geometry.

- :mod:`fastai_sparse.spatial.targets`: the target types :class:`VectorTarget`,
  :class:`BoundingBoxes` and :class:`KeypointTarget` (check, collate, loss, decode);
- :mod:`fastai_sparse.spatial.metrics`: their epoch-level fastai metrics (mAP, keypoint
  distance, PCK, axis angle error).

Box geometry (IoU, NMS, average precision) is in :mod:`fastai_sparse.box_ops`; the heads and
losses in :mod:`fastai_sparse.models.detection` and :mod:`fastai_sparse.models.keypoints`.
The names below are loaded on first use (the metrics need fastai, the targets torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "BoundingBoxes": "targets",
    "KeypointTarget": "targets",
    "VectorTarget": "targets",
    "DetectionMAP": "metrics",
    "KeypointDistance": "metrics",
    "PCK": "metrics",
    "AxisAngleError": "metrics",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
