"""Transforms for whole shapes (plain ``(cloud, rng) -> cloud`` callables, never mutating input)."""

from __future__ import annotations

import numpy as np

from fastai_sparse.geometry import PointCloud
from fastai_sparse.transforms import Transform

__all__ = ["NormalizeShape"]


class NormalizeShape(Transform):
    """Centre the bounding box at the origin and scale uniformly into the unit sphere (core's
    :func:`~fastai_sparse.transforms.mesh.normalize`), so a voxelizer ``scale`` means voxels per
    shape radius whatever the file's units. Idempotent; normals are unchanged (uniform scale)."""

    def apply(self, cloud: PointCloud, rng: np.random.Generator | None = None) -> PointCloud:
        from fastai_sparse.transforms.mesh import normalize

        return normalize(cloud)
