"""OFF meshes (ModelNet's format), read and written by hand: the format is a few lines of
text, and the ModelNet quirks (counts glued to the header) need a reader that names the line
of every error, which trimesh's does not."""

from __future__ import annotations

import re
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

__all__ = ["read_off", "write_off"]


Lines = list[tuple[int, str]]  # (1-based line number, text without comments), data lines only


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
    nv, nf, pos, counts_line = _off_counts(lines, path)
    verts = _off_vertices(lines[pos : pos + nv], nv, counts_line, lines, path)
    flines = lines[pos + nv : pos + nv + nf]
    _off_check_face_count(flines, nf, counts_line, lines[pos + nv + nf :], lines, path)
    polys, colours = _off_faces(flines, nv, path)
    fattrs = _off_face_colours(colours, flines, path)
    faces, src = _fan_triangulate(polys, path)
    meta = _meta(path)
    if len(src) != nf:
        meta["triangulated_from"] = nf
        fattrs = {k: v[src] for k, v in fattrs.items()}
    return Mesh(verts.astype(np.float32), faces, {}, fattrs, meta=meta)


def _off_counts(lines: Lines, path: Path) -> tuple[int, int, int, int]:
    """Parse the header and the counts: (V, F, index of the first vertex line, counts line number)."""
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
    return counts[0], counts[1], pos, lineno


def _off_vertices(vlines: Lines, nv: int, counts_line: int, lines: Lines, path: Path) -> np.ndarray:
    """The ``nv`` vertex lines as float64 [V, 3], each checked for three finite numbers."""
    if len(vlines) < nv:
        last = lines[-1][0] if lines else 0
        raise DataFormatError(
            f"the file ends at line {last} after {len(vlines)} vertex lines, expected {nv} (declared on line "
            f"{counts_line})",
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
    return verts


def _off_check_face_count(
    flines: Lines, nf: int, counts_line: int, extra: Lines, lines: Lines, path: Path
) -> None:
    """Exactly ``nf`` face lines, and nothing after them."""
    if len(flines) < nf:
        last = lines[-1][0]
        raise DataFormatError(
            f"the file ends at line {last} after {len(flines)} face lines, expected {nf} (declared on line "
            f"{counts_line})",
            path=path,
            field="faces",
        )
    if extra:
        raise DataFormatError(
            f"line {extra[0][0]}: found {len(extra)} line(s) after the {nf} declared faces, expected end of file",
            path=path,
            field="faces",
        )


def _off_faces(flines: Lines, nv: int, path: Path) -> tuple[list[list[int]], list[list[str]]]:
    """Parse ``n i1 .. in [colour]`` lines: (polygons as index lists, the tokens after each)."""
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
    return polys, colours


def _off_face_colours(colours: list[list[str]], flines: Lines, path: Path) -> dict[str, np.ndarray]:
    """Per-face ``"rgb"`` (and ``"alpha"``) float32 when every face line carries 3 (or 4) values
    after its indices; {} when none does."""
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
    return fattrs


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
