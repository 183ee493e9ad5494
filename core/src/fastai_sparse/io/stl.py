"""STL meshes through trimesh (read only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from ..geometry import Mesh
from .common import (
    PathLike,
    _check_faces,
    _check_xyz,
    _meta,
)

__all__ = ["read_stl"]


def read_stl(path: PathLike) -> Mesh:
    """Read an STL mesh through trimesh (ascii or binary; vertices are not merged)."""
    import trimesh

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        tm = trimesh.load(str(path), file_type="stl", force="mesh", process=False)
    except Exception as e:  # trimesh raises many unrelated types on bad input
        raise DataFormatError(f"cannot parse STL: {e}", path=path, field="stl") from e
    verts = np.asarray(tm.vertices, dtype=np.float64)
    _check_xyz(verts, path, "vertices")
    faces = np.asarray(tm.faces, dtype=np.int64).reshape(-1, 3)
    _check_faces(faces, len(verts), path)
    return Mesh(verts.astype(np.float32), faces, meta=_meta(path))
