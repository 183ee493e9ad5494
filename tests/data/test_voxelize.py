"""Voxelizer and unvoxelize: hand counts, duplicate policies, bounds, bad input, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.voxelize import Voxelizer, gather_features, unvoxelize


def test_mean_features_equal_a_hand_count():
    # scale 1: voxels (0,0,0) <- points 0, 2; (1,0,0) <- 1; (0,0,3) <- 3, 4, 5
    xyz = [
        [0.1, 0.2, 0.3],
        [1.5, 0.5, 0.5],
        [0.9, 0.9, 0.9],
        [0.2, 0.1, 3.2],
        [0.3, 0.3, 3.3],
        [0.0, 0.0, 3.0],
    ]
    f = np.array([[1.0], [10.0], [3.0], [2.0], [4.0], [9.0]], np.float32)
    s = Voxelizer(scale=1.0, features=("f",), origin="none")(PointCloud(xyz, {"f": f}))
    got = {tuple(c): v for c, v in zip(s.coords.tolist(), s.feats[:, 0].tolist())}
    assert got == {(0, 0, 0): 2.0, (1, 0, 0): 10.0, (0, 0, 3): 5.0}
    assert s.coords.dtype == np.int32 and s.feats.dtype == np.float32 and s.inverse.dtype == np.int64
    np.testing.assert_array_equal(s.coords[s.inverse], np.floor(np.asarray(xyz)).astype(int))


def test_duplicate_policies():
    xyz = np.array([[0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0], [1.5, 0, 0]])
    f = np.array([[5.0], [7.0], [9.0], [1.0]], np.float32)
    c = PointCloud(xyz, {"f": f})
    first = Voxelizer(1.0, ("f",), mode="first", origin="none")(c)
    np.testing.assert_array_equal(first.feats[:, 0], [5.0, 1.0])
    seen = {
        float(Voxelizer(1.0, ("f",), mode="random")(c, np.random.default_rng(i)).feats[0, 0])
        for i in range(40)
    }
    assert seen == {5.0, 7.0, 9.0}
    # random is reproducible from the rng
    a = Voxelizer(1.0, ("f",), mode="random")(c, np.random.default_rng(3)).feats
    b = Voxelizer(1.0, ("f",), mode="random")(c, np.random.default_rng(3)).feats
    np.testing.assert_array_equal(a, b)


def test_special_features_and_origin():
    c = PointCloud(
        [[0.25, 0.5, 1.75], [3.0, 2.0, 1.0]], {"rgb": np.array([[255, 0, 0], [0, 0, 255]], np.uint8)}
    )
    s = Voxelizer(scale=2.0, features=("rgb", "ones", "xyz", "height"))(c)
    assert s.feats.shape == (2, 8)
    row = s.inverse[0]
    np.testing.assert_allclose(s.feats[row], [255, 0, 0, 1, 0.5, 0, 0.5, 0.75])
    assert s.coords.min(0).tolist() == [0, 0, 0]  # origin="min"
    assert Voxelizer(features=("rgb", "ones", "xyz")).num_features == 7
    with pytest.raises(DataFormatError, match="'normals' requested"):
        Voxelizer(features=("normals",))(c)
    assert gather_features(c, []).shape == (2, 0)


def test_coords_beyond_the_grid_error_names_axis_extent_and_limit():
    c = PointCloud([[0, 0, 0], [0, 0, 300.0]], meta={"path": "big.ply"})
    with pytest.raises(DataFormatError, match=r"big\.ply.*along z span 0\.\.6000.*\[0, 4096\)"):
        Voxelizer(scale=20)(c)
    with pytest.raises(DataFormatError, match="along x"):
        Voxelizer(scale=1, origin="none")(PointCloud([[-1.0, 0, 0]]))


def test_bad_clouds():
    with pytest.raises(DataFormatError, match="empty"):
        Voxelizer()(PointCloud(np.zeros((0, 3)), {"rgb": np.zeros((0, 3))}))
    with pytest.raises(DataFormatError, match="non-finite"):
        Voxelizer(features=())(PointCloud([[0, 0, 0], [np.nan, 0, 0]]))
    for bad in ([0, np.inf, 0], [0, 0, -np.inf], [np.nan, np.nan, 1.0]):
        with pytest.raises(
            DataFormatError, match=r"1 point\(s\) have non-finite coordinates \(first: point 2"
        ):
            Voxelizer(features=(), origin="none")(PointCloud([[0, 0, 0], [1, 1, 1], bad]))
    s = Voxelizer(features=("ones",))(PointCloud([[1.0, 2.0, 3.0]]))
    assert s.coords.tolist() == [[0, 0, 0]] and s.inverse.tolist() == [0]


def test_unvoxelize_numpy_and_torch():
    inv = np.array([1, 0, 1, 2])
    vals = np.array([[0.0], [1.0], [2.0]])
    np.testing.assert_array_equal(unvoxelize(vals, inv)[:, 0], [1, 0, 1, 2])
    t = unvoxelize(torch.tensor(vals), torch.tensor(inv))
    assert t[:, 0].tolist() == [1, 0, 1, 2]
    with pytest.raises(IndexError):
        unvoxelize(vals, np.array([3]))


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 300), st.just(3)), elements=st.floats(-50, 50)),
    st.sampled_from([1.0, 2.5, 20.0]),
    st.sampled_from(["mean", "first", "random"]),
)
def test_voxelize_unvoxelize_round_trip(x, scale, mode):
    c = PointCloud(x, {"i": np.arange(len(x), dtype=np.float32)})
    s = Voxelizer(scale=scale, features=("i",), mode=mode)(c, np.random.default_rng(0))
    per_point = unvoxelize(np.arange(len(s.coords)), s.inverse)
    assert len(per_point) == len(x)  # one value per input point
    # every point lies inside its voxel
    v = np.floor(c.xyz.astype(np.float64) * scale)
    v -= v.min(0)
    np.testing.assert_array_equal(s.coords[s.inverse], v)
    # voxels are unique, and every voxel has a point
    assert len(np.unique(s.coords, axis=0)) == len(s.coords)
    assert set(s.inverse.tolist()) == set(range(len(s.coords)))
    if mode != "mean":  # the chosen point belongs to the voxel
        picked = s.feats[:, 0].astype(int)
        np.testing.assert_array_equal(s.inverse[picked], np.arange(len(s.coords)))
