"""Geometry containers: :class:`PointCloud`, :class:`Mesh`, and the spatial target values
:class:`Boxes` and :class:`Keypoints`.

All containers are numpy-backed and cheap to copy: :meth:`PointCloud.replace` makes a
shallow copy, and no transform mutates its input in place (transforms build new arrays and
call ``replace``).

Spatial transforms go through one mechanism, :meth:`PointCloud.map_points`: a point map
``fn: float [K, 3] -> float [K, 3]`` and, when the map is affine, its linear part. Everything
spatial follows the same map: the coordinates, every per-point vector attribute listed in
``vector_attrs`` (normals, transformed by the inverse-transpose of the local Jacobian and
renormalised), and a spatial target (``Boxes``, ``Keypoints``) through its own
``map_points``. For a non-affine map (elastic distortion) the local Jacobian is estimated by
central differences of ``fn``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataFormatError, ShapeError

__all__ = ["Boxes", "Keypoints", "Mesh", "PointCloud", "PointMap", "jacobian"]

#: A point map: float [K, 3] -> float [K, 3].
PointMap = Callable[[np.ndarray], np.ndarray]

_JAC_EPS = 1e-3


def jacobian(fn: PointMap, pts: np.ndarray, eps: float = _JAC_EPS) -> np.ndarray:
    """Local Jacobians ``float64 [K, 3, 3]`` of the point map ``fn`` at ``pts`` [K, 3],
    by central differences (``J[k, i, j] = d fn_i / d x_j``)."""
    pts = np.asarray(pts, dtype=np.float64)
    k = len(pts)
    steps = np.concatenate([pts[None] + eps * np.eye(3)[:, None], pts[None] - eps * np.eye(3)[:, None]])
    out = np.asarray(fn(steps.reshape(-1, 3)), dtype=np.float64).reshape(6, k, 3)
    jac = (out[:3] - out[3:]) / (2 * eps)  # [j, K, i]
    return np.transpose(jac, (1, 2, 0))


def _transform_vectors(
    vectors: np.ndarray, linear: np.ndarray | None, jac: np.ndarray | None, normal: bool
) -> np.ndarray:
    """Transform direction vectors [K, 3] by a linear map (or per-point Jacobians).

    Normals use the inverse-transpose; plain directions (axes) use the map itself. The result
    is renormalised to unit length where the input was non-zero.
    """
    v = np.asarray(vectors, dtype=np.float64)
    if linear is not None:
        m = np.linalg.inv(linear).T if normal else np.asarray(linear, dtype=np.float64)
        out = v @ m.T
    else:
        m = np.linalg.inv(jac).transpose(0, 2, 1) if normal else jac
        out = np.einsum("kij,kj->ki", m, v)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    src = np.linalg.norm(v, axis=1, keepdims=True)
    out = np.where(norm > 0, out / np.maximum(norm, 1e-12) * np.where(src > 0, src, 1.0), out)
    return out.astype(np.float32)


@dataclass(eq=False)
class Boxes:
    """K oriented 3D boxes: a spatial target that moves with the points.

    centers: float32 [K, 3]; sizes: float32 [K, 3] (extent along the box's own x, y, z, > 0);
    yaw: float32 [K] (rotation about +z, radians); labels: int64 [K].
    """

    centers: np.ndarray
    sizes: np.ndarray
    yaw: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        self.centers = np.asarray(self.centers, dtype=np.float32).reshape(-1, 3)
        k = len(self.centers)
        self.sizes = np.asarray(self.sizes, dtype=np.float32).reshape(-1, 3)
        self.yaw = np.asarray(self.yaw, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        for name in ("sizes", "yaw", "labels"):
            if len(getattr(self, name)) != k:
                raise ShapeError(f"Boxes: {name} has {len(getattr(self, name))} rows, centers has {k}")
        if k and not (np.isfinite(self.centers).all() and np.isfinite(self.sizes).all()):
            raise DataFormatError("box centers and sizes must be finite", field="boxes")
        if k and (self.sizes <= 0).any():
            bad = int(np.flatnonzero((self.sizes <= 0).any(1))[0])
            raise DataFormatError(
                f"box {bad} has size {self.sizes[bad].tolist()}; every size must be > 0", field="boxes"
            )

    def __len__(self) -> int:
        return len(self.centers)

    def select(self, idx) -> Boxes:
        return Boxes(self.centers[idx], self.sizes[idx], self.yaw[idx], self.labels[idx])

    def corners(self) -> np.ndarray:
        """float32 [K, 8, 3] corner coordinates."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float32)
        local = signs[None] * self.sizes[:, None] / 2
        c, s = np.cos(self.yaw)[:, None], np.sin(self.yaw)[:, None]
        x = local[..., 0] * c - local[..., 1] * s
        y = local[..., 0] * s + local[..., 1] * c
        return np.stack([x, y, local[..., 2]], -1) + self.centers[:, None]

    def map_points(self, fn: PointMap, linear: np.ndarray | None = None) -> Boxes:
        """Move the boxes with a point map.

        Centres follow ``fn``. The box's local frame follows the linear part (or the Jacobian at
        the centre): the new yaw is the direction of the mapped x axis projected on the xy
        plane, and each size is scaled by the length of its mapped axis. Rotations about z,
        flips, scaling and translation are exact; shears and elastic maps are approximated
        by the local linearisation (boxes stay z-aligned oriented boxes).
        """
        if len(self) == 0:
            return self
        centers = np.asarray(fn(self.centers.astype(np.float64)), np.float64)
        jac = (
            np.broadcast_to(np.asarray(linear, np.float64), (len(self), 3, 3))
            if linear is not None
            else jacobian(fn, self.centers)
        )
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        axes = np.stack(
            [
                np.stack([c, s, 0 * c], -1),
                np.stack([-s, c, 0 * c], -1),
                np.tile([0.0, 0.0, 1.0], (len(self), 1)),
            ],
            1,
        )  # [K, 3 axes, 3]
        mapped = np.einsum("kij,kaj->kai", jac, axes)
        lengths = np.linalg.norm(mapped, axis=2)
        yaw = np.arctan2(mapped[:, 0, 1], mapped[:, 0, 0])
        return Boxes(centers, self.sizes * lengths, yaw, self.labels)


@dataclass(eq=False)
class Keypoints:
    """K keypoints per sample, optionally with a unit direction (axis) each.

    points: float32 [K, 3]; axes: float32 [K, 3] unit vectors or None; labels: int64 [K]
    (keypoint kind, e.g. 0 = tip, 1 = corner).
    """

    points: np.ndarray
    axes: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self):
        self.points = np.asarray(self.points, dtype=np.float32).reshape(-1, 3)
        k = len(self.points)
        if self.axes is not None:
            self.axes = np.asarray(self.axes, dtype=np.float32).reshape(-1, 3)
            if len(self.axes) != k:
                raise ShapeError(f"Keypoints: axes has {len(self.axes)} rows, points has {k}")
        self.labels = (
            np.arange(k, dtype=np.int64)
            if self.labels is None
            else np.asarray(self.labels, dtype=np.int64).reshape(-1)
        )
        if len(self.labels) != k:
            raise ShapeError(f"Keypoints: labels has {len(self.labels)} rows, points has {k}")
        if k and not np.isfinite(self.points).all():
            raise DataFormatError("keypoints must be finite", field="keypoints")

    def __len__(self) -> int:
        return len(self.points)

    def map_points(self, fn: PointMap, linear: np.ndarray | None = None) -> Keypoints:
        """Move keypoints through ``fn`` and axes through its linear part (or local Jacobian)."""
        if len(self) == 0:
            return self
        pts = np.asarray(fn(self.points.astype(np.float64)), np.float64)
        axes = None
        if self.axes is not None:
            jac = None if linear is not None else jacobian(fn, self.points)
            axes = _transform_vectors(self.axes, linear, jac, normal=False)
        return Keypoints(pts, axes, self.labels)


