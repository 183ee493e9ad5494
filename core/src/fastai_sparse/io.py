"""Reading and writing geometry files: PLY, OFF, OBJ, STL, point text files, KITTI ``.bin``, NPZ.

Every reader returns a :class:`~fastai_sparse.geometry.Mesh` or
:class:`~fastai_sparse.geometry.PointCloud` with ``meta["path"] = str(path)``, and raises
:class:`~fastai_sparse.errors.DataFormatError` naming the file, the field, what was found and
what was expected when the file is malformed (truncated, missing coordinates, face indices out
of range, non-finite coordinates, wrong column counts, ...). Errors raised by the underlying
libraries (plyfile, trimesh) are re-raised as ``DataFormatError`` with the original exception
kept as ``__cause__``.

Attribute names follow the shared contract: ``"rgb"`` [N, 3] (uint8 when the file stores bytes),
``"normals"`` float32 [N, 3], ``"labels"`` int64 [N], ``"instance"`` int64 [N]; any other
property keeps its own name.

Polygons with more than three corners (PLY, OFF, OBJ) are triangulated as a fan around their
first corner: ``(v0, v1, v2, v3)`` becomes ``(v0, v1, v2), (v0, v2, v3)``; each triangle
carries the face attributes of its polygon.

Writers replace the destination atomically (a temporary file in the same folder, then
:func:`os.replace`), so a crash never leaves a half-written file under the final name.

:func:`load` and :func:`save` dispatch on the file extension.
"""

from __future__ import annotations

import io as _io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataFormatError
from .geometry import Boxes, Keypoints, Mesh, PointCloud

__all__ = [
    "READERS",
    "WRITERS",
    "load",
    "read_bin",
    "read_npz",
    "read_obj",
    "read_off",
    "read_ply",
    "read_points_txt",
    "read_stl",
    "save",
    "write_npz",
    "write_obj",
    "write_off",
    "write_ply",
    "write_points_txt",
]

PathLike = str | os.PathLike

# PLY property groups that become one [N, k] attribute.
_PLY_GROUPS: dict[str, tuple[str, ...]] = {
    "rgb": ("red", "green", "blue"),
    "normals": ("nx", "ny", "nz"),
}
# Scalar PLY property renamed on read (and back on write).
_PLY_RENAME = {"label": "labels"}
_PLY_RENAME_BACK = {v: k for k, v in _PLY_RENAME.items()}
# Attributes that are int64 in memory whatever integer type the file uses.
_INT64_ATTRS = ("labels", "instance")
_FACE_LIST_NAMES = ("vertex_indices", "vertex_index")
# numpy dtype -> PLY type name accepted by plyfile.
_PLY_TYPES = {
    np.dtype(np.int8): "i1",
    np.dtype(np.uint8): "u1",
    np.dtype(np.int16): "i2",
    np.dtype(np.uint16): "u2",
    np.dtype(np.int32): "i4",
    np.dtype(np.uint32): "u4",
    np.dtype(np.float32): "f4",
    np.dtype(np.float64): "f8",
}


# ----------------------------------------------------------------------------------------------
# shared helpers


@contextmanager
def _atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


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


# ----------------------------------------------------------------------------------------------
# PLY


