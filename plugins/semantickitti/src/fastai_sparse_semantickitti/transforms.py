"""LiDAR-specific transform: the point's position in the sensor frame as an input feature."""

from __future__ import annotations

import numpy as np

from fastai_sparse.transforms import Transform

__all__ = ["AddPosition"]


class AddPosition(Transform):
    """``attrs[key]`` = float32 [N, 3]: the coordinates times ``scale`` (metres / 10 by default).

    Sparse convolutions see only relative positions; in a LiDAR scan the absolute position in
    the sensor frame carries information the network cannot otherwise get (height above the
    ground, and range, which sets the point density). Put it after the spatial augmentation so
    the feature describes the augmented scan.
    """

    _repr_fields = ("scale", "key")

    def __init__(self, scale: float = 0.1, key: str = "position"):
        if not scale > 0:
            raise ValueError(f"AddPosition: scale must be > 0, got {scale}")
        self.scale, self.key = float(scale), key

    def apply(self, cloud, rng=None):
        return cloud.with_attrs(**{self.key: (cloud.xyz * np.float32(self.scale)).astype(np.float32)})
