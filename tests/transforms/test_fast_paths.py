"""The pipeline's fast code against the code it replaced and against plain references.

``OldElasticField`` and ``old_elastic`` below are the previous implementation of the elastic
distortion (eight ``take`` calls on the node table, whole-array lerps; the grid smoothed with
``scipy.ndimage.correlate1d``), kept verbatim as the reference: the rewrite must give the same
displacements (bitwise for the interpolation, to float32 rounding for the smoothing) for the
same random stream. The voxelizer is compared with a plain ``np.unique`` + ``np.add.at``
reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from fastai_sparse import voxelize
from fastai_sparse.geometry import Boxes, PointCloud
from fastai_sparse.transforms.points import (
    ElasticDistortion,
    FitToGrid,
    _box_blur_twice,
    _ElasticField,
    bounds,
)
from fastai_sparse.voxelize import Voxelizer

# -- the previous implementation (reference) -------------------------------------------------


class OldElasticField:
    def __init__(self, lo, spacing, grid):
        self.lo = np.asarray(lo, np.float64)
        self.inv = 1.0 / float(spacing)
        self.shape = tuple(int(s) for s in grid.shape[:3])
        self.table = np.ascontiguousarray(grid, dtype=np.float32).reshape(-1, 3)
        self.strides = (self.shape[1] * self.shape[2], self.shape[2], 1)

    def displacement(self, x):
        x = np.asarray(x, np.float64)
        base = None
        frac = []
        for k in range(3):
            u = ((x[:, k] - self.lo[k]) * self.inv).astype(np.float32)
            np.clip(u, 0, np.float32(self.shape[k] - 1) - np.float32(1e-3), out=u)
            f = np.floor(u)
            u -= f
            frac.append(np.repeat(u[:, None], 3, axis=1))
            ik = f.astype(np.intp)
            if k < 2:
                ik *= self.strides[k]
            base = ik if base is None else base + ik
        fx, fy, fz = frac
        sx, sy, _ = self.strides
        t = self.table

        def lerp_z(o):
            a = t.take(base + o, axis=0)
            b = t.take(base + (o + 1), axis=0)
            b -= a
            b *= fz
            b += a
            return b

        c0, c1 = lerp_z(0), lerp_z(sy)
        c1 -= c0
        c1 *= fy
        c0 += c1
        d0, d1 = lerp_z(sx), lerp_z(sx + sy)
        d1 -= d0
        d1 *= fy
        d0 += d1
        d0 -= c0
        d0 *= fx
        c0 += d0
        return c0

    def __call__(self, x):
        return np.asarray(x, np.float64) + self.displacement(x)


_BOX = np.full(3, 1 / 3, np.float32)


def old_blur(grid, gain):
    grid = grid.copy()
    first = True
    for ax in (0, 1, 2):
        for _ in range(2):
            w = _BOX * np.float32(gain) if first else _BOX
            ndimage.correlate1d(grid, w, axis=ax, mode="constant", output=grid)
            first = False
    return grid


def old_elastic(t: ElasticDistortion, cloud: PointCloud, rng) -> PointCloud:
    x = cloud.xyz
    c = np.array([x[:, k].mean(dtype=np.float64) for k in range(3)])
    lo, hi = bounds(x)
    shape = np.floor(np.maximum(hi - c, c - lo) / t.granularity).astype(np.int64) + 3
    lo = c - (shape - 1) * t.granularity
    if t.noise == "uniform":
        grid = rng.random((*shape, 3), dtype=np.float32)
        grid -= np.float32(0.5)
        gain = np.sqrt(12.0) * t.magnitude
    else:
        grid = rng.standard_normal((*shape, 3), dtype=np.float32)
        gain = t.magnitude
    return cloud.map_points(OldElasticField(lo, t.spacing, old_blur(grid, gain)), linear=None)


# -- elastic distortion ------------------------------------------------------------------------


# the first two evaluate through the cell table, the third (41k cells) through the node table;
# small blocks and chunks: several chunks of cells, each of several blocks, the last ones partial
@pytest.mark.parametrize("small", [False, True])
@pytest.mark.parametrize("shape", [(2, 2, 2), (7, 5, 9), (44, 41, 25)])
def test_interpolation_is_bitwise_the_previous_one(shape, small, monkeypatch):
    if small:
        monkeypatch.setattr(_ElasticField, "_BLOCK", 700)
        monkeypatch.setattr(_ElasticField, "_CHUNK", 2100)
    rng = np.random.default_rng(sum(shape))
    grid = rng.standard_normal((*shape, 3)).astype(np.float32)
    lo, spacing = np.array([-3.0, 1.0, 0.5]), 0.7
    span = (np.array(shape) - 1) * spacing
    # inside the grid, on its faces and beyond it (constant extension), more than a block
    x = lo + rng.uniform(-0.2, 1.2, size=(10_000, 3)) * span
    x[:10] = lo
    x[10:20] = lo + span
    new, old = _ElasticField(lo, spacing, grid), OldElasticField(lo, spacing, grid)
    np.testing.assert_array_equal(new.displacement(x), old.displacement(x))
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(new.displacement(x32), old.displacement(x32))
    np.testing.assert_array_equal(new(x), old(x))
    assert new.displacement(x[:0]).shape == (0, 3)


def test_one_node_axis_is_constant_along_it():
    rng = np.random.default_rng(0)
    grid = rng.standard_normal((1, 4, 5, 3)).astype(np.float32)
    x = rng.uniform(-2, 4, size=(500, 3))
    got = _ElasticField(np.zeros(3), 1.0, grid).displacement(x)
    # bilinear in (y, z) on the single x-slice, constant beyond the grid
    u = np.stack([np.clip(x[:, 1], 0, 3 - 1e-3), np.clip(x[:, 2], 0, 4 - 1e-3)])  # the last cell's end
    ref = np.stack([ndimage.map_coordinates(grid[0, :, :, c], u, order=1) for c in range(3)], 1)
    np.testing.assert_allclose(got, ref, atol=1e-4)


@pytest.mark.parametrize("shape", [(44, 41, 25, 3), (15, 14, 9, 3), (1, 5, 2, 3), (3, 3, 3, 1)])
def test_box_blur_equals_the_scipy_filter(shape):
    grid = np.random.default_rng(1).random(shape, dtype=np.float32) - np.float32(0.5)
    ref = old_blur(grid, 55.4)
    got = _box_blur_twice(grid, 55.4)
    assert got.dtype == np.float32 and got.shape == grid.shape
    # float32 sums vs scipy's float64 lines: a few float32 ulps of the largest value
    np.testing.assert_allclose(got, ref, rtol=0, atol=4e-7 * np.abs(ref).max())
    with pytest.raises(ValueError, match="nx, ny, nz, C"):
        _box_blur_twice(grid[0])


@pytest.mark.parametrize("noise", ["uniform", "normal"])
@pytest.mark.parametrize(("g", "m"), [(2.4, 16.0), (8.0, 64.0)])
def test_elastic_same_seed_same_cloud_as_before(noise, g, m):
    # a rotated room in voxel units, as in the ScanNet recipe
    x = np.random.default_rng(3).uniform(0, 1, size=(30_000, 3)) * [160, 160, 60] - [80, 80, 30]
    cloud = PointCloud(x.astype(np.float32))
    t = ElasticDistortion(g, m, noise=noise)
    got = t(cloud, np.random.default_rng(9)).xyz
    ref = old_elastic(t, cloud, np.random.default_rng(9)).xyz
    # the smoothing's float32 rounding moves a coordinate by at most ~1 ulp (1.5e-5 voxels at
    # 200 voxels from the origin, 1e-5 of the granularity)
    np.testing.assert_allclose(got, ref, rtol=0, atol=4 * np.spacing(np.abs(ref).max()))
    assert np.abs(got - x).max() > g  # and it did distort


def test_elastic_points_only_path_equals_map_points():
    x = np.random.default_rng(4).uniform(-50, 50, size=(5000, 3)).astype(np.float32)
    t = ElasticDistortion(3.0, 20.0)
    plain = t(PointCloud(x), np.random.default_rng(1))
    field = t.field(PointCloud(x), np.random.default_rng(1))
    mapped = PointCloud(x).map_points(field, linear=None)
    np.testing.assert_array_equal(plain.xyz, mapped.xyz)
    # with normals or boxes the general path runs, and the points move the same
    normals = np.tile(np.float32([0, 0, 1]), (len(x), 1))
    with_normals = t(PointCloud(x, {"normals": normals}), np.random.default_rng(1))
    np.testing.assert_array_equal(with_normals.xyz, plain.xyz)
    assert not np.allclose(with_normals.attrs["normals"], normals)
    boxes = Boxes(np.zeros((1, 3)), np.ones((1, 3)), np.zeros(1), np.zeros(1, np.int64))
    with_boxes = t(PointCloud(x, target=boxes), np.random.default_rng(1))
    np.testing.assert_array_equal(with_boxes.xyz, plain.xyz)
    np.testing.assert_allclose(with_boxes.target.centers, field(np.zeros((1, 3))), rtol=1e-6)


# -- placement --------------------------------------------------------------------------------


@pytest.mark.parametrize(("full", "scale"), [(4096, 1.0), (300, 1.0), (150, 20.0), (60, 7.0)])
def test_fit_to_grid_points_only_path_equals_apply_affine(full, scale):
    # a cube 1.4 times the grid: placed inside it along no axis, so cropped
    x = np.random.default_rng(5).uniform(-0.7, 0.7, size=(20_000, 3)) * full / scale
    x = x.astype(np.float32)
    t = FitToGrid(full, scale)
    got = t(PointCloud(x), np.random.default_rng(2))
    # the general path (a cloud with normals) moves points through apply_affine
    normals = np.tile(np.float32([1, 0, 0]), (len(x), 1))
    ref = t(PointCloud(x, {"normals": normals}), np.random.default_rng(2))
    np.testing.assert_array_equal(got.xyz, ref.xyz)
    assert got.meta["points_cropped"] == ref.meta["points_cropped"] > 0
    # and both keep exactly the points whose voxel is inside the grid
    v = np.floor(got.xyz.astype(np.float64) * scale)
    assert v.min() >= 0 and v.max() < full


@pytest.mark.parametrize(("full", "scale"), [(4096, 1.0), (300, 1.0), (150, 20.0), (60, 7.0)])
@pytest.mark.parametrize("fill", [0.5, 0.9999])
def test_fit_to_grid_cloud_inside_keeps_every_point(full, scale, fill):
    # shorter than the grid along every axis: placed inside, nothing cropped (decided from the
    # moved extremes, not per point), and every voxel is inside the grid
    x = np.random.default_rng(6).uniform(-0.5, 0.5, size=(20_000, 3))
    x[:2] = [[-0.5] * 3, [0.5] * 3]  # the extent is fill * full voxels exactly
    x = (x * fill * full / scale).astype(np.float32)
    for seed in range(5):
        got = FitToGrid(full, scale)(PointCloud(x), np.random.default_rng(seed))
        assert len(got) == len(x) and got.meta["points_cropped"] == 0
        v = np.floor(got.xyz.astype(np.float64) * scale)
        assert v.min() >= 0 and v.max() < full


# -- voxelization -----------------------------------------------------------------------------


def reference_voxelize(xyz, feats, scale, full_scale):
    v = np.floor(xyz.astype(np.float64) * scale).astype(np.int64)
    coords, inverse = np.unique(v, axis=0, return_inverse=True)
    sums = np.zeros((len(coords), feats.shape[1]))
    np.add.at(sums, inverse.ravel(), feats.astype(np.float64))
    counts = np.bincount(inverse.ravel(), minlength=len(coords))
    first = np.full(len(coords), len(xyz))
    np.minimum.at(first, inverse.ravel(), np.arange(len(xyz)))
    return coords, inverse.ravel(), (sums / counts[:, None]).astype(np.float32), first


@pytest.mark.parametrize(
    ("n", "full_scale", "scale", "extent"),
    [
        (20_000, 4096, 1.0, 200),
        (3_000, 64, 4.0, 63),
        (1, 4096, 1.0, 200),
        (2_000, 2**20, 1.0, 200),  # 60 key bits: the stable argsort
        (2_000, 2**20, 1.0, 2**20 - 1),  # keys beyond float64's exact integers
        (5_000, 1000, 1.0, 999),  # not a power of two
    ],
)
@pytest.mark.parametrize("chunk", [None, 777])
def test_voxelizer_equals_a_unique_reference(n, full_scale, scale, extent, chunk, monkeypatch):
    if chunk:  # keys built over several chunks, the last one partial
        monkeypatch.setattr(voxelize, "_CHUNK", chunk)
    gen = np.random.default_rng(n)
    hi = extent / scale
    xyz = gen.uniform(0, hi, size=(n, 3)).astype(np.float32)
    xyz[: n // 2] = np.floor(xyz[: n // 2])  # many points sharing voxels
    f = gen.random((n, 3), dtype=np.float32)
    rng = np.random.default_rng
    cloud = PointCloud(xyz, {"f": f})
    coords, inverse, means, first = reference_voxelize(xyz, f, scale, full_scale)
    s = Voxelizer(scale, ("f",), full_scale=full_scale, origin="none")(cloud)
    np.testing.assert_array_equal(s.coords, coords)  # lexicographic order
    np.testing.assert_array_equal(s.inverse, inverse)
    np.testing.assert_allclose(s.feats, means, rtol=1e-6)
    s = Voxelizer(scale, ("f",), full_scale=full_scale, origin="min")(cloud)
    np.testing.assert_array_equal(s.coords, coords - coords.min(0))
    np.testing.assert_array_equal(s.inverse, inverse)
    for origin, shift in (("none", 0), ("min", coords.min(0))):
        got = Voxelizer(scale, ("f",), full_scale=full_scale, origin=origin).voxel_coords(cloud)
        np.testing.assert_array_equal(got, np.floor(xyz.astype(np.float64) * scale) - shift)
    s = Voxelizer(scale, ("f",), full_scale=full_scale, mode="first", origin="none")(cloud)
    np.testing.assert_array_equal(s.feats, f[first])
    # random mode picks one of the voxel's own points, for every voxel: the k-th in cloud
    # order, k = floor(u * count) with u from rng
    s = Voxelizer(scale, ("f",), full_scale=full_scale, mode="random", origin="none")(cloud, rng(7))
    own = (s.feats[s.inverse] == f).all(1)
    np.testing.assert_array_equal(np.unique(s.inverse[own]), np.arange(len(coords)))
    u = rng(7).random(len(coords))
    by_voxel = np.argsort(inverse, kind="stable")  # each voxel's points in cloud order
    counts = np.bincount(inverse, minlength=len(coords))
    first_row = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = by_voxel[first_row + (u * counts).astype(np.int64)]
    np.testing.assert_array_equal(s.feats, f[pick])


# -- affine maps ------------------------------------------------------------------------------


def test_affine_points_only_path_equals_map_points():
    from fastai_sparse.transforms import Compose, RandomAffineNoise, RandomFlip, RandomRotate, Scale
    from fastai_sparse.transforms.compose import _affine_fn, apply_affine

    x = np.random.default_rng(6).uniform(0, 8, size=(20_000, 3)).astype(np.float32)
    m = np.eye(3) + np.random.default_rng(7).normal(0, 0.1, (3, 3))
    t = np.array([0.5, -2.0, 3.25])
    got = apply_affine(PointCloud(x), m, t).xyz
    ref = PointCloud(x).map_points(_affine_fn(m, t), linear=m).xyz
    np.testing.assert_array_equal(got, ref)
    # the map itself (float64 product; float32 result)
    np.testing.assert_allclose(got, x.astype(np.float64) @ m.T + t, rtol=1e-6, atol=1e-6)
    # the fused recipe affine, with and without normals (general path), moves points the same
    recipe = Compose([RandomAffineNoise(0.1), RandomFlip(("x",)), Scale(20), RandomRotate("z")])
    normals = np.tile(np.float32([0, 0, 1]), (len(x), 1))
    a = recipe(PointCloud(x), np.random.default_rng(3)).xyz
    b = recipe(PointCloud(x, {"normals": normals}), np.random.default_rng(3)).xyz
    np.testing.assert_array_equal(a, b)


# -- colour shift -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_color_shift_is_one_broadcast_shift(dtype):
    from fastai_sparse.transforms import ColorShift

    rgb = (np.random.default_rng(8).random((1000, 3)) * 255).astype(dtype)
    cloud = PointCloud(np.zeros((1000, 3)), {"rgb": rgb})
    got = ColorShift(0.1)(cloud, np.random.default_rng(4)).attrs["rgb"]
    shift = (0.1 * np.random.default_rng(4).standard_normal(3)).astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, rgb.astype(np.float32) + shift)
