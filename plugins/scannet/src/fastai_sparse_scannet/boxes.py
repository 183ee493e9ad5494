"""Axis-aligned instance boxes from aggregation + segments, after the scene's axis alignment."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .constants import nyu40_to_detection

__all__ = ["align_points", "instance_boxes"]


def align_points(xyz: np.ndarray, axis_align: np.ndarray | None) -> np.ndarray:
    """float32 [N, 3]: ``xyz`` (float [N, 3]) mapped by the 4x4 ``axisAlignment`` matrix
    (row-major, acting on column vectors ``[x, y, z, 1]``); unchanged when it is None."""
    if axis_align is None:
        return np.asarray(xyz, np.float32)
    m = np.asarray(axis_align, np.float64).reshape(4, 4)
    return (np.asarray(xyz, np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)


def instance_boxes(
    xyz: np.ndarray, instance: np.ndarray, instance_nyu40: Mapping[int, int], min_points: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Axis-aligned boxes of the detection-class instances.

    xyz: float [N, 3] (already aligned); instance: int [N] object id per vertex (-1 = none);
    instance_nyu40: object id -> NYU40 id. Objects whose NYU40 id is not one of the 18
    detection classes, or with fewer than ``min_points`` vertices, give no box.

    Returns ``centers`` float32 [K, 3], ``sizes`` float32 [K, 3] (max - min of the object's
    vertices), ``labels`` int64 [K] (detection class 0..17), ``object_ids`` int64 [K], sorted by
    object id.
    """
    xyz = np.asarray(xyz, np.float64)
    instance = np.asarray(instance, np.int64)
    centers, sizes, labels, ids = [], [], [], []
    for oid in sorted(instance_nyu40):
        cls = int(nyu40_to_detection(np.array([instance_nyu40[oid]]))[0])
        if cls < 0:
            continue
        pts = xyz[instance == oid]
        if len(pts) < max(1, min_points):
            continue
        lo, hi = pts.min(0), pts.max(0)
        centers.append((lo + hi) / 2)
        sizes.append(hi - lo)
        labels.append(cls)
        ids.append(oid)
    return (
        np.asarray(centers, np.float32).reshape(-1, 3),
        np.asarray(sizes, np.float32).reshape(-1, 3),
        np.asarray(labels, np.int64),
        np.asarray(ids, np.int64),
    )
