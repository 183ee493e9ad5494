"""NPZ archives: a lossless, pickle-free store of a Mesh or PointCloud with its target and
meta."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataFormatError
from ..geometry import Boxes, Keypoints, Mesh, PointCloud
from .common import (
    PathLike,
    _as_int64_exact,
    _atomic_path,
    _check_faces,
    _check_xyz,
    _meta,
)

__all__ = ["read_npz", "write_npz"]


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
