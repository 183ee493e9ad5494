"""KITTI-style headerless float32 binaries (``.bin``, e.g. Velodyne scans)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from ..geometry import PointCloud
from .common import (
    PathLike,
)
from .text import _cloud_from_table

__all__ = ["read_bin"]


def read_bin(path: PathLike, columns: Sequence[str | None] = ("x", "y", "z", "intensity")) -> PointCloud:
    """Read a headerless float32 little-endian binary of ``len(columns)`` values per point
    (KITTI Velodyne: x, y, z, reflectance). Column naming as in :func:`read_points_txt`.
    A file size that is not a multiple of ``4 * len(columns)`` bytes raises ``DataFormatError``."""
    path = Path(path)
    columns = tuple(columns)
    size = path.stat().st_size
    row = 4 * len(columns)
    if size % row:
        raise DataFormatError(
            f"file size {size} bytes is not a multiple of {row} ({len(columns)} float32 values per point: "
            f"{list(columns)})",
            path=path,
            field="size",
        )
    table = np.fromfile(path, dtype="<f4").reshape(-1, len(columns))
    return _cloud_from_table(table, columns, path, lambda i: f"point {i}")
