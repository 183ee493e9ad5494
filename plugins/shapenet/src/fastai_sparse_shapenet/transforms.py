"""Shape normalisation and the default augmentation of the ShapeNet part tasks.

ShapeNet part shapes are roughly unit size with +y up. Every shape is centred and scaled
into the unit ball (:class:`NormalizeUnitSphere`), then, for training only, anisotropically
scaled, slightly rotated about the up axis and jittered (:func:`train_transforms`).
"""

from __future__ import annotations

import numpy as np

from fastai_sparse.geometry import PointCloud
from fastai_sparse.transforms import Jitter, RandomRotate, RandomScale, apply_affine
from fastai_sparse.transforms.compose import Transform

__all__ = ["NormalizeUnitSphere", "train_transforms", "valid_transforms"]


class NormalizeUnitSphere(Transform):
    """Centre the shape (bounding-box centre, or mean with ``center="mean"``) and scale it so
    the farthest point is at distance ``radius``. Normals keep unit length; point order kept."""

    _repr_fields = ("radius", "center")

    def __init__(self, radius: float = 1.0, center: str = "bbox"):
        if not radius > 0:
            raise ValueError(f"NormalizeUnitSphere: radius must be > 0, got {radius}")
        if center not in ("bbox", "mean"):
            raise ValueError(f"NormalizeUnitSphere: center must be 'bbox' or 'mean', got {center!r}")
        self.radius, self.center = float(radius), center

    def apply(self, cloud: PointCloud, rng=None) -> PointCloud:
        if len(cloud) == 0:
            return cloud
        x = cloud.xyz.astype(np.float64)
        c = (x.min(0) + x.max(0)) / 2 if self.center == "bbox" else x.mean(0)
        r = float(np.linalg.norm(x - c, axis=1).max())
        s = self.radius / r if r > 0 else 1.0
        return apply_affine(cloud, np.eye(3) * s, -c * s)


def train_transforms(
    scale: tuple[float, float] = (0.8, 1.2),
    max_angle: float = np.pi / 12,
    jitter: float = 0.005,
    up: str = "y",
) -> list:
    """Unit-ball normalisation, anisotropic scale in ``scale``, rotation about the ``up`` axis
    by at most ``max_angle`` radians, Gaussian jitter of std ``jitter`` (clipped at 4 std)."""
    return [
        NormalizeUnitSphere(),
        RandomScale(scale, anisotropic=True),
        RandomRotate(up, (-max_angle, max_angle)),
        Jitter(jitter, clip=4 * jitter),
    ]


def valid_transforms() -> list:
    """Unit-ball normalisation only (no training noise)."""
    return [NormalizeUnitSphere()]
