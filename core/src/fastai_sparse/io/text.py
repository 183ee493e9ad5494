"""Point text files (``.txt``, ``.pts``, ``.xyz``, ``.csv``): one point per line.

Parsed with numpy's C reader; when that fails, a line-by-line scan names the first bad line.
"""

from __future__ import annotations

import io as _io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from ..geometry import PointCloud
from .common import (
    _INT64_ATTRS,
    _PLY_RENAME,
    PathLike,
    _as_int64_exact,
    _atomic_path,
    _meta,
    _read_text,
)

__all__ = ["read_points_txt", "write_points_txt"]

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
