"""``RoomCrop``: random horizontal windows of large rooms, for training."""

from __future__ import annotations

import numpy as np

from fastai_sparse.geometry import PointCloud
from fastai_sparse.transforms import Transform

__all__ = ["RoomCrop"]


class RoomCrop(Transform):
    """Keep a random ``extent`` x ``extent`` window (metres, along x and y; full height) of a
    room that is larger than that; a smaller room (or a room smaller along one axis) passes
    whole (along that axis). The window is centred on a random point of the room, then moved
    inside the room's bounds, so it is never empty and always ``extent`` wide.
    ``meta["points_cropped"]`` counts the points removed."""

    random = True
    _repr_fields = ("extent",)

    def __init__(self, extent: float = 6.0):
        if not extent > 0:
            raise ValueError(f"RoomCrop: extent must be > 0, got {extent!r}")
        self.extent = float(extent)

    def apply(self, cloud: PointCloud, rng: np.random.Generator) -> PointCloud:
        if len(cloud) == 0:
            return cloud
        xy = cloud.xyz[:, :2].astype(np.float64)
        lo, hi = xy.min(0), xy.max(0)
        big = (hi - lo) > self.extent
        if not big.any():
            return cloud
        c = xy[rng.integers(len(xy))]
        start = np.clip(c - self.extent / 2, lo, hi - self.extent)
        keep = np.ones(len(xy), bool)
        for k in np.flatnonzero(big):
            keep &= (xy[:, k] >= start[k]) & (xy[:, k] < start[k] + self.extent)
        out = cloud.select(keep)
        meta = dict(out.meta)
        meta["points_cropped"] = int(meta.get("points_cropped", 0)) + int(len(keep) - keep.sum())
        return out.replace(meta=meta)
