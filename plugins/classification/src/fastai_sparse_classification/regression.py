"""Regression on whole shapes: the up-axis direction of tilted synthetic objects.

:class:`UpAxisShapes` wraps core's registered dataset ``synthetic-shapes``
(objects whose up direction is well defined) and sets each cloud's target to a
:class:`~fastai_sparse.targets.VectorTarget` of kind ``"direction"``: the unit vector along the
object's own up axis, which rotates with the points under every spatial augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fastai_sparse.geometry import PointCloud

__all__ = ["UP_AXIS_CLASSES", "UpAxisShapes", "angle_error_degrees"]

#: shapes whose up axis is unambiguous (no top/bottom symmetry)
UP_AXIS_CLASSES: tuple[str, ...] = ("cone", "pyramid", "table", "chair", "lamp", "mug")


class UpAxisShapes(Sequence):
    """Synthetic shapes tilted up to ``max_tilt`` radians, target = their up direction.

    Each item: ``xyz`` float32 [points, 3], ``attrs["normals"]`` float32 [points, 3], ``target`` a
    ``VectorTarget`` (float32 [3], unit length) = ``R @ e_z`` for the object's pose ``R``;
    ``meta["category"]`` the shape class. Seeded like the underlying SyntheticShapes.
    """

    name = "synthetic-up-axis"

    def __init__(
        self,
        n: int = 256,
        split: str = "train",
        seed: int = 0,
        points: int = 1024,
        classes: Sequence[str] = UP_AXIS_CLASSES,
        max_tilt: float = np.radians(60),
    ):
        from fastai_sparse import get_dataset  # core's registered "synthetic-shapes"

        self.shapes = get_dataset("synthetic-shapes")(
            n=n, split=split, seed=seed, points=points, classes=classes, max_tilt=max_tilt
        )
        self.split, self.classes = split, tuple(classes)

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, i):
        from fastai_sparse.targets import VectorTarget

        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        cloud: PointCloud = self.shapes[i]
        up = np.asarray(cloud.meta["pose"]["rotation"], np.float64)[:, 2]
        return cloud.replace(target=VectorTarget(up / np.linalg.norm(up), kind="direction"))

    def __repr__(self) -> str:
        return f"UpAxisShapes(n={len(self)}, split={self.split!r}, classes={list(self.classes)})"


def angle_error_degrees(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Angle in degrees between predicted and true directions, float64 [B] (pred, true: [B, 3];
    the prediction is normalised; a zero prediction counts as 90 degrees)."""
    p, t = np.asarray(pred, np.float64).reshape(-1, 3), np.asarray(true, np.float64).reshape(-1, 3)
    pn = np.linalg.norm(p, axis=1)
    tn = np.linalg.norm(t, axis=1)
    cos = np.einsum("ij,ij->i", p, t) / np.where(pn * tn > 0, pn * tn, 1.0)
    cos = np.where(pn * tn > 0, cos, 0.0)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
