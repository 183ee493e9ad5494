"""Wavefront OBJ meshes (geometry only), read and written by hand so that every error names
its line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from ..geometry import Mesh
from .common import (
    PathLike,
    _atomic_path,
    _data_lines,
    _fan_triangulate,
    _fmt_rows,
    _meta,
    _read_text,
)

__all__ = ["read_obj", "write_obj"]


def read_obj(path: PathLike) -> Mesh:
    """Read a Wavefront OBJ mesh (geometry only).

    ``v x y z [r g b]`` lines give vertices float32 [V, 3] (and vertex colours, which OBJ stores
    in 0..1, as ``"rgb"`` float32 scaled to 0..255); ``f`` lines give faces in any of the forms
    ``f 1 2 3``, ``f 1/2 ...``, ``f 1/2/3 ...``, ``f 1//3 ...`` with 1-based or negative (relative)
    indices; polygons are fan-triangulated. Texture coordinates, per-corner normals, groups,
    materials, lines and points are not read.
    """
    path = Path(path)
    verts: list[list[str]] = []
    vlines: list[int] = []
    polys: list[list[int]] = []
    for ln, text in _data_lines(_read_text(path)):
        tok = text.split()
        key = tok[0]
        if key == "v":
            if len(tok) not in (4, 5, 7, 8):
                raise DataFormatError(
                    f"line {ln}: found {text!r}, expected 'v x y z' (optionally w, or r g b)",
                    path=path,
                    field="v",
                )
            verts.append(tok[1:4] + (tok[4:7] if len(tok) >= 7 else []))
            vlines.append(ln)
        elif key == "f":
            if len(tok) < 4:
                raise DataFormatError(
                    f"line {ln}: found {text!r}, expected at least 3 vertex references", path=path, field="f"
                )
            idx = []
            nv = len(verts)
            for t in tok[1:]:
                try:
                    i = int(t.split("/", 1)[0])
                except ValueError:
                    raise DataFormatError(
                        f"line {ln}: found {t!r}, expected a vertex reference like 3, 3/1, 3/1/2 or 3//2",
                        path=path,
                        field="f",
                    ) from None
                j = i - 1 if i > 0 else nv + i
                if i == 0 or j < 0 or j >= nv:
                    raise DataFormatError(
                        f"line {ln}: vertex reference {i} points outside the {nv} vertices defined so far",
                        path=path,
                        field="f",
                    )
                idx.append(j)
            polys.append(idx)
    widths = {len(v) for v in verts}
    if len(widths) > 1:
        raise DataFormatError(
            "some vertices have colours and some do not; expected all or none", path=path, field="v"
        )
    try:
        arr = np.array(verts, dtype=np.float64).reshape(len(verts), -1) if verts else np.zeros((0, 3))
    except ValueError as e:
        raise DataFormatError(f"non-numeric vertex value ({e})", path=path, field="v") from None
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"line {vlines[i]}: expected finite coordinates", path=path, field="v")
    vattrs = {}
    if arr.shape[1] == 6:
        vattrs["rgb"] = (arr[:, 3:] * 255.0).astype(np.float32)
    faces, src = _fan_triangulate(polys, path)
    meta = _meta(path)
    if len(src) != len(polys):
        meta["triangulated_from"] = len(polys)
    return Mesh(arr[:, :3].astype(np.float32), faces, vattrs, meta=meta)


def write_obj(path: PathLike, mesh: Mesh) -> None:
    """Write a Mesh as OBJ: ``v x y z [r g b]`` (colour "rgb" divided by 255) and ``f i j k``
    (1-based). Coordinates use 9 significant digits, so float32 vertices round trip exactly."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"write_obj expects a Mesh, got {type(mesh).__name__}")
    v = mesh.vertices.astype(np.float64)
    if "rgb" in mesh.vertex_attrs:
        v = np.concatenate([v, np.asarray(mesh.vertex_attrs["rgb"], np.float64) / 255.0], axis=1)
    vtext = _fmt_rows(v, "%.9g")
    vtext = "".join("v " + line + "\n" for line in vtext.splitlines())
    ftext = "".join("f " + line + "\n" for line in _fmt_rows(mesh.faces + 1, "%d").splitlines())
    with _atomic_path(path) as tmp:
        tmp.write_text("# written by fastai-sparse\n" + vtext + ftext, encoding="utf-8")
