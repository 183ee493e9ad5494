"""PLY through plyfile: :func:`read_ply` and :func:`write_ply` (see their docstrings for the
property naming), and :func:`read_plydata` (plyfile's ``PlyData``, with the body checked against
the header) for readers of PLY layouts of their own.

The element counts of the header must describe the body exactly. plyfile reads ``count`` rows
per element and stops: rows beyond the declared counts would be dropped without a word, and a
body holding fewer rows ends in a parse error that blames whatever element is read at that
point. :func:`read_plydata` checks both ways, in ASCII and binary files: too few rows (a
truncated file, or a header declaring more than the body holds), and any data after the last
element (rows beyond the declared counts, or bytes that are no row at all) raise
DataFormatError naming the file, the element, the declared and the found counts. Only
whitespace may follow the last element (a final newline, blank lines). Written here because
plyfile does not look past the declared counts; the check reads the header and counts rows or
bytes, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from ..geometry import Mesh, PointCloud
from .common import (
    _INT64_ATTRS,
    _PLY_RENAME,
    _PLY_RENAME_BACK,
    PathLike,
    _as_int64_exact,
    _atomic_path,
    _check_faces,
    _check_xyz,
    _fan_triangulate,
    _meta,
)

__all__ = ["read_ply", "read_plydata", "write_ply"]

# PLY property groups that become one [N, k] attribute.
_PLY_GROUPS: dict[str, tuple[str, ...]] = {
    "rgb": ("red", "green", "blue"),
    "normals": ("nx", "ny", "nz"),
}
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


# -- the body against the header ---------------------------------------------------------------
_PLY_SIZES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
    "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8,
}  # fmt: skip
_END_HEADER = re.compile(rb"^end_header[ \t]*\r?\n", re.M)


class _Element:
    """An element of a PLY header: name, count and properties ``(name, type, list length type)``."""

    def __init__(self, name: str, count: int):
        self.name, self.count = name, count
        self.props: list[tuple[str, str, str | None]] = []

    @property
    def has_lists(self) -> bool:
        return any(lt is not None for _, _, lt in self.props)

    @property
    def row_bytes(self) -> int:
        """Bytes per row in a binary file (elements without list properties)."""
        return sum(_PLY_SIZES.get(t, 0) for _, t, _ in self.props)

    def fits(self, tokens: list[bytes]) -> bool:
        """Whether an ASCII line of ``tokens`` is one row of this element."""
        i = 0
        for _, _, lt in self.props:
            if i >= len(tokens):
                return False
            if lt is None:
                i += 1
                continue
            try:
                n = int(tokens[i])
            except ValueError:
                return False
            i += 1 + n
        return i == len(tokens)


def _ply_header(path: Path) -> tuple[int, str, list[_Element]] | None:
    """``(body offset, format, elements)`` of a PLY file; None when the header is unreadable
    (plyfile reports that)."""
    with open(path, "rb") as f:
        head = b""
        while True:
            chunk = f.read(1 << 16)
            head += chunk
            m = _END_HEADER.search(head)
            if m or not chunk or len(head) > 1 << 24:
                break
    if not m:
        return None
    fmt, elements = "", []
    for line in head[: m.start()].decode("ascii", "replace").splitlines():
        w = line.split()
        if len(w) >= 2 and w[0] == "format":
            fmt = w[1]
        elif len(w) == 3 and w[0] == "element":
            try:
                elements.append(_Element(w[1], int(w[2])))
            except ValueError:
                return None
        elif len(w) >= 3 and w[0] == "property" and elements:
            if w[1] == "list" and len(w) == 5:
                elements[-1].props.append((w[4], w[3], w[2]))
            else:
                elements[-1].props.append((w[-1], w[1], None))
    return m.end(), fmt, elements


def _declared(elements: list[_Element]) -> str:
    return ", ".join(f"{e.count} {e.name}" for e in elements)


def _count_error(path: Path, element: str, declared: int, found: str, more: str = "") -> DataFormatError:
    return DataFormatError(
        f"the header declares {declared} {element} rows, the body holds {found}{more}; the element counts "
        "must match the body (re-export the file, or fix the count in the header)",
        path=path,
        field=element,
    )


def _check_ascii_body(path: Path, offset: int, elements: list[_Element], parsed: bool = False) -> None:
    """Walk the ASCII body element by element; raise at the first count that disagrees.
    ``parsed``: plyfile read the declared rows, so equal totals mean every count is right."""
    with open(path, "rb") as f:
        f.seek(offset)
        raw = f.read().splitlines()
    if parsed and sum(1 for ln in raw if ln.strip()) == sum(e.count for e in elements):
        return
    lines = [t for t in (ln.split() for ln in raw) if t]
    pos = 0
    for k, el in enumerate(elements):
        nxt = elements[k + 1] if k + 1 < len(elements) else None
        run = 0
        while pos + run < len(lines) and el.fits(lines[pos + run]):
            run += 1
            # rows past the declared count that also fit the next element belong to it
            if run >= el.count and nxt is not None and pos + run < len(lines) and nxt.fits(lines[pos + run]):
                break
        if run < el.count:
            end = "the file ends there" if pos + run >= len(lines) else "then a line that is no row of it"
            raise _count_error(path, el.name, el.count, f"{run} ({end})")
        if run > el.count:
            raise _count_error(path, el.name, el.count, str(run))
        pos += run
    if pos < len(lines):
        last = elements[-1].name if elements else "header"
        raise DataFormatError(
            f"{len(lines) - pos} line(s) follow the last element {last!r} (the header declares "
            f"{_declared(elements)}): the element counts must match the body",
            path=path,
            field=last,
        )


def _body_bytes(ply, elements: list[_Element]) -> int | None:
    """Bytes of the binary body plyfile read (list lengths from the parsed data)."""
    total = 0
    for el in elements:
        if not el.has_lists:
            total += el.count * el.row_bytes
            continue
        data = ply[el.name].data
        for name, t, lt in el.props:
            if lt is None:
                total += el.count * _PLY_SIZES.get(t, 0)
            else:
                col = data[name]
                items = sum(len(r) for r in col) if col.dtype == object else int(np.asarray(col).size)
                total += el.count * _PLY_SIZES.get(lt, 0) + items * _PLY_SIZES.get(t, 0)
    return total


def _check_binary_tail(path: Path, ply, offset: int, elements: list[_Element]) -> None:
    body = _body_bytes(ply, elements)
    extra = path.stat().st_size - offset - body
    if extra <= 0:
        return
    last = elements[-1]
    if not last.has_lists and last.row_bytes and extra % last.row_bytes == 0:
        raise _count_error(path, last.name, last.count, f"{last.count + extra // last.row_bytes}")
    raise DataFormatError(
        f"{extra} bytes follow the last element {last.name!r} (the header declares {_declared(elements)}, "
        f"{body} bytes): the element counts must match the body",
        path=path,
        field=last.name,
    )


def _parse_error_counts(path: Path, exc: Exception) -> DataFormatError | None:
    """The count error behind a plyfile parse error, if the body holds other counts than declared."""
    head = _ply_header(path)
    if head is None:
        return None
    offset, fmt, elements = head
    if fmt == "ascii":
        try:
            _check_ascii_body(path, offset, elements)
        except DataFormatError as e:
            return e
        return None
    el, row = getattr(exc, "element", None), getattr(exc, "row", None)
    if el is None or row is None or "end-of-file" not in str(exc):
        return None
    return _count_error(
        path,
        el.name,
        el.count,
        f"{row} (the file ends in row {row}; it is truncated, or an earlier element holds more rows "
        "than declared)",
    )


def read_plydata(path: PathLike, known_list_len: dict | None = None):
    """``plyfile.PlyData`` of ``path``, with its body checked against the header's element
    counts (see the module docstring). ``known_list_len`` (plyfile's fast path for fixed-length
    lists, e.g. ``{"face": {"vertex_indices": 3}}``) is tried first when given. A malformed file
    raises DataFormatError naming it, keeping plyfile's error as ``__cause__``."""
    import warnings

    import plyfile

    path = Path(path)
    try:
        with warnings.catch_warnings():  # numpy's note on an empty row: the error below says more
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
            ply = _plyfile_read(plyfile, path, known_list_len)
    except FileNotFoundError:
        raise
    except (plyfile.PlyParseError, ValueError, EOFError, IndexError, TypeError, UnicodeDecodeError) as e:
        counts = _parse_error_counts(path, e) if isinstance(e, plyfile.PlyElementParseError) else None
        if counts is not None:
            raise counts from e
        raise DataFormatError(
            f"cannot parse PLY: {e}; expected a valid PLY file", path=path, field="ply"
        ) from e
    head = _ply_header(path)
    if head is not None:
        offset, fmt, elements = head
        if fmt == "ascii":
            _check_ascii_body(path, offset, elements, parsed=True)
        else:
            _check_binary_tail(path, ply, offset, elements)
    return ply


def _plyfile_read(plyfile, path: Path, known_list_len: dict | None):
    if known_list_len is not None:
        try:
            return plyfile.PlyData.read(str(path), known_list_len=known_list_len)
        except plyfile.PlyElementParseError:
            pass  # the fast path assumes fixed list lengths: other lists (or a damaged file)
    # row by row, which also gives the precise error for a damaged file
    return plyfile.PlyData.read(str(path), mmap=False)


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
    ``meta["ply_ignored_elements"]``. Element counts that disagree with the body, either way,
    raise DataFormatError (see :func:`read_plydata`).
    """
    path = Path(path)
    ply = read_plydata(path, known_list_len={"face": {name: 3 for name in _FACE_LIST_NAMES}})

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
