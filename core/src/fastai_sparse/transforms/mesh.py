"""Mesh-level features and transforms: normals, face areas, surface sampling (mesh -> points),
subdivision to a maximum edge length, normalisation and removal of degenerate faces.

Everything is vectorised numpy. No function mutates its input: each returns new arrays or a new
:class:`~fastai_sparse.geometry.Mesh` / :class:`~fastai_sparse.geometry.PointCloud`. Random
functions draw only from the ``rng`` they are given (``numpy.random.Generator``), so a sample
is reproducible from a seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataFormatError
from ..geometry import Mesh, PointCloud

__all__ = [
    "SampleSurface",
    "add_normals",
    "face_areas",
    "face_normals",
    "normalize",
    "remove_degenerate_faces",
    "sample_surface",
    "subdivide",
    "vertex_normals",
]


def _corners(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v = mesh.vertices.astype(np.float64)
    f = mesh.faces
    return v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]


def _face_cross(mesh: Mesh) -> np.ndarray:
    """float64 [F, 3]: (b - a) x (c - a), length = twice the face area, along the face normal."""
    a, b, c = _corners(mesh)
    return np.cross(b - a, c - a)


def _unit(vec: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    return np.divide(vec, norm, out=np.zeros_like(vec), where=norm > 0)


def face_areas(mesh: Mesh) -> np.ndarray:
    """Triangle areas, float64 [F] (in squared file units)."""
    return 0.5 * np.linalg.norm(_face_cross(mesh), axis=1)


def face_normals(mesh: Mesh) -> np.ndarray:
    """Unit face normals float32 [F, 3], right-handed with the face's vertex order
    (counter-clockwise seen from outside = outward); zero for degenerate faces."""
    return _unit(_face_cross(mesh)).astype(np.float32)


def vertex_normals(mesh: Mesh) -> np.ndarray:
    """Area-weighted unit vertex normals float32 [V, 3]: the normalised sum of the normals of the
    faces around each vertex, each weighted by its area; zero for vertices on no face."""
    cross = _face_cross(mesh)  # already area-weighted (twice the area)
    acc = np.zeros((len(mesh.vertices), 3), np.float64)
    for k in range(3):
        for d in range(3):
            acc[:, d] += np.bincount(mesh.faces[:, k], weights=cross[:, d], minlength=len(mesh.vertices))
    return _unit(acc).astype(np.float32)


def add_normals(mesh: Mesh) -> Mesh:
    """A copy of ``mesh`` with ``vertex_attrs["normals"]`` = :func:`vertex_normals`."""
    return mesh.replace(vertex_attrs={**mesh.vertex_attrs, "normals": vertex_normals(mesh)})


def sample_surface(
    mesh: Mesh,
    n: int,
    rng: np.random.Generator | None = None,
    *,
    interpolate: Sequence[str] = ("rgb", "normals"),
    face_normals: bool = True,
) -> PointCloud:
    """Sample ``n`` points uniformly on the surface (density proportional to area).

    A face is drawn with probability ``area / total area``, then a point uniformly inside it
    (barycentric weights from two uniforms reflected into the triangle). Returns a PointCloud
    with xyz float32 [n, 3] and:

    - vertex attributes named in ``interpolate`` (e.g. ``"rgb"``): barycentric interpolation,
      float32 [n, ...] (uint8 colours become float32 in 0..255);
    - every other vertex attribute (``"labels"``, ``"instance"``, ...): the value of the
      triangle corner nearest in barycentric terms (largest weight), dtype kept;
    - every face attribute: the value of the sampled face (a face attribute overrides a vertex
      attribute of the same name, being exact for the point);
    - ``"normals"`` float32 [n, 3]: the face normal when ``face_normals`` is true, else the
      interpolated vertex normals (area-weighted vertex normals when the mesh has none),
      renormalised.

    ``target`` and ``meta`` are carried over. Raises ``DataFormatError`` (naming
    ``meta["path"]``) when the mesh has no face of positive area or n < 1.
    """
    path = mesh.meta.get("path")
    if n < 1:
        raise DataFormatError(f"asked for {n} samples, expected n >= 1", path=path, field="n")
    rng = np.random.default_rng() if rng is None else rng
    cross = _face_cross(mesh)
    areas = 0.5 * np.linalg.norm(cross, axis=1)
    total = float(areas.sum()) if len(areas) else 0.0
    if not np.isfinite(total) or total <= 0:
        raise DataFormatError(
            f"the mesh has {len(mesh.faces)} faces with total area {total}, expected a positive finite area to "
            "sample from",
            path=path,
            field="faces",
        )
    cum = np.cumsum(areas)
    face = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    # r in [0, total) falls in [cum[i-1], cum[i]): a zero-area face is never picked
    face = np.minimum(face, len(areas) - 1)
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    bary = np.stack([1 - u - v, u, v], axis=1)  # weights of corners 0, 1, 2
    tri = mesh.faces[face]  # [n, 3]
    verts = mesh.vertices.astype(np.float64)
    xyz = np.einsum("nk,nkd->nd", bary, verts[tri])

    nearest = tri[np.arange(n), bary.argmax(axis=1)]
    attrs: dict[str, np.ndarray] = {}
    for name, arr in mesh.vertex_attrs.items():
        if name == "normals":
            continue
        if name in interpolate and arr.dtype.kind in "biuf":
            a = np.asarray(arr, np.float64)
            w = bary.reshape(n, 3, *([1] * (a.ndim - 1)))
            attrs[name] = (w * a[tri]).sum(axis=1).astype(np.float32)
        else:
            attrs[name] = arr[nearest]
    for name, arr in mesh.face_attrs.items():
        attrs[name] = arr[face]
    if face_normals:
        attrs["normals"] = _unit(cross[face]).astype(np.float32)
    elif "normals" in interpolate or "normals" in mesh.vertex_attrs:
        vn = mesh.vertex_attrs.get("normals")
        vn = vertex_normals(mesh) if vn is None else vn
        if "normals" in interpolate:
            nrm = np.einsum("nk,nkd->nd", bary, np.asarray(vn, np.float64)[tri])
            attrs["normals"] = _unit(nrm).astype(np.float32)
        else:
            attrs["normals"] = np.asarray(vn, np.float32)[nearest]
    return PointCloud(xyz.astype(np.float32), attrs, target=mesh.target, meta=dict(mesh.meta))


class SampleSurface:
    """Transform ``Mesh -> PointCloud``: :func:`sample_surface` with ``n`` points.

    ``SampleSurface(2048)(mesh, rng)``; the keyword arguments are those of :func:`sample_surface`.
    """

    def __init__(self, n: int, *, interpolate: Sequence[str] = ("rgb", "normals"), face_normals: bool = True):
        self.n, self.interpolate, self.face_normals = int(n), tuple(interpolate), bool(face_normals)

    def __call__(self, mesh: Mesh, rng: np.random.Generator | None = None) -> PointCloud:
        return sample_surface(mesh, self.n, rng, interpolate=self.interpolate, face_normals=self.face_normals)

    def __repr__(self) -> str:
        return f"SampleSurface(n={self.n}, interpolate={self.interpolate}, face_normals={self.face_normals})"


def subdivide(
    mesh: Mesh, max_edge: float, *, interpolate: Sequence[str] = ("rgb", "normals"), max_iter: int = 20
) -> Mesh:
    """Split triangles until every edge is at most ``max_edge`` long.

    Each round splits every face that still has a longer edge into four (edge midpoints); a
    midpoint is shared by all faces that split the same edge, in this or a later round. Faces
    whose edges are all short enough are kept, so a split face next to a kept face leaves a
    T-junction (the surface is covered exactly, as with ``trimesh.remesh.subdivide_to_size``).
    New vertices get float vertex attributes and those named in ``interpolate`` as the mean of
    the two edge endpoints (rounded for integer dtypes such as uint8 colours; normals
    renormalised), and other attributes (labels, instance ids) from the edge's lower-index
    endpoint; child faces inherit their parent's face attributes.
    Raises ``DataFormatError`` if ``max_edge <= 0`` or more than ``max_iter`` rounds are needed.
    """
    path = mesh.meta.get("path")
    if not max_edge > 0:
        raise DataFormatError(
            f"max_edge is {max_edge}, expected a positive length", path=path, field="max_edge"
        )
    verts = mesh.vertices.astype(np.float64)
    vattrs = {k: np.asarray(v) for k, v in mesh.vertex_attrs.items()}
    faces = mesh.faces
    parent = np.arange(len(faces))  # original face of each current face
    edge_keys = np.zeros(0, np.int64)  # sorted keys lo * 2**31 + hi of edges already split
    edge_mid = np.zeros(0, np.int64)  # their midpoint vertex
    for it in range(max_iter + 1):
        a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
        longest = np.maximum.reduce(
            [np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1), np.linalg.norm(a - c, axis=1)]
        )
        split = longest > max_edge
        if not split.any():
            break
        if it == max_iter:
            raise DataFormatError(
                f"edges up to {longest.max():.6g} long remain after {max_iter} rounds, expected <= {max_edge}",
                path=path,
                field="max_edge",
            )
        sf = faces[split]
        e = np.stack([sf[:, [0, 1]], sf[:, [1, 2]], sf[:, [2, 0]]], axis=1).reshape(-1, 2)
        lo, hi = e.min(axis=1), e.max(axis=1)
        keys = lo * np.int64(2**31) + hi
        ukeys, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        pos = np.searchsorted(edge_keys, ukeys)
        known = np.zeros(len(ukeys), bool)
        if len(edge_keys):
            known = (pos < len(edge_keys)) & (edge_keys[np.minimum(pos, len(edge_keys) - 1)] == ukeys)
        mid = np.empty(len(ukeys), np.int64)
        mid[known] = edge_mid[pos[known]]
        new = ~known
        nnew = int(new.sum())
        mid[new] = len(verts) + np.arange(nnew)
        p0, p1 = lo[first[new]], hi[first[new]]
        verts = np.concatenate([verts, (verts[p0] + verts[p1]) / 2])
        for k, arr in vattrs.items():
            if arr.dtype.kind == "f" or (k in interpolate and arr.dtype.kind in "iu"):
                val = (arr[p0].astype(np.float64) + arr[p1]) / 2
                if k == "normals":
                    val = _unit(val.reshape(nnew, -1)).reshape(val.shape)
                if arr.dtype.kind in "iu":
                    val = np.round(val)
                vattrs[k] = np.concatenate([arr, val.astype(arr.dtype)])
            else:
                vattrs[k] = np.concatenate([arr, arr[p0]])
        order = np.argsort(np.concatenate([edge_keys, ukeys[new]]), kind="stable")
        edge_keys = np.concatenate([edge_keys, ukeys[new]])[order]
        edge_mid = np.concatenate([edge_mid, mid[new]])[order]
        m = mid[inv].reshape(-1, 3)  # midpoints of edges (01, 12, 20) of each split face
        v0, v1, v2 = sf[:, 0], sf[:, 1], sf[:, 2]
        m01, m12, m20 = m[:, 0], m[:, 1], m[:, 2]
        children = np.stack(
            [
                np.stack([v0, m01, m20], 1),
                np.stack([m01, v1, m12], 1),
                np.stack([m20, m12, v2], 1),
                np.stack([m01, m12, m20], 1),
            ],
            axis=1,
        ).reshape(-1, 3)
        faces = np.concatenate([faces[~split], children])
        parent = np.concatenate([parent[~split], np.repeat(parent[split], 4)])
    fattrs = {k: np.asarray(v)[parent] for k, v in mesh.face_attrs.items()}
    return mesh.replace(
        vertices=verts.astype(np.float32), faces=faces, vertex_attrs=vattrs, face_attrs=fattrs
    )


def normalize(
    obj: Mesh | PointCloud, center: bool | str = True, unit_sphere: bool = True
) -> Mesh | PointCloud:
    """Centre and scale a mesh or point cloud.

    ``center``: True or ``"bbox"`` moves the bounding-box centre to the origin; ``"mean"`` the
    centroid of the points; False leaves the position. ``unit_sphere`` scales uniformly so the
    farthest point is at distance 1 from the origin. Normals are unchanged (uniform scaling);
    a spatial target (boxes, keypoints) moves with the points. The applied map is recorded in
    ``meta["normalize"] = {"offset": [3 floats], "scale": float}`` (``x_new = (x - offset) *
    scale``). Raises ``DataFormatError`` on an empty input, or when all points coincide and
    ``unit_sphere`` is asked.
    """
    is_mesh = isinstance(obj, Mesh)
    pts = (obj.vertices if is_mesh else obj.xyz).astype(np.float64)
    path = obj.meta.get("path")
    if len(pts) == 0:
        raise DataFormatError("no points to normalise, expected at least one", path=path, field="xyz")
    if center is True or center == "bbox":
        offset = (pts.min(axis=0) + pts.max(axis=0)) / 2
    elif center == "mean":
        offset = pts.mean(axis=0)
    elif center is False or center is None:
        offset = np.zeros(3)
    else:
        raise ValueError(f"center must be True, False, 'bbox' or 'mean', got {center!r}")
    scale = 1.0
    if unit_sphere:
        radius = float(np.linalg.norm(pts - offset, axis=1).max())
        if not radius > 0 or not np.isfinite(radius):
            raise DataFormatError(
                f"all {len(pts)} points coincide (radius {radius}), expected a positive extent to scale to the "
                "unit sphere",
                path=path,
                field="xyz",
            )
        scale = 1.0 / radius

    def fn(x: np.ndarray) -> np.ndarray:
        return (x - offset) * scale

    linear = np.eye(3) * scale
    meta = {**obj.meta, "normalize": {"offset": offset.tolist(), "scale": scale}}
    if not is_mesh:
        return obj.map_points(fn, linear).replace(meta=meta)
    target = obj.target.map_points(fn, linear) if hasattr(obj.target, "map_points") else obj.target
    return obj.replace(vertices=fn(pts).astype(np.float32), target=target, meta=meta)


def remove_degenerate_faces(mesh: Mesh, eps: float = 1e-12) -> Mesh:
    """Drop faces that repeat a vertex index or have area ``<= eps`` (squared file units).

    Face attributes are filtered with the faces, so they stay aligned; vertices and vertex
    attributes are unchanged. ``meta["degenerate_faces_removed"]`` holds how many were dropped.
    """
    f = mesh.faces
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    keep = ~repeated & (face_areas(mesh) > eps)
    return mesh.replace(
        faces=f[keep],
        face_attrs={k: np.asarray(v)[keep] for k, v in mesh.face_attrs.items()},
        meta={**mesh.meta, "degenerate_faces_removed": int((~keep).sum())},
    )
