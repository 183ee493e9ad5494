"""Helpers shared by the format modules of :mod:`fastai_sparse.io` (private to the package).

Atomic replacement of a destination (:func:`_atomic_path`), the checks every reader applies
(finite coordinates, face indices in range, integral labels), fan triangulation of polygons,
and the line handling of the text formats (OFF, OBJ, point text files).
"""

from __future__ import annotations

import io as _io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataFormatError

PathLike = str | os.PathLike

# Scalar PLY property renamed on read (and back on write).
_PLY_RENAME = {"label": "labels"}
_PLY_RENAME_BACK = {v: k for k, v in _PLY_RENAME.items()}
# Attributes that are int64 in memory whatever integer type the file uses.
_INT64_ATTRS = ("labels", "instance")


def _atomic_path(path: PathLike):
    """A temporary path next to ``path``, moved over it atomically on success, with the user's
    permissions (see :func:`fastai_sparse.files.atomic_path`)."""
    from ..files import atomic_path

    return atomic_path(path, durable=False)


def _check_xyz(xyz: np.ndarray, path: PathLike, field: str = "xyz") -> None:
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{int(bad.sum())} point(s) have non-finite coordinates (first: point {i} = {xyz[i].tolist()}); "
            "expected finite numbers",
            path=path,
            field=field,
        )


def _check_faces(faces: np.ndarray, n_vertices: int, path: PathLike, field: str = "faces") -> None:
    if len(faces) == 0:
        return
    bad = (faces < 0).any(axis=1) | (faces >= n_vertices).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{int(bad.sum())} face(s) index missing vertices (first: face {i} = {faces[i].tolist()}); "
            f"expected indices in 0..{n_vertices - 1}",
            path=path,
            field=field,
        )


def _fan_triangulate(
    polys: Sequence[np.ndarray] | np.ndarray, path: PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate polygons as fans. Returns (faces int64 [T, 3], source polygon index int64 [T])."""
    if isinstance(polys, np.ndarray) and polys.dtype != object and polys.ndim == 2:
        if polys.shape[1] == 3:
            return polys.astype(np.int64), np.arange(len(polys), dtype=np.int64)
        polys = list(polys)
    lengths = np.fromiter((len(p) for p in polys), dtype=np.int64, count=len(polys))
    if len(lengths) == 0:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64)
    if (lengths < 3).any():
        i = int(np.flatnonzero(lengths < 3)[0])
        raise DataFormatError(
            f"face {i} has {int(lengths[i])} vertex indices, expected at least 3", path=path, field="faces"
        )
    if (lengths == 3).all():
        return np.asarray(np.stack(polys), dtype=np.int64), np.arange(len(polys), dtype=np.int64)
    flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in polys])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ntri = lengths - 2
    src = np.repeat(np.arange(len(polys), dtype=np.int64), ntri)
    # k-th triangle of polygon p: (v0, v_{k+1}, v_{k+2})
    k = np.arange(len(src)) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    base = starts[src]
    faces = np.stack([flat[base], flat[base + k + 1], flat[base + k + 2]], axis=1)
    return faces, src


def _as_int64_exact(
    values: np.ndarray, path: PathLike, field: str, where: Callable[[int], str] | None = None
):
    """Convert label-like values (possibly floats such as 12.000000) to int64, refusing fractions."""
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "b":
        return values.astype(np.int64)
    finite = np.isfinite(values)
    frac = ~finite | (values != np.round(values))
    if frac.any():
        i = int(np.flatnonzero(frac)[0])
        loc = where(i) if where else f"row {i}"
        raise DataFormatError(
            f"{loc}: found {values[i].item()!r}, expected an integral value", path=path, field=field
        )
    return values.astype(np.int64)


def _meta(path: PathLike, **extra: Any) -> dict[str, Any]:
    return {"path": str(path), **extra}


def _data_lines(text: str) -> list[tuple[int, str]]:
    """Non-blank lines with comments (``#`` to end of line) removed, with 1-based line numbers."""
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append((i, line))
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise DataFormatError(f"not a UTF-8 text file ({e})", path=path) from e


def _fmt_rows(arr: np.ndarray, fmt: str) -> str:
    if len(arr) == 0:
        return ""
    row = " ".join([fmt] * arr.shape[1])
    buf = _io.StringIO()
    np.savetxt(buf, arr, fmt=row)
    return buf.getvalue()
