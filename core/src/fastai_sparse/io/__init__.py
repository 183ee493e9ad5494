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

Layout: one module per format (``ply``, ``off``, ``obj``, ``stl``, ``text`` for point text
files, ``kitti`` for ``.bin``, ``npz``), ``dispatch`` (``load``, ``save``, ``READERS``,
``WRITERS``) and ``common`` (atomic writes, checks, triangulation, text lines). Every public
name is importable from ``fastai_sparse.io``; the submodules are private to the package.
"""

from __future__ import annotations

from .dispatch import READERS, WRITERS, load, save
from .kitti import read_bin
from .npz import read_npz, write_npz
from .obj import read_obj, write_obj
from .off import read_off, write_off
from .ply import read_ply, read_plydata, write_ply
from .stl import read_stl
from .text import read_points_txt, write_points_txt

__all__ = [
    "READERS",
    "WRITERS",
    "load",
    "read_bin",
    "read_npz",
    "read_obj",
    "read_off",
    "read_ply",
    "read_plydata",
    "read_points_txt",
    "read_stl",
    "save",
    "write_npz",
    "write_obj",
    "write_off",
    "write_ply",
    "write_points_txt",
]