def _native(values: np.ndarray) -> np.ndarray:
    """A copy in native byte order (big-endian PLY data becomes ordinary arrays)."""
    arr = np.array(values)
    return arr.astype(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder not in ("=", "|") else arr


def _ply_attrs(data: np.ndarray, names: Sequence[str], skip: set[str], path: PathLike, element: str):
    """Group the structured array's fields into named attributes (see module docstring)."""
    attrs: dict[str, np.ndarray] = {}
    used = set(skip)
    for attr, group in _PLY_GROUPS.items():
        present = [g for g in group if g in names]
        if len(present) == len(group):
            cols = [_native(data[g]) for g in group]
            arr = np.stack(cols, axis=1).astype(np.result_type(*cols))
            attrs[attr] = arr.astype(np.float32) if attr == "normals" else arr
            used.update(group)
        elif present and attr == "normals":
            raise DataFormatError(
                f"element {element!r} has {present} but not all of {list(group)}; expected all three or none",
                path=path,
                field=attr,
            )
    # stacked multi-column attributes written as name_0, name_1, ... (see write_ply)
    rest = [n for n in names if n not in used]
    stacked: dict[str, list[str]] = {}
    for n in rest:
        m = re.fullmatch(r"(.+)_(\d+)", n)
        if m:
            stacked.setdefault(m.group(1), []).append(n)
    for base, cols in stacked.items():
        expected = [f"{base}_{i}" for i in range(len(cols))]
        if len(cols) >= 2 and cols == expected and base not in names and base not in attrs:
            dtypes = {np.asarray(data[c]).dtype for c in cols}
            if len(dtypes) == 1:
                attrs[base] = np.stack([_native(data[c]) for c in cols], axis=1)
                used.update(cols)
    for n in names:
        if n in used:
            continue
        name = _PLY_RENAME.get(n, n)
        arr = _native(data[n])
        if arr.dtype.kind == "O":
            raise DataFormatError(
                f"element {element!r} has a list property {n!r}; expected scalar properties only",
                path=path,
                field=n,
            )
        if name in attrs:
            raise DataFormatError(
                f"element {element!r} has properties that both map to attribute {name!r}", path=path, field=n
            )
        if name in _INT64_ATTRS:
            arr = _as_int64_exact(arr, path, n)
        attrs[name] = arr
    return attrs


def read_ply(path: PathLike) -> Mesh | PointCloud:
    """Read a PLY file (ascii, binary little or big endian) through plyfile.

    Returns a :class:`Mesh` when the file has at least one face, else a :class:`PointCloud`.

    Vertex properties: ``x, y, z`` -> ``vertices`` / ``xyz`` float32 [N, 3];
    ``red, green, blue`` -> attr ``"rgb"`` [N, 3] (uint8 when stored as uchar, else the file's
    type); ``alpha`` is kept as attr ``"alpha"``; ``nx, ny, nz`` -> ``"normals"`` float32 [N, 3];
    ``label`` -> ``"labels"`` int64 [N]; ``instance`` -> int64; columns ``name_0, name_1, ...``
    (as written by :func:`write_ply` for multi-column attributes) -> ``name`` [N, k]; any other
    scalar property -> an attribute under its own name with the file's dtype.

    Faces: the ``vertex_indices`` (or ``vertex_index``) list -> ``faces`` int64 [F, 3]
    (polygons fan-triangulated); other face properties -> ``face_attrs`` with the same naming.
    Elements other than ``vertex`` and ``face`` are not read; their names are listed in
    ``meta["ply_ignored_elements"]``.
    """
    import plyfile

    path = Path(path)
    try:
        try:
            ply = plyfile.PlyData.read(
                str(path), known_list_len={"face": {name: 3 for name in _FACE_LIST_NAMES}}
            )
        except plyfile.PlyElementParseError:
            # the fast path assumes triangles; polygons of other sizes (or a damaged file) are
            # read row by row, which also gives the precise error for a damaged file
            ply = plyfile.PlyData.read(str(path), mmap=False)
    except FileNotFoundError:
        raise
    except (plyfile.PlyParseError, ValueError, EOFError, IndexError, TypeError, UnicodeDecodeError) as e:
        raise DataFormatError(
            f"cannot parse PLY: {e}; expected a valid PLY file", path=path, field="ply"
        ) from e

    elements = {el.name: el for el in ply.elements}
    if "vertex" not in elements:
        raise DataFormatError(
            f"found elements {list(elements)}, expected an element 'vertex'", path=path, field="vertex"
        )
    vert = elements["vertex"]
    vdata = vert.data
    vnames = [p.name for p in vert.properties]
    missing = [c for c in "xyz" if c not in vnames]
    if missing:
        raise DataFormatError(
            f"vertex properties are {vnames}, expected x, y and z (missing {', '.join(missing)})",
            path=path,
            field=missing[0],
        )
    xyz = np.stack([np.asarray(vdata[c], dtype=np.float64) for c in "xyz"], axis=1)
    _check_xyz(xyz, path)
    xyz = xyz.astype(np.float32)
    vattrs = _ply_attrs(vdata, vnames, {"x", "y", "z"}, path, "vertex")
    meta = _meta(path)
    ignored = [n for n in elements if n not in ("vertex", "face")]
    if ignored:
        meta["ply_ignored_elements"] = ignored
    comments = list(getattr(ply, "comments", []))
    if comments:
        meta["ply_comments"] = comments

    face = elements.get("face")
    if face is None or face.count == 0:
        return PointCloud(xyz, vattrs, meta=meta)
    fnames = [p.name for p in face.properties]
    list_name = next((n for n in _FACE_LIST_NAMES if n in fnames), None)
    if list_name is None:
        raise DataFormatError(
            f"face properties are {fnames}, expected a list 'vertex_indices' or 'vertex_index'",
            path=path,
            field="vertex_indices",
        )
    raw = face.data[list_name]
    polys = np.asarray(raw) if raw.dtype != object else list(raw)
    faces, src = _fan_triangulate(polys, path)
    _check_faces(faces, len(xyz), path, field=list_name)
    fattrs = _ply_attrs(face.data, fnames, {list_name}, path, "face")
    if len(src) != face.count or not np.array_equal(src, np.arange(face.count)):
        fattrs = {k: v[src] for k, v in fattrs.items()}
        meta["triangulated_from"] = int(face.count)
    return Mesh(xyz, faces, vattrs, fattrs, meta=meta)


def _int_ply_dtype(arr: np.ndarray, name: str) -> np.dtype:
    """uint8/uint16 storage for non-negative small ints, else int32 (error past int32)."""
    if arr.size == 0:
        return np.dtype(np.int32)
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0 and hi <= 65535:
        return np.dtype(np.uint16)
    if lo >= -(2**31) and hi < 2**31:
        return np.dtype(np.int32)
    raise DataFormatError(
        f"values range over {lo}..{hi}, expected the int32 range that PLY can store", field=name
    )


def _ply_columns(attrs: dict[str, np.ndarray], n: int, path: PathLike, element: str):
    """Flatten named attributes into (property name, 1-D array) columns for a PLY element."""
    cols: list[tuple[str, np.ndarray]] = []
    for name, arr in attrs.items():
        arr = np.asarray(arr)
        if len(arr) != n:
            raise DataFormatError(
                f"attribute {name!r} of element {element!r} has {len(arr)} rows, expected {n}",
                path=path,
                field=name,
            )
        if arr.dtype.kind == "b":
            arr = arr.astype(np.uint8)
        if name in _INT64_ATTRS or (arr.dtype.kind in "iu" and arr.dtype not in _PLY_TYPES):
            if arr.dtype.kind not in "iu":
                arr = _as_int64_exact(arr, path, name)
            arr = arr.astype(_int_ply_dtype(arr, name))
        if arr.dtype not in _PLY_TYPES:
            raise DataFormatError(
                f"attribute {name!r} has dtype {arr.dtype}, expected a numeric type PLY can store",
                path=path,
                field=name,
            )
        if name in _PLY_GROUPS and arr.ndim == 2 and arr.shape[1] == len(_PLY_GROUPS[name]):
            cols += [(g, arr[:, i]) for i, g in enumerate(_PLY_GROUPS[name])]
        elif arr.ndim == 1:
            cols.append((_PLY_RENAME_BACK.get(name, name), arr))
        elif arr.ndim == 2:
            cols += [(f"{name}_{i}", arr[:, i]) for i in range(arr.shape[1])]
        else:
            raise DataFormatError(
                f"attribute {name!r} has shape {list(arr.shape)}, expected [N] or [N, k]",
                path=path,
                field=name,
            )
    seen: set[str] = set()
    for c, _ in cols:
        if c in seen or c in ("x", "y", "z"):
            raise DataFormatError(f"two attributes map to PLY property {c!r}", path=path, field=c)
        seen.add(c)
    return cols


def write_ply(
    path: PathLike,
    obj: Mesh | PointCloud,
    *,
    binary: bool = True,
    labels: np.ndarray | None = None,
    colors: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write a Mesh or PointCloud as PLY (binary little-endian by default, or ascii).

    Writes x, y, z (float32), every per-vertex attribute (``"rgb"`` -> red, green, blue;
    ``"normals"`` -> nx, ny, nz; ``"labels"`` -> ``label``; multi-column attributes ``a`` [N, k] ->
    ``a_0 .. a_{k-1}``) and, for a mesh, the faces (``list uchar int vertex_indices``) and face
    attributes. ``labels`` [N], ``colors`` [N, 3] and ``extra`` (name -> [N] or [N, k]) add or
    replace vertex attributes for this file only.

    Storage types: integer ``labels``/``instance`` as ``ushort`` when all values are in 0..65535,
    else ``int`` (values beyond int32 are an error); other arrays keep their dtype (uint8 colours
    stay ``uchar``; float colours are written as ``float`` so the round trip is exact); bool as
    ``uchar``. ``read_ply(write_ply(obj))`` gives back the same arrays (``labels``/``instance``
    as int64). ``target`` and ``meta`` are not stored in PLY (use NPZ for those).
    """
    import plyfile

    path = Path(path)
    is_mesh = isinstance(obj, Mesh)
    if not is_mesh and not isinstance(obj, PointCloud):
        raise TypeError(f"write_ply expects a Mesh or PointCloud, got {type(obj).__name__}")
    xyz = obj.vertices if is_mesh else obj.xyz
    n = len(xyz)
    attrs = dict(obj.vertex_attrs if is_mesh else obj.attrs)
    if labels is not None:
        attrs["labels"] = np.asarray(labels)
    if colors is not None:
        attrs["rgb"] = np.asarray(colors)
    attrs.update(extra or {})
    cols = [("x", xyz[:, 0]), ("y", xyz[:, 1]), ("z", xyz[:, 2]), *_ply_columns(attrs, n, path, "vertex")]
    vdata = np.empty(n, dtype=[(c, a.dtype) for c, a in cols])
    for c, a in cols:
        vdata[c] = a
    elements = [plyfile.PlyElement.describe(vdata, "vertex")]
    if is_mesh and len(obj.faces):
        fcols = _ply_columns(dict(obj.face_attrs), len(obj.faces), path, "face")
        if any(c == "vertex_indices" for c, _ in fcols):
            raise DataFormatError(
                "a face attribute is named 'vertex_indices'", path=path, field="vertex_indices"
            )
        fdata = np.empty(
            len(obj.faces), dtype=[("vertex_indices", "i4", (3,))] + [(c, a.dtype) for c, a in fcols]
        )
        fdata["vertex_indices"] = obj.faces.astype(np.int32)
        for c, a in fcols:
            fdata[c] = a
        elements.append(plyfile.PlyElement.describe(fdata, "face", len_types={"vertex_indices": "u1"}))
    ply = plyfile.PlyData(elements, text=not binary, byte_order="<", comments=["written by fastai-sparse"])
    with _atomic_path(path) as tmp:
        ply.write(str(tmp))


# ----------------------------------------------------------------------------------------------
# OFF


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


def read_off(path: PathLike) -> Mesh:
    """Read an OFF mesh: vertices float32 [V, 3], faces int64 [F, 3].

    Accepts comments (``#``), blank lines, counts on the header line or glued to it (the ModelNet
    quirk ``OFF28048 35408 0``), and polygons (fan-triangulated; ``meta["triangulated_from"]``
    holds the polygon count). A face line may carry a colour after its indices (3 or 4 numbers,
    the same on every face): it becomes face attribute ``"rgb"`` (and ``"alpha"``) float32.
    Fewer vertex or face lines than the counts declare, extra lines after them, lines with the
    wrong number of values, indices out of range and non-finite coordinates raise
    ``DataFormatError`` naming the line.
    """
    path = Path(path)
    lines = _data_lines(_read_text(path))
    if not lines:
        raise DataFormatError("the file is empty, expected an 'OFF' header", path=path, field="header")
    lineno, first = lines[0]
    m = re.match(r"^OFF(?=\s|\d|$)(.*)$", first)
    if not m:
        raise DataFormatError(
            f"line {lineno}: found {first[:40]!r}, expected the header 'OFF' (other OFF variants are not supported)",
            path=path,
            field="header",
        )
    rest = m.group(1).split()
    pos = 1
    if not rest:
        if len(lines) < 2:
            raise DataFormatError(
                f"the file ends after line {lineno}, expected a counts line 'V F E'",
                path=path,
                field="counts",
            )
        lineno, counts_line = lines[1]
        rest = counts_line.split()
        pos = 2
    try:
        counts = [int(t) for t in rest]
    except ValueError:
        raise DataFormatError(
            f"line {lineno}: found {' '.join(rest)!r}, expected integer counts 'V F E'",
            path=path,
            field="counts",
        ) from None
    if len(counts) not in (2, 3) or min(counts) < 0:
        raise DataFormatError(
            f"line {lineno}: found counts {counts}, expected three non-negative integers 'V F E'",
            path=path,
            field="counts",
        )
    nv, nf = counts[0], counts[1]
    vlines = lines[pos : pos + nv]
    if len(vlines) < nv:
        last = lines[-1][0] if lines else 0
        raise DataFormatError(
            f"the file ends at line {last} after {len(vlines)} vertex lines, expected {nv} (declared on line "
            f"{lineno})",
            path=path,
            field="vertices",
        )
    vtok = [ln.split() for _, ln in vlines]
    bad = [i for i, t in enumerate(vtok) if len(t) != 3]
    if bad:
        i = bad[0]
        raise DataFormatError(
            f"line {vlines[i][0]}: found {len(vtok[i])} values {vlines[i][1]!r}, expected x y z",
            path=path,
            field="vertices",
        )
    try:
        verts = np.array(vtok, dtype=np.float64).reshape(-1, 3)
    except ValueError as e:
        raise DataFormatError(f"non-numeric vertex coordinate ({e})", path=path, field="vertices") from None
    bad_xyz = ~np.isfinite(verts).all(axis=1)
    if bad_xyz.any():
        i = int(np.flatnonzero(bad_xyz)[0])
        raise DataFormatError(
            f"line {vlines[i][0]}: found {vlines[i][1]!r}, expected finite coordinates",
            path=path,
            field="vertices",
        )
    flines = lines[pos + nv : pos + nv + nf]
    if len(flines) < nf:
        last = lines[-1][0]
        raise DataFormatError(
            f"the file ends at line {last} after {len(flines)} face lines, expected {nf} (declared on line "
            f"{lineno})",
            path=path,
            field="faces",
        )
    extra = lines[pos + nv + nf :]
    if extra:
        raise DataFormatError(
            f"line {extra[0][0]}: found {len(extra)} line(s) after the {nf} declared faces, expected end of file",
            path=path,
            field="faces",
        )
    polys: list[list[int]] = []
    colours: list[list[str]] = []
    for ln, text in flines:
        tok = text.split()
        try:
            k = int(tok[0])
            idx = [int(t) for t in tok[1 : 1 + k]]
        except ValueError:
            raise DataFormatError(
                f"line {ln}: found {text!r}, expected 'n i1 .. in' with integer indices",
                path=path,
                field="faces",
            ) from None
        if k < 3 or len(idx) != k:
            raise DataFormatError(
                f"line {ln}: found {text!r}, expected a count n >= 3 followed by n vertex indices",
                path=path,
                field="faces",
            )
        bad_idx = [i for i in idx if i < 0 or i >= nv]
        if bad_idx:
            raise DataFormatError(
                f"line {ln}: found vertex index {bad_idx[0]}, expected 0..{nv - 1}", path=path, field="faces"
            )
        polys.append(idx)
        colours.append(tok[1 + k :])
    fattrs: dict[str, np.ndarray] = {}
    ncol = {len(c) for c in colours}
    if ncol and ncol != {0}:
        if len(ncol) != 1 or ncol.pop() not in (3, 4):
            i = next(i for i, c in enumerate(colours) if len(c) != len(colours[0]) or len(c) not in (3, 4))
            raise DataFormatError(
                f"line {flines[i][0]}: face lines carry {sorted({len(c) for c in colours})} values after their "
                "indices, expected none on every line or a colour (3 or 4 values) on every line",
                path=path,
                field="faces",
            )
        col = np.array(colours, dtype=np.float32)
        fattrs["rgb"] = col[:, :3]
        if col.shape[1] == 4:
            fattrs["alpha"] = col[:, 3]
    faces, src = _fan_triangulate(polys, path)
    meta = _meta(path)
    if len(src) != nf:
        meta["triangulated_from"] = nf
        fattrs = {k: v[src] for k, v in fattrs.items()}
    return Mesh(verts.astype(np.float32), faces, {}, fattrs, meta=meta)


def _fmt_rows(arr: np.ndarray, fmt: str) -> str:
    if len(arr) == 0:
        return ""
    row = " ".join([fmt] * arr.shape[1])
    buf = _io.StringIO()
    np.savetxt(buf, arr, fmt=row)
    return buf.getvalue()


def write_off(path: PathLike, mesh: Mesh) -> None:
    """Write a Mesh as ascii OFF (vertices with 9 significant digits, so float32 round trips
    exactly). Only vertices and faces are stored."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"write_off expects a Mesh, got {type(mesh).__name__}")
    faces = np.concatenate([np.full((len(mesh.faces), 1), 3, np.int64), mesh.faces], axis=1)
    text = (
        f"OFF\n{len(mesh.vertices)} {len(mesh.faces)} 0\n"
        + _fmt_rows(mesh.vertices.astype(np.float64), "%.9g")
        + _fmt_rows(faces, "%d")
    )
    with _atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# OBJ


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


# ----------------------------------------------------------------------------------------------
# STL (trimesh)


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


# ----------------------------------------------------------------------------------------------
# point text files

_DEFAULT_COLUMNS = {
    3: ("x", "y", "z"),
    4: ("x", "y", "z", "label"),
    6: ("x", "y", "z", "nx", "ny", "nz"),
    7: ("x", "y", "z", "nx", "ny", "nz", "label"),
}
_TXT_GROUPS = {
    "rgb": (("red", "green", "blue"), ("r", "g", "b")),
    "normals": (("nx", "ny", "nz"),),
}


def _scan_txt(lines: list[str], delimiter: str | None) -> Iterator[tuple[int, list[str]]]:
    for i, line in enumerate(lines, start=1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        yield i, [t.strip() for t in s.split(delimiter)] if delimiter else s.split()


def read_points_txt(
    path: PathLike, columns: Sequence[str | None] | None = None, delimiter: str | None = None
) -> PointCloud:
    """Read a text point file: one point per line, whitespace or comma separated.

    ``delimiter=None`` detects a comma from the first data line, else splits on whitespace.
    ``columns`` names every column; by default the layout is inferred from the count:
    3 = ``x y z``; 4 = ``x y z label``; 6 = ``x y z nx ny nz``; 7 = ``x y z nx ny nz label``.
    Names: ``x, y, z`` -> xyz float32 [N, 3]; ``nx, ny, nz`` -> ``"normals"`` float32;
    ``red, green, blue`` (or ``r, g, b``) -> ``"rgb"`` float32; ``label`` -> ``"labels"`` int64
    (values such as ``12.000000`` must be integral); ``instance`` -> int64; ``None`` or ``"_"``
    skips a column; any other name -> float32 attribute. A line with another number of values,
    non-numeric values, fractional labels and non-finite coordinates raise ``DataFormatError``
    naming the line. ``#`` starts a comment.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    data_iter = _scan_txt(lines, None)
    first = next(data_iter, None)
    if first is None:
        raise DataFormatError("no data lines, expected at least one point", path=path, field="xyz")
    if delimiter is None and "," in lines[first[0] - 1]:
        delimiter = ","
    first_tokens = next(_scan_txt(lines[first[0] - 1 : first[0]], delimiter))[1]
    width = len(first_tokens)
    if columns is None:
        if width not in _DEFAULT_COLUMNS:
            raise DataFormatError(
                f"line {first[0]}: found {width} columns, expected 3, 4, 6 or 7 (or pass columns=...)",
                path=path,
                field="columns",
            )
        columns = _DEFAULT_COLUMNS[width]
    columns = tuple(columns)
    try:  # fast path: numpy's C parser; any problem is located by the line scan below
        table = np.loadtxt(_io.StringIO(text), delimiter=delimiter, comments="#", ndmin=2, dtype=np.float64)
        if table.shape[1] != len(columns):
            table = None
    except ValueError:
        table = None
    if table is None:
        table = _scan_table(lines, delimiter, columns, path)

    def where(i: int) -> str:  # line number of data row i (only computed for an error message)
        return f"line {[ln for ln, _ in _scan_txt(lines, delimiter)][i]}"

    return _cloud_from_table(table, columns, path, where)


def _scan_table(lines: list[str], delimiter: str | None, columns: tuple, path: PathLike) -> np.ndarray:
    """Parse line by line, naming the first line with a wrong count or a non-number."""
    rows = list(_scan_txt(lines, delimiter))
    for ln, tok in rows:
        if len(tok) != len(columns):
            raise DataFormatError(
                f"line {ln}: found {len(tok)} values, expected {len(columns)} ({', '.join(map(str, columns))})",
                path=path,
                field="columns",
            )
    try:
        return np.array([tok for _, tok in rows], dtype=np.float64).reshape(len(rows), len(columns))
    except ValueError:
        for ln, tok in rows:
            for t in tok:
                try:
                    float(t)
                except ValueError:
                    raise DataFormatError(
                        f"line {ln}: found {t!r}, expected a number", path=path, field="columns"
                    ) from None
        raise


def _cloud_from_table(
    table: np.ndarray, columns: Sequence[str | None], path: PathLike, where: Callable[[int], str]
) -> PointCloud:
    names = [c for c in columns if c not in (None, "_")]
    dup = {c for c in names if names.count(c) > 1}
    if dup:
        raise DataFormatError(f"columns {sorted(dup)} appear more than once", path=path, field="columns")
    missing = [c for c in "xyz" if c not in names]
    if missing:
        raise DataFormatError(
            f"columns are {list(columns)}, expected x, y and z among them", path=path, field=missing[0]
        )
    col = {c: i for i, c in enumerate(columns) if c not in (None, "_")}
    xyz = table[:, [col["x"], col["y"], col["z"]]]
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{where(i)}: found {xyz[i].tolist()}, expected finite coordinates", path=path, field="xyz"
        )
    used = {"x", "y", "z"}
    attrs: dict[str, np.ndarray] = {}
    for attr, options in _TXT_GROUPS.items():
        for group in options:
            if all(g in col for g in group):
                attrs[attr] = table[:, [col[g] for g in group]].astype(np.float32)
                used.update(group)
                break
    for c in names:
        if c in used:
            continue
        name = _PLY_RENAME.get(c, c)
        if name in _INT64_ATTRS:
            attrs[name] = _as_int64_exact(table[:, col[c]], path, c, where)
        else:
            attrs[name] = table[:, col[c]].astype(np.float32)
    return PointCloud(xyz.astype(np.float32), attrs, meta=_meta(path))


def write_points_txt(path: PathLike, cloud: PointCloud, *, delimiter: str = " ") -> None:
    """Write ``x y z [nx ny nz] [label]`` lines (the layouts :func:`read_points_txt` infers).

    Coordinates and normals use 9 significant digits (exact for float32); labels are integers.
    Other attributes are not written.
    """
    cols = [cloud.xyz.astype(np.float64)]
    fmts = ["%.9g"] * 3
    if "normals" in cloud.attrs:
        cols.append(np.asarray(cloud.attrs["normals"], np.float64))
        fmts += ["%.9g"] * 3
    if "labels" in cloud.attrs:
        cols.append(np.asarray(cloud.attrs["labels"], np.float64)[:, None])
        fmts.append("%d")
    table = np.concatenate(cols, axis=1)
    buf = _io.StringIO()
    np.savetxt(buf, table, fmt=fmts, delimiter=delimiter)
    with _atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# KITTI-style float32 binaries


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


# ----------------------------------------------------------------------------------------------
# NPZ


def _json_default(path: PathLike):
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, os.PathLike):
            return os.fspath(o)
        raise DataFormatError(
            f"meta holds a {type(o).__name__}, expected JSON-serialisable values (str, numbers, lists, dicts)",
            path=path,
            field="meta",
        )

    return default


def write_npz(path: PathLike, obj: Mesh | PointCloud, *, compressed: bool = True) -> None:
    """Store a Mesh or PointCloud losslessly in an ``.npz`` archive (no pickles).

    Keys: ``kind`` ("pointcloud" / "mesh"), ``xyz`` or ``vertices`` + ``faces``, ``attr/<name>``,
    ``face_attr/<name>``, ``meta`` (JSON), ``vector_attrs``, and the target: an int, float, bool
    or numpy array, :class:`Boxes` or :class:`Keypoints` (other targets raise DataFormatError).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    if isinstance(obj, Mesh):
        arrays["kind"] = np.array("mesh")
        arrays["vertices"] = obj.vertices
        arrays["faces"] = obj.faces
        arrays.update({f"attr/{k}": np.asarray(v) for k, v in obj.vertex_attrs.items()})
        arrays.update({f"face_attr/{k}": np.asarray(v) for k, v in obj.face_attrs.items()})
    elif isinstance(obj, PointCloud):
        arrays["kind"] = np.array("pointcloud")
        arrays["xyz"] = obj.xyz
        arrays.update({f"attr/{k}": np.asarray(v) for k, v in obj.attrs.items()})
        arrays["vector_attrs"] = np.array(list(obj.vector_attrs), dtype=str)
    else:
        raise TypeError(f"write_npz expects a Mesh or PointCloud, got {type(obj).__name__}")
    for k, v in arrays.items():
        if v.dtype.kind == "O":
            raise DataFormatError(f"{k!r} holds Python objects, expected a numeric array", path=path, field=k)
    t = obj.target
    if t is None:
        pass
    elif isinstance(t, Boxes):
        arrays["target_kind"] = np.array("boxes")
        for f in ("centers", "sizes", "yaw", "labels"):
            arrays[f"target/{f}"] = getattr(t, f)
    elif isinstance(t, Keypoints):
        arrays["target_kind"] = np.array("keypoints")
        arrays["target/points"] = t.points
        arrays["target/labels"] = t.labels
        if t.axes is not None:
            arrays["target/axes"] = t.axes
    elif isinstance(t, (bool, np.bool_)):
        arrays["target_kind"], arrays["target"] = np.array("bool"), np.array(t)
    elif isinstance(t, (int, np.integer)):
        arrays["target_kind"], arrays["target"] = np.array("int"), np.array(t, dtype=np.int64)
    elif isinstance(t, (float, np.floating)):
        arrays["target_kind"], arrays["target"] = np.array("float"), np.array(t, dtype=np.float64)
    elif isinstance(t, np.ndarray) and t.dtype.kind in "biuf":
        arrays["target_kind"], arrays["target"] = np.array("array"), t
    else:
        raise DataFormatError(
            f"target of type {type(t).__name__} cannot be stored, expected int, float, numeric array, Boxes or "
            "Keypoints",
            path=path,
            field="target",
        )
    arrays["meta"] = np.array(json.dumps(obj.meta, default=_json_default(path)))
    save = np.savez_compressed if compressed else np.savez
    with _atomic_path(path) as tmp, open(tmp, "wb") as fh:
        save(fh, **arrays)


def read_npz(path: PathLike) -> Mesh | PointCloud:
    """Read an archive written by :func:`write_npz` (``meta["path"]`` becomes this file).

    An archive without ``kind`` but with an ``xyz`` array (e.g. from ``np.savez(f, xyz=..,
    labels=..)``) is read as a PointCloud whose other [N, ...] arrays become attributes."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise DataFormatError(f"cannot read NPZ: {e}", path=path, field="npz") from e
    if "kind" not in d:
        if "xyz" not in d:
            raise DataFormatError(
                f"found arrays {sorted(d)}, expected 'xyz' or 'kind'", path=path, field="xyz"
            )
        xyz = d.pop("xyz")
        _check_xyz(np.asarray(xyz, np.float64).reshape(-1, 3), path)
        attrs = {k: v for k, v in d.items() if v.ndim >= 1 and len(v) == len(xyz)}
        if "labels" in attrs:
            attrs["labels"] = _as_int64_exact(attrs["labels"], path, "labels")
        return PointCloud(xyz, attrs, meta=_meta(path))
    try:
        meta = json.loads(str(d["meta"])) if "meta" in d else {}
    except json.JSONDecodeError as e:
        raise DataFormatError(f"meta is not valid JSON ({e})", path=path, field="meta") from e
    meta["path"] = str(path)
    kind = str(d["kind"])
    tkind = str(d["target_kind"]) if "target_kind" in d else None
    target: Any = None
    if tkind == "boxes":
        target = Boxes(*(d[f"target/{f}"] for f in ("centers", "sizes", "yaw", "labels")))
    elif tkind == "keypoints":
        target = Keypoints(d["target/points"], d.get("target/axes"), d["target/labels"])
    elif tkind == "int":
        target = int(d["target"])
    elif tkind == "float":
        target = float(d["target"])
    elif tkind == "bool":
        target = bool(d["target"])
    elif tkind == "array":
        target = d["target"]
    elif tkind is not None:
        raise DataFormatError(f"unknown target kind {tkind!r}", path=path, field="target_kind")
    attrs = {k[5:]: v for k, v in d.items() if k.startswith("attr/")}
    if kind == "mesh":
        verts = d["vertices"]
        _check_xyz(np.asarray(verts, np.float64), path, "vertices")
        _check_faces(d["faces"], len(verts), path)
        fattrs = {k[10:]: v for k, v in d.items() if k.startswith("face_attr/")}
        return Mesh(verts, d["faces"], attrs, fattrs, target=target, meta=meta)
    if kind == "pointcloud":
        _check_xyz(np.asarray(d["xyz"], np.float64), path)
        vec = tuple(str(s) for s in d["vector_attrs"]) if "vector_attrs" in d else ("normals",)
        return PointCloud(d["xyz"], attrs, target=target, meta=meta, vector_attrs=vec)
    raise DataFormatError(f"found kind {kind!r}, expected 'mesh' or 'pointcloud'", path=path, field="kind")


# ----------------------------------------------------------------------------------------------
# dispatch

#: Reader by lower-case file extension.
READERS: dict[str, Callable[..., Mesh | PointCloud]] = {
    ".ply": read_ply,
    ".off": read_off,
    ".obj": read_obj,
    ".stl": read_stl,
    ".txt": read_points_txt,
    ".pts": read_points_txt,
    ".xyz": read_points_txt,
    ".csv": read_points_txt,
    ".npz": read_npz,
    ".bin": read_bin,
}
#: Writer by lower-case file extension.
WRITERS: dict[str, Callable[..., None]] = {
    ".ply": write_ply,
    ".off": write_off,
    ".obj": write_obj,
    ".txt": write_points_txt,
    ".pts": write_points_txt,
    ".xyz": write_points_txt,
    ".npz": write_npz,
}


def _ext(path: Path, table: dict, verb: str) -> Callable:
    ext = path.suffix.lower()
    if ext not in table:
        raise DataFormatError(
            f"found extension {ext or '(none)'!r}, expected one of {', '.join(sorted(table))} to {verb}",
            path=path,
            field="extension",
        )
    return table[ext]


def load(path: PathLike, **kw: Any) -> Mesh | PointCloud:
    """Read any supported geometry file, choosing the reader by extension (see ``READERS``);
    keyword arguments go to the reader (e.g. ``columns=`` for text files)."""
    path = Path(path)
    return _ext(path, READERS, "read")(path, **kw)


def save(path: PathLike, obj: Mesh | PointCloud, **kw: Any) -> None:
    """Write ``obj`` in the format named by the extension of ``path`` (see ``WRITERS``)."""
    path = Path(path)
    return _ext(path, WRITERS, "write")(path, obj, **kw)
