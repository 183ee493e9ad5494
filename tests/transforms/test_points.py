"""Spatial transforms: hypothesis properties and attachment of spatial targets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import Boxes, Keypoints, PointCloud
from fastai_sparse.transforms import (
    Affine,
    Center,
    Compose,
    ElasticDistortion,
    FitToGrid,
    Jitter,
    PointDropout,
    RandomAffineNoise,
    RandomApply,
    RandomCrop,
    RandomFlip,
    RandomRotate,
    RandomScale,
    Scale,
    Translate,
    random_rotation,
    sample_rng,
)

SETTINGS = settings(max_examples=30, deadline=None)
coords = arrays(np.float64, st.tuples(st.integers(2, 40), st.just(3)), elements=st.floats(-10, 10))
seeds = st.integers(0, 2**31 - 1)


def cloud_of(x, **attrs):
    return PointCloud(np.asarray(x, np.float32), attrs)


def pdist(x):
    x = np.asarray(x, np.float64)
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


@SETTINGS
@given(coords, seeds, st.sampled_from(["x", "y", "z", "so3", (1.0, 2.0, -0.5)]))
def test_rotations_preserve_pairwise_distances(x, seed, axis):
    c = cloud_of(x)
    out = RandomRotate(axis=axis)(c, np.random.default_rng(seed))
    np.testing.assert_allclose(pdist(out.xyz), pdist(c.xyz), atol=1e-3)


@SETTINGS
@given(seeds)
def test_random_rotation_is_orthogonal_with_det_one(seed):
    r = random_rotation(np.random.default_rng(seed))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


@SETTINGS
@given(coords, seeds)
def test_affine_then_inverse_is_identity(x, seed):
    rng = np.random.default_rng(seed)
    m = np.eye(3) + 0.3 * rng.standard_normal((3, 3))
    t = rng.normal(size=3)
    c = cloud_of(x, normals=rng.normal(size=(len(x), 3)).astype(np.float32))
    a = Affine(m, t)
    back = a.inverse()(a(c))
    np.testing.assert_allclose(back.xyz, c.xyz, atol=1e-3)
    n0 = c.attrs["normals"] / np.linalg.norm(c.attrs["normals"], axis=1, keepdims=True)
    n1 = back.attrs["normals"] / np.linalg.norm(back.attrs["normals"], axis=1, keepdims=True)
    np.testing.assert_allclose(n1, n0, atol=1e-3)


@SETTINGS
@given(coords)
def test_flip_twice_is_identity(x):
    c = cloud_of(x)
    flip = RandomFlip(axes=("x", "y", "z"), p=1.0)
    once = flip(c, np.random.default_rng(0))
    np.testing.assert_allclose(once.xyz, -c.xyz)
    np.testing.assert_array_equal(flip(once, np.random.default_rng(1)).xyz, c.xyz)


@SETTINGS
@given(seeds, arrays(np.float64, 3, elements=st.floats(0.2, 5)))
def test_normals_stay_unit_and_perpendicular_under_anisotropic_scale(seed, s):
    rng = np.random.default_rng(seed)
    # points on the plane n . x = 0, with normal n
    n = rng.normal(size=3)
    n /= np.linalg.norm(n)
    basis = np.linalg.svd(n[None])[2][1:]  # two unit vectors perpendicular to n
    pts = rng.normal(size=(20, 2)) @ basis
    c = cloud_of(pts, normals=np.tile(n, (20, 1)).astype(np.float32))
    out = Compose([Scale(s), RandomRotate("so3")])(c, rng)
    nn = out.attrs["normals"].astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(nn, axis=1), 1.0, atol=1e-5)
    # every in-plane difference vector stays perpendicular to the transformed normal
    d = out.xyz[1:].astype(np.float64) - out.xyz[0]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    assert np.abs(np.einsum("ij,ij->i", d, nn[1:])).max() < 2e-3


def test_compose_fuses_affines_into_the_same_map():
    rng = np.random.default_rng(3)
    c = cloud_of(rng.normal(size=(50, 3)))
    ts = [
        RandomAffineNoise(0.1),
        RandomFlip(),
        Scale(20),
        RandomRotate(),
        Translate((1, 2, 3)),
        RandomScale(),
    ]
    fused = Compose(ts)(c, sample_rng(1, 0, 5))
    r = sample_rng(1, 0, 5)
    seq = c
    for t in ts:
        seq = t(seq, r)
    np.testing.assert_allclose(fused.xyz, seq.xyz, rtol=1e-5, atol=1e-3)


def test_center():
    c = cloud_of([[1, 1, 1], [3, 5, 1], [2, 2, 7]])
    out = Center()(c)
    lo, hi = out.xyz.min(0), out.xyz.max(0)
    np.testing.assert_allclose(lo + hi, 0, atol=1e-6)
    np.testing.assert_allclose(Center("mean")(c).xyz.mean(0), 0, atol=1e-6)


def test_transforms_do_not_mutate_input_and_have_repr():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)).astype(np.float32) * 5
    c = cloud_of(x.copy(), normals=np.tile([0, 0, 1], (100, 1)).astype(np.float32))
    ts = [
        RandomAffineNoise(),
        RandomRotate(),
        RandomFlip(),
        RandomScale(anisotropic=True),
        Jitter(0.01),
        ElasticDistortion(1.0, 1.0),
        RandomCrop(4.0),
        FitToGrid(64, scale=2.0),
        PointDropout(0.5),
        RandomApply(Scale(2), p=0.5),
    ]
    for t in ts:
        t(c, rng)
        assert t.random
        assert type(t).__name__ in repr(t)
    np.testing.assert_array_equal(c.xyz, x)
    assert not Scale(2).random and not Center().random
    assert "Scale(s=2)" in repr(Compose([Scale(2)]))


def test_jitter_moves_points_but_not_normals_or_targets():
    rng = np.random.default_rng(0)
    c = PointCloud(
        rng.normal(size=(200, 3)), {"normals": np.tile([0, 0, 1.0], (200, 1))}, Keypoints([[0, 0, 0]])
    )
    out = Jitter(0.01, clip=0.02)(c, rng)
    d = out.xyz - c.xyz
    assert 0 < np.abs(d).max() <= 0.02 + 1e-6
    np.testing.assert_array_equal(out.attrs["normals"], c.attrs["normals"])
    np.testing.assert_array_equal(out.target.points, c.target.points)


# -- spatial targets stay attached ---------------------------------------------------------


def _cloud_with_keypoint(rng, n=300, extent=10.0):
    x = rng.uniform(0, extent, size=(n, 3)).astype(np.float32)
    k = rng.choice(n, 3, replace=False)
    return PointCloud(x, {"labels": np.arange(n)}, Keypoints(x[k], axes=np.eye(3))), k


@pytest.mark.parametrize(
    "t",
    [
        RandomRotate(),
        RandomRotate("so3"),
        RandomFlip(("x", "y", "z"), p=1.0),
        RandomScale((0.5, 2.0), anisotropic=True),
        RandomAffineNoise(0.2),
        ElasticDistortion(2.0, 3.0),
        ElasticDistortion(0.7, 1.5, noise="normal"),
        RandomCrop(6.0),
        FitToGrid(full_scale=100, scale=10.0),
        Compose(
            [Scale(20), RandomRotate(), ElasticDistortion(2.4, 16), ElasticDistortion(8, 64), FitToGrid(150)]
        ),
    ],
    ids=repr,
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_keypoint_on_a_point_stays_on_that_point(t, seed):
    rng = np.random.default_rng(seed)
    c, k = _cloud_with_keypoint(rng)
    out = t(c, np.random.default_rng(seed + 10))
    # labels carry the original point index, so we can find the point a keypoint sat on
    pos = {int(i): j for j, i in enumerate(out.attrs["labels"])}
    for m, i in enumerate(k):
        if int(i) in pos:
            np.testing.assert_allclose(
                out.target.points[m], out.xyz[pos[int(i)]], atol=2e-3 * max(1, t_scale(out))
            )
            if "keypoints_in_crop" in out.meta:
                assert out.meta["keypoints_in_crop"][m]
        else:
            assert "keypoints_in_crop" in out.meta and not out.meta["keypoints_in_crop"][m]
    assert len(out.target) == 3


def t_scale(cloud):
    return float(np.abs(cloud.xyz).max()) / 100


@pytest.mark.parametrize(
    "t",
    [RandomRotate(), RandomFlip(("x", "y"), p=1.0), RandomScale((0.5, 2.0)), Scale((2.0, 2.0, 3.0))],
    ids=repr,
)
def test_box_corners_still_enclose_the_same_points(t):
    # (an xy-anisotropic scale turns a yawed box into a parallelogram: Boxes approximate it)
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, size=(2000, 3))
    boxes = Boxes([[1, 0, 0], [-2, 1, 1]], [[3, 2, 2], [2, 4, 1]], [0.3, -1.0], [0, 1])

    def inside(cloud):
        b = cloud.target
        res = []
        for j in range(len(b)):
            d = cloud.xyz.astype(np.float64) - b.centers[j]
            c, s = np.cos(b.yaw[j]), np.sin(b.yaw[j])
            local = np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c, d[:, 2]], 1)
            res.append((np.abs(local) <= b.sizes[j] / 2 - 1e-3).all(1))
        return np.stack(res)

    c = PointCloud(x, target=boxes)
    before = inside(c)
    assert before.sum() > 20
    after = inside(t(c, np.random.default_rng(1)))
    np.testing.assert_array_equal(after, before)


def test_crop_drops_boxes_whose_centre_leaves_and_flags_keypoints():
    x = np.array([[0.5, 0.5, 0.5], [5, 5, 5], [9.5, 9.5, 9.5]])
    c = PointCloud(
        x,
        {"labels": np.arange(3)},
        Boxes([[0.5, 0.5, 0.5], [9.5, 9.5, 9.5]], np.ones((2, 3)), [0, 0], [0, 1]),
    )
    out = FitToGrid(full_scale=6, scale=1.0, random_offset=False)(c)
    # the cloud is 9 units long: the central 6 are kept
    assert out.meta["points_cropped"] == 2 and len(out) == 1
    assert len(out.target) == 0 and out.meta["boxes_dropped"] == 2
    ck = PointCloud(x, {}, Keypoints(x))
    outk = FitToGrid(full_scale=6, scale=1.0, random_offset=False)(ck)
    assert len(outk.target) == 3
    np.testing.assert_array_equal(outk.meta["keypoints_in_crop"], [False, True, False])


@SETTINGS
@given(seeds, st.floats(1, 50), st.integers(8, 300))
def test_fit_to_grid_always_voxelizes(seed, extent, full):
    from fastai_sparse.voxelize import Voxelizer

    rng = np.random.default_rng(seed)
    c = cloud_of(rng.uniform(-extent, extent, size=(200, 3)))
    out = FitToGrid(full_scale=full, scale=2.0)(c, rng)
    assert len(out) + out.meta["points_cropped"] == 200
    if len(out):
        s = Voxelizer(scale=2.0, features=(), full_scale=full, origin="none")(out)
        assert s.coords.min() >= 0 and s.coords.max() < full


def test_fit_to_grid_random_placement_inside():
    rng = np.random.default_rng(0)
    c = cloud_of(rng.uniform(0, 10, size=(500, 3)))
    offs = [FitToGrid(4096, scale=20)(c, rng).xyz.min(0) for _ in range(5)]
    assert all(len(set(np.round(o, 3))) > 1 for o in offs)
    for o in offs:
        assert (o >= 0).all() and (o * 20 < 4096).all()


def test_point_dropout_keeps_attrs_aligned_and_at_least_one_point():
    rng = np.random.default_rng(0)
    c = PointCloud(rng.normal(size=(1000, 3)), {"labels": np.arange(1000)})
    out = PointDropout(0.3)(c, rng)
    np.testing.assert_array_equal(c.xyz[out.attrs["labels"]], out.xyz)
    assert 600 < len(out) < 800 and out.meta["points_dropped"] == 1000 - len(out)
    assert len(PointDropout(0.999)(PointCloud(np.zeros((3, 3))), rng)) >= 1


def test_elastic_is_smooth_and_of_the_expected_size():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, size=(20000, 3))
    c = cloud_of(x)
    out = ElasticDistortion(4.0, 10.0)(c, rng)
    d = out.xyz.astype(np.float64) - c.xyz
    # blurred unit noise: std = magnitude * (19/81)^(3/2) ~ 1.14 away from the borders
    assert 0.7 < d.std() < 1.4
    # nearby points move together
    near = np.linalg.norm(x[:1000, None] - x[None, :1000], axis=-1) < 1.0
    i, j = np.nonzero(near & ~np.eye(1000, dtype=bool))
    assert np.abs(d[i] - d[j]).max() < 1.0
    with pytest.raises(DataFormatError, match="empty"):
        ElasticDistortion(1, 1)(PointCloud(np.zeros((0, 3))), rng)


def test_elastic_field_matches_scipy_trilinear_interpolation():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 30, size=(5000, 3))
    field = ElasticDistortion(3.0, 2.0).field(cloud_of(x), rng)
    grid = np.moveaxis(field.table.reshape(*field.shape, 3), -1, 0)
    u = ((x - field.lo) * field.inv).T
    ref = np.stack([ndimage.map_coordinates(grid[k], u, order=1) for k in range(3)])
    np.testing.assert_allclose(field.displacement(x).T, ref, atol=1e-4)


def test_seeded_reproducibility():
    rng = np.random.default_rng(0)
    c = cloud_of(rng.uniform(0, 5, size=(500, 3)))
    t = Compose(
        [RandomAffineNoise(), RandomRotate(), ElasticDistortion(1, 1), FitToGrid(200, 20), PointDropout(0.1)]
    )
    a, b = t(c, sample_rng(7, 1, 3)), t(c, sample_rng(7, 1, 3))
    np.testing.assert_array_equal(a.xyz, b.xyz)
    other = t(c, sample_rng(7, 1, 4))
    assert a.xyz.shape != other.xyz.shape or not np.array_equal(a.xyz, other.xyz)
    with pytest.raises(ValueError):
        sample_rng(-1, 0, 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="invertible"):
        Affine(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="axis"):
        RandomRotate(axis="w")
    with pytest.raises(ValueError):
        RandomScale((2, 1))
    with pytest.raises(ValueError):
        ElasticDistortion(0, 1)
    with pytest.raises(TypeError, match="PointCloud"):
        Scale(2)(np.zeros((3, 3)))