def _check_per_point(name: str, arr: np.ndarray, n: int, path: Any = None) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 0 or len(arr) != n:
        got = "a scalar" if arr.ndim == 0 else f"{len(arr)} rows"
        raise ShapeError(
            (f"{path}: " if path else "")
            + f"per-point attribute {name!r} has {got}, expected {n} (one per point)"
        )
    return arr


@dataclass(eq=False)
class PointCloud:
    """A point cloud with named per-point attributes and an optional per-sample target.

    xyz: float32 [N, 3].
    attrs: per-point arrays with N rows, e.g. ``"rgb"`` float32 [N, 3], ``"normals"`` float32
        [N, 3], ``"labels"`` int64 [N] (a segmentation target travels here, so every point
        selection keeps it aligned), ``"instance"`` int64 [N].
    target: per-sample target value: ``int`` class, float32 array (regression), ``Boxes``,
        ``Keypoints``, or None.
    meta: free-form information (``"id"``, ``"path"``, ``"category"``, ...); copied shallowly.
    vector_attrs: names of attrs holding normals, which rotate with the geometry.
    """

    xyz: np.ndarray
    attrs: dict[str, np.ndarray] = field(default_factory=dict)
    target: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    vector_attrs: tuple[str, ...] = ("normals",)

    def __post_init__(self):
        xyz = np.asarray(self.xyz)
        path = self.meta.get("path")
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise ShapeError(
                (f"{path}: " if path else "") + f"xyz must have shape [N, 3], got {list(xyz.shape)}"
            )
        self.xyz = xyz.astype(np.float32, copy=False)
        self.attrs = {k: _check_per_point(k, v, len(self.xyz), path) for k, v in dict(self.attrs).items()}
        self.meta = dict(self.meta)

    def __len__(self) -> int:
        return len(self.xyz)

    def __repr__(self) -> str:
        attrs = ", ".join(f"{k}:{v.dtype}{list(v.shape[1:])}" for k, v in self.attrs.items())
        tgt = type(self.target).__name__ if self.target is not None else None
        return f"PointCloud(n={len(self)}, attrs=[{attrs}], target={tgt}, id={self.meta.get('id')!r})"

    def replace(self, **changes) -> PointCloud:
        """A shallow copy with some fields replaced (attrs merged when given as a dict)."""
        return dataclasses.replace(self, **changes)

    def with_attrs(self, **attrs: np.ndarray) -> PointCloud:
        """A copy with attributes added or replaced."""
        return self.replace(attrs={**self.attrs, **attrs})

    def select(self, idx) -> PointCloud:
        """Keep the points ``idx`` (bool mask or integer indices) with every per-point attribute."""
        idx = np.asarray(idx)
        return self.replace(xyz=self.xyz[idx], attrs={k: v[idx] for k, v in self.attrs.items()})

    def map_points(self, fn: PointMap, linear: np.ndarray | None = None) -> PointCloud:
        """Apply a spatial map to the points and to everything spatial attached to them.

        ``linear`` (float [3, 3]) is the linear part when ``fn`` is affine; for other maps
        pass None and normals use the local Jacobian estimated from ``fn``.
        """
        xyz = np.asarray(fn(self.xyz.astype(np.float64)), dtype=np.float32)
        attrs = dict(self.attrs)
        vec = [k for k in self.vector_attrs if k in attrs]
        if vec:
            jac = None if linear is not None else jacobian(fn, self.xyz)
            for k in vec:
                attrs[k] = _transform_vectors(attrs[k], linear, jac, normal=True)
        target = self.target
        if hasattr(target, "map_points"):
            target = target.map_points(fn, linear)
        return self.replace(xyz=xyz, attrs=attrs, target=target)

    def check_finite(self) -> PointCloud:
        """Raise DataFormatError if any coordinate is NaN or infinite."""
        if np.isfinite(self.xyz).all():  # the common case, several times faster than per row
            return self
        bad = ~np.isfinite(self.xyz).all(1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"{int(bad.sum())} point(s) have non-finite coordinates (first: point {i} = {self.xyz[i].tolist()})",
                path=self.meta.get("path"),
                field="xyz",
            )
        return self


