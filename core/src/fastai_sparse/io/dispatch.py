""":func:`load` and :func:`save`: choose the reader or writer by file extension."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DataFormatError
from ..geometry import Mesh, PointCloud
from .common import PathLike
from .kitti import read_bin
from .npz import read_npz, write_npz
from .obj import read_obj, write_obj
from .off import read_off, write_off
from .ply import read_ply, write_ply
from .stl import read_stl
from .text import read_points_txt, write_points_txt

__all__ = ["READERS", "WRITERS", "load", "save"]

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
