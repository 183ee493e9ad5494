"""Mesh features and transforms checked against hand counts and closed-form references."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import Keypoints, Mesh, PointCloud
from fastai_sparse.transforms import mesh as M


def _two_triangles() -> Mesh:
    """Triangle A (area 1) in the plane z=0 and triangle B (area 3) in the plane z=1."""
    v = np.array([[0, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 1], [0, 2, 1]], np.float32)
    return Mesh(v, [[0, 1, 2], [3, 4, 5]], face_attrs={"labels": np.array([5, 9])}, meta={"path": "two.ply"})


def _bary(p, a, b, c):
    """Barycentric coordinates [K, 3] of points p [K, 3] in triangle (a, b, c) (least squares)."""
    t = np.stack([b - a, c - a], axis=0)  # [2, 3]
    uv = np.linalg.lstsq(t.T, (p - a).T, rcond=None)[0].T
    return np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)


def _cube() -> Mesh:
    box = trimesh.creation.box(extents=(1, 1, 1))
    return Mesh(box.vertices, box.faces)


def test_face_areas_and_normals_by_hand():
    m = _two_triangles()
    np.testing.assert_allclose(M.face_areas(m), [1, 3])
    np.testing.assert_allclose(M.face_normals(m), [[0, 0, 1], [0, 0, 1]])
    tm = trimesh.Trimesh(m.vertices, m.faces, process=False)
    np.testing.assert_allclose(M.face_areas(m), tm.area_faces)


def test_cube_normals_outward():
    m = _cube()
    fn = M.face_normals(m)
    centres = m.vertices[m.faces].mean(1)
    assert (np.einsum("ij,ij->i", fn, centres) > 0).all()
    np.testing.assert_allclose(np.abs(fn).max(1), 1, atol=1e-6)  # axis-aligned
    vn = M.vertex_normals(m)
    np.testing.assert_allclose(np.linalg.norm(vn, axis=1), 1, atol=1e-6)
    assert (np.einsum("ij,ij->i", vn, m.vertices) > 0).all()
    # area weighting, against a dense per-face loop
    ref = np.zeros((len(m.vertices), 3))
    for f, n, a in zip(m.faces, fn, M.face_areas(m), strict=True):
        for i in f:
            ref[i] += a * n
    np.testing.assert_allclose(vn, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-6)
    assert "normals" in M.add_normals(m).vertex_attrs and "normals" not in m.vertex_attrs


def test_sample_density_proportional_to_area():
    m = _two_triangles()
    n = 40000
    pc = M.sample_surface(m, n, np.random.default_rng(0))
    on_a = pc.xyz[:, 2] == 0
    assert (on_a | (pc.xyz[:, 2] == 1)).all()
    counts = [int(on_a.sum()), int((~on_a).sum())]
    assert stats.chisquare(counts, [n / 4, 3 * n / 4]).pvalue > 1e-3
    # points inside their triangle, labels from their face
    v = m.vertices.astype(np.float64)
    for sel, (i, j, k), label in ((on_a, (0, 1, 2), 5), (~on_a, (3, 4, 5), 9)):
        b = _bary(pc.xyz[sel].astype(np.float64), v[i], v[j], v[k])
        assert (b > -1e-5).all() and (b < 1 + 1e-5).all()
        assert (pc.attrs["labels"][sel] == label).all()
        # uniform inside the triangle: the 4 midpoint sub-triangles get equal shares
        sub = np.where(b[:, 0] > 0.5, 0, np.where(b[:, 1] > 0.5, 1, np.where(b[:, 2] > 0.5, 2, 3)))
        assert stats.chisquare(np.bincount(sub, minlength=4)).pvalue > 1e-3
    np.testing.assert_allclose(pc.attrs["normals"], np.tile([0, 0, 1], (n, 1)))
    assert pc.attrs["labels"].dtype == np.int64


def test_sample_interpolates_colours_and_nearest_vertex_labels():
    rng = np.random.default_rng(1)
    v = rng.random((20, 3)) * 4
    f = np.array([rng.choice(20, 3, replace=False) for _ in range(30)])
    # a colour that is an affine function of position: exact under barycentric interpolation
    rgb = (v @ np.array([[10, 0, 5], [0, 20, 5], [5, 5, 10]]) + 3).astype(np.float32)
    labels = rng.integers(0, 7, 20)
    m = Mesh(v, f, {"rgb": rgb, "labels": labels})
    pc = M.sample_surface(m, 3000, np.random.default_rng(2))
    ref = pc.xyz.astype(np.float64) @ np.array([[10, 0, 5], [0, 20, 5], [5, 5, 10]]) + 3
    np.testing.assert_allclose(pc.attrs["rgb"], ref, atol=1e-3)
    # each point's label is that of its nearest corner (largest barycentric weight) of some face
    # containing it; find the face by barycentric test against every face
    vv = m.vertices.astype(np.float64)
    for p, lab in zip(pc.xyz[:200].astype(np.float64), pc.attrs["labels"][:200], strict=True):
        ok = False
        for tri in m.faces:
            b = _bary(p[None], *vv[tri])[0]
            on = np.allclose(vv[tri].T @ b, p, atol=1e-5) and (b > -1e-5).all()
            if on and labels[tri[np.argmax(b)]] == lab:
                ok = True
                break
        assert ok


def test_sample_uint8_colours_stay_in_range():
    m = _two_triangles()
    rgb = np.array([[0, 10, 255], [255, 20, 0], [128, 30, 7], [1, 1, 1], [2, 2, 2], [3, 3, 3]], np.uint8)
    pc = M.sample_surface(m.replace(vertex_attrs={"rgb": rgb}), 5000, np.random.default_rng(0))
    assert pc.attrs["rgb"].dtype == np.float32
    on_a = pc.xyz[:, 2] == 0
    lo, hi = rgb[:3].min(0), rgb[:3].max(0)
    assert ((pc.attrs["rgb"][on_a] >= lo - 1e-3) & (pc.attrs["rgb"][on_a] <= hi + 1e-3)).all()
    assert ((pc.attrs["rgb"][~on_a] >= 1 - 1e-3) & (pc.attrs["rgb"][~on_a] <= 3 + 1e-3)).all()


def test_sample_cube_normals_outward_and_interpolated_sphere_normals():
    pc = M.sample_surface(_cube(), 2000, np.random.default_rng(0))
    n = pc.attrs["normals"]
    axis = np.abs(pc.xyz).argmax(1)
    np.testing.assert_allclose(
        n[np.arange(len(n)), axis], np.sign(pc.xyz[np.arange(len(n)), axis]), atol=1e-6
    )
    sphere = trimesh.creation.icosphere(subdivisions=3)
    m = Mesh(sphere.vertices, sphere.faces)
    pc = M.sample_surface(m, 2000, np.random.default_rng(0), face_normals=False)
    radial = pc.xyz / np.linalg.norm(pc.xyz, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", pc.attrs["normals"], radial).min() > 0.995


def test_sample_reproducible_and_input_untouched():
    m = _two_triangles()
    before = (m.vertices.copy(), m.faces.copy(), dict(m.face_attrs))
    t = M.SampleSurface(100)
    a, b = t(m, np.random.default_rng(7)), t(m, np.random.default_rng(7))
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(m.vertices, before[0])
    np.testing.assert_array_equal(m.faces, before[1])
    assert m.face_attrs.keys() == before[2].keys() and "SampleSurface(n=100" in repr(t)
    assert isinstance(a, PointCloud) and a.meta["path"] == "two.ply"


def test_sample_zero_area_raises_with_path():
    m = Mesh(np.zeros((3, 3)), [[0, 1, 2]], meta={"path": "flat.off"})
    with pytest.raises(DataFormatError, match=r"flat\.off.*total area 0"):
        M.sample_surface(m, 10)
    with pytest.raises(DataFormatError, match=r"flat\.off"):
        M.sample_surface(Mesh(np.zeros((0, 3)), np.zeros((0, 3)), meta={"path": "flat.off"}), 10)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=9, max_size=9), st.integers(0, 2**32 - 1))
def test_sample_points_inside_random_triangle(coords, seed):
    tri = np.array(coords, np.float64).reshape(3, 3)
    area = 0.5 * np.linalg.norm(np.cross(tri[1] - tri[0], tri[2] - tri[0]))
    if area < 1e-2:
        return
    pc = M.sample_surface(Mesh(tri, [[0, 1, 2]]), 50, np.random.default_rng(seed))
    b = _bary(pc.xyz.astype(np.float64), *tri)
    assert (b > -1e-3).all()
    np.testing.assert_allclose(b @ tri, pc.xyz, atol=1e-3)


def test_subdivide_respects_max_edge_and_carries_attrs():
    sphere = trimesh.creation.icosphere(subdivisions=1)
    v = sphere.vertices
    coef = np.array([1.0, 2.0, 3.0])
    m = Mesh(
        v,
        sphere.faces,
        {
            "f": (v @ coef).astype(np.float32),
            "labels": np.arange(len(v)),
            "rgb": np.zeros((len(v), 3), np.uint8),
        },
        {"labels": np.arange(len(sphere.faces))},
    )
    s = M.subdivide(m, 0.2)
    e = s.vertices[s.faces].astype(np.float64)
    lengths = np.linalg.norm(e - np.roll(e, 1, axis=1), axis=2)
    assert lengths.max() <= 0.2 + 1e-6
    np.testing.assert_allclose(M.face_areas(s).sum(), M.face_areas(m).sum(), rtol=1e-5)
    assert len(np.unique(s.vertices, axis=0)) == len(s.vertices)  # midpoints shared, no duplicates
    # the original vertices keep their index and values
    np.testing.assert_array_equal(s.vertices[: len(v)], m.vertices)
    # linear attribute stays linear (midpoint interpolation), labels come from an edge endpoint
    np.testing.assert_allclose(s.vertex_attrs["f"], s.vertices.astype(np.float64) @ coef, atol=1e-4)
    assert s.vertex_attrs["rgb"].dtype == np.uint8
    assert s.vertex_attrs["labels"].max() < len(v)
    # every child face lies inside its parent (its centroid has non-negative barycentrics)
    parent = s.face_attrs["labels"]
    cen = s.vertices[s.faces].mean(1).astype(np.float64)
    pv = m.vertices.astype(np.float64)[m.faces[parent]]
    b = np.stack([_bary(c[None], *tri)[0] for c, tri in zip(cen, pv, strict=True)])
    assert (b > -1e-4).all()


def test_subdivide_bad_args():
    with pytest.raises(DataFormatError, match="max_edge"):
        M.subdivide(_cube(), 0)
    with pytest.raises(DataFormatError, match="rounds"):
        M.subdivide(_cube(), 1e-3, max_iter=2)


def test_normalize_cloud_and_mesh():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(100, 3)) * [1, 2, 3] + [10, -5, 7]
    normals = rng.normal(size=(100, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    kp = Keypoints(xyz[:2])
    c = PointCloud(xyz, {"normals": normals}, target=kp)
    r = M.normalize(c)
    np.testing.assert_allclose((r.xyz.min(0) + r.xyz.max(0)) / 2, 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(r.xyz, axis=1).max(), 1, atol=1e-5)
    np.testing.assert_allclose(r.attrs["normals"], c.attrs["normals"], atol=1e-6)
    np.testing.assert_allclose(r.target.points, r.xyz[:2], atol=1e-5)  # keypoints follow
    info = r.meta["normalize"]
    np.testing.assert_allclose((c.xyz - info["offset"]) * info["scale"], r.xyz, atol=1e-5)
    r = M.normalize(c, center="mean", unit_sphere=False)
    np.testing.assert_allclose(r.xyz.mean(0), 0, atol=1e-4)
    m = M.normalize(_cube().replace(vertices=_cube().vertices * 5 + 1))
    np.testing.assert_allclose(np.linalg.norm(m.vertices, axis=1), 1, atol=1e-6)
    with pytest.raises(DataFormatError, match="coincide"):
        M.normalize(PointCloud(np.ones((4, 3))))


def test_remove_degenerate_faces_keeps_face_attrs_aligned():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [1, 1, 1]], np.float32)
    f = [[0, 1, 2], [0, 0, 1], [0, 1, 3], [1, 2, 4], [2, 2, 2]]  # good, repeated, collinear, good, repeated
    m = Mesh(v, f, face_attrs={"labels": np.array([10, 11, 12, 13, 14]), "q": np.arange(5.0)})
    r = M.remove_degenerate_faces(m)
    np.testing.assert_array_equal(r.faces, [[0, 1, 2], [1, 2, 4]])
    np.testing.assert_array_equal(r.face_attrs["labels"], [10, 13])
    np.testing.assert_array_equal(r.face_attrs["q"], [0, 3])
    assert r.meta["degenerate_faces_removed"] == 3 and len(m.faces) == 5


def test_sample_vertex_labels_from_nearest_corner_exact():
    m = _two_triangles()
    vlab = np.array([1, 2, 3, 4, 5, 6])
    m = m.replace(vertex_attrs={"labels": vlab}, face_attrs={"part": np.array([0, 1])})
    pc = M.sample_surface(m, 3000, np.random.default_rng(3))
    v = m.vertices.astype(np.float64)
    for face, tri in enumerate(m.faces):
        sel = pc.attrs["part"] == face
        assert (pc.xyz[sel, 2] == face).all()  # face 0 at z=0, face 1 at z=1
        b = _bary(pc.xyz[sel].astype(np.float64), *v[tri])
        np.testing.assert_array_equal(pc.attrs["labels"][sel], vlab[tri[b.argmax(1)]])