@dataclass(eq=False)
class Mesh:
    """A triangle mesh.

    vertices: float32 [V, 3]; faces: int64 [F, 3] (indices into vertices).
    vertex_attrs: per-vertex arrays with V rows (``"rgb"``, ``"normals"``, ``"labels"``, ...).
    face_attrs: per-face arrays with F rows (``"labels"``, ...).
    target, meta: as in :class:`PointCloud`.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_attrs: dict[str, np.ndarray] = field(default_factory=dict)
    face_attrs: dict[str, np.ndarray] = field(default_factory=dict)
    target: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        path = self.meta.get("path")
        v = np.asarray(self.vertices)
        if v.ndim != 2 or v.shape[1] != 3:
            raise ShapeError(
                (f"{path}: " if path else "") + f"vertices must have shape [V, 3], got {list(v.shape)}"
            )
        f = np.asarray(self.faces)
        if f.size == 0:
            f = f.reshape(0, 3)
        if f.ndim != 2 or f.shape[1] != 3:
            raise ShapeError(
                (f"{path}: " if path else "") + f"faces must have shape [F, 3], got {list(f.shape)}"
            )
        self.vertices = v.astype(np.float32, copy=False)
        self.faces = f.astype(np.int64, copy=False)
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            bad = int(np.flatnonzero((self.faces < 0).any(1) | (self.faces >= len(self.vertices)).any(1))[0])
            raise DataFormatError(
                f"face {bad} has vertex indices {self.faces[bad].tolist()}, expected 0..{len(self.vertices) - 1}",
                path=path,
                field="faces",
            )
        self.vertex_attrs = {
            k: _check_per_point(k, a, len(self.vertices), path) for k, a in dict(self.vertex_attrs).items()
        }
        self.face_attrs = {
            k: _check_per_point(k, a, len(self.faces), path) for k, a in dict(self.face_attrs).items()
        }
        self.meta = dict(self.meta)

    def __repr__(self) -> str:
        return (
            f"Mesh(vertices={len(self.vertices)}, faces={len(self.faces)}, "
            f"vertex_attrs={sorted(self.vertex_attrs)}, face_attrs={sorted(self.face_attrs)})"
        )

    def replace(self, **changes) -> Mesh:
        return dataclasses.replace(self, **changes)

    def to_points(self) -> PointCloud:
        """The vertices as a point cloud, carrying every per-vertex attribute."""
        return PointCloud(self.vertices, dict(self.vertex_attrs), self.target, dict(self.meta))


def as_point_cloud(obj: PointCloud | Mesh | Mapping) -> PointCloud:
    """A PointCloud from a PointCloud, a Mesh (its vertices) or a dict with ``xyz``."""
    if isinstance(obj, PointCloud):
        return obj
    if isinstance(obj, Mesh):
        return obj.to_points()
    if isinstance(obj, Mapping) and "xyz" in obj:
        rest = {k: v for k, v in obj.items() if k != "xyz"}
        return PointCloud(obj["xyz"], rest)
    raise TypeError(f"expected a PointCloud, Mesh or dict with 'xyz', got {type(obj).__name__}")
