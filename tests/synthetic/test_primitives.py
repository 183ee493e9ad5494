"""Analytic surface sampling: points on the surface, exact normals, uniform per world area."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastai_sparse.builtin.synthetic_primitives import Part, rot_x, rot_z, sample_parts

ANISO = rot_z(0.7) @ rot_x(0.4) @ np.diag([1.5, 0.6, 1.1])


def _local(part, xyz):
    return (xyz - part.t) @ np.linalg.inv(part.A).T


def _check_normals(part, xyz, nrm, grad_local):
    """Normals are unit and parallel (same sign) to A^-T grad f at the local point."""
    g = grad_local(_local(part, xyz)) @ np.linalg.inv(part.A)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1, atol=1e-9)
    assert (np.einsum("ij,ij->i", g, nrm) > 1 - 1e-6).all()


@pytest.mark.parametrize("A", [np.eye(3), ANISO])
def test_sphere_points_and_normals(A):
    p = Part("sphere", {"r": 0.7}, A=A, t=np.array([1.0, -2.0, 0.5]))
    xyz, nrm = p.sample(np.random.default_rng(0), 3000)
    q = _local(p, xyz)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 0.7, atol=1e-9)
    _check_normals(p, xyz, nrm, lambda q: q)


@given(r=st.floats(0.2, 1.0), R=st.floats(1.1, 2.0), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_torus_implicit_surface(r, R, seed):
    p = Part("torus", {"R": R, "r": r}, A=ANISO, t=np.array([0.3, 0.0, -1.0]))
    xyz, nrm = p.sample(np.random.default_rng(seed), 500)
    q = _local(p, xyz)
    rho = np.hypot(q[:, 0], q[:, 1])
    np.testing.assert_allclose((rho - R) ** 2 + q[:, 2] ** 2, r * r, atol=1e-9)

    def grad(q):
        rho = np.hypot(q[:, 0], q[:, 1])
        return np.c_[q[:, :2] * ((rho - R) / rho)[:, None], q[:, 2]]

    _check_normals(p, xyz, nrm, grad)


@given(r0=st.floats(0.1, 1.0), r1=st.floats(0.0, 1.0), h=st.floats(0.2, 2.0), seed=st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_frustum_side_on_surface_with_cone_normals(r0, r1, h, seed):
    p = Part("frustum", {"r0": r0, "r1": r1, "h": h}, A=ANISO)
    xyz, nrm = p.sample(np.random.default_rng(seed), 400)
    q = _local(p, xyz)
    assert (q[:, 2] >= -1e-9).all() and (q[:, 2] <= h + 1e-9).all()
    rho = np.hypot(q[:, 0], q[:, 1])
    np.testing.assert_allclose(rho, r0 + (r1 - r0) * q[:, 2] / h, atol=1e-9)
    # implicit f = rho - r0 - (r1 - r0) z / h; grad = (x/rho, y/rho, -(r1 - r0)/h)
    _check_normals(
        p,
        xyz,
        nrm,
        lambda q: np.c_[q[:, :2] / np.hypot(q[:, 0], q[:, 1])[:, None], np.full(len(q), -(r1 - r0) / h)],
    )


def test_frustum_density_along_height_is_uniform_per_area():
    # side area below height f*h of a cone frustum, computed independently by integration
    r0, r1, h = 1.0, 0.2, 1.0
    p = Part("frustum", {"r0": r0, "r1": r1, "h": h})
    xyz, _ = p.sample(np.random.default_rng(1), 200_000)
    zs = np.linspace(0, 0.5, 2001)
    below = np.trapezoid(r0 + (r1 - r0) * zs, zs)
    total = (r0 + r1) / 2
    assert abs((xyz[:, 2] < 0.5).mean() - below / total) < 0.005


def test_box_faces_area_weighted_under_anisotropic_map():
    size = np.array([1.0, 2.0, 0.5])
    p = Part("box", {"size": tuple(size)}, A=ANISO)
    xyz, nrm = p.sample(np.random.default_rng(2), 120_000)
    q = _local(p, xyz)
    on_face = np.isclose(np.abs(q), size / 2, atol=1e-9)
    assert (on_face.sum(1) >= 1).all()
    # world area of a face = |A e1 x A e2| for its two edge vectors, computed independently
    areas = []
    for ax in range(3):
        a, b = [k for k in range(3) if k != ax]
        e1, e2 = np.zeros(3), np.zeros(3)
        e1[a], e2[b] = size[a], size[b]
        areas.append(np.linalg.norm(np.cross(ANISO @ e1, ANISO @ e2)))
    expected = np.array(areas) / sum(areas)
    got = np.array([on_face[:, ax].mean() for ax in range(3)])
    np.testing.assert_allclose(got, expected, atol=0.006)
    assert abs(p.area(np.random.default_rng(0)) - 2 * sum(areas)) / (2 * sum(areas)) < 0.03
    # normals: the world normal of face ax is A^-T e_ax, normalised, with the face's sign
    for ax in range(3):
        m = on_face[:, ax] & (on_face.sum(1) == 1)
        want = np.sign(q[m, ax])[:, None] * np.linalg.inv(ANISO).T[:, ax][None]
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        np.testing.assert_allclose(nrm[m], want, atol=1e-9)


def test_sample_parts_allocates_by_area_and_carries_fields():
    big = Part("box", {"size": (2.0, 2.0, 0.0), "faces": "Z"}, label=3, instance=7)  # area 4
    small = Part("sphere", {"r": 0.2}, t=np.array([5.0, 0, 0]), label=1, instance=2)  # area 0.503
    out = sample_parts([big, small], 50_000, np.random.default_rng(3))
    frac = (out["label"] == 1).mean()
    assert abs(frac - 0.16 * np.pi / (4 + 0.16 * np.pi)) < 0.005
    assert set(np.unique(out["instance"])) == {2, 7}
    assert ((out["part_index"] == 1) == (out["label"] == 1)).all()
    assert out["xyz"].shape == (50_000, 3) and out["normals"].shape == (50_000, 3)


def test_triangles_normals_follow_winding():
    tri = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]], float)
    p = Part("tris", {"tris": tri})
    xyz, nrm = p.sample(np.random.default_rng(0), 100)
    assert np.allclose(nrm, [0, 0, 1]) and np.allclose(xyz[:, 2], 0)
    assert (xyz[:, 0] + xyz[:, 1] <= 1 + 1e-12).all() and (xyz[:, :2] >= 0).all()
