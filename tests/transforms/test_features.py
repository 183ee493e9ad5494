"""Feature transforms."""

from __future__ import annotations

import numpy as np
import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.transforms import (
    AddHeight,
    AddNormals,
    BrightnessContrast,
    ChromaticJitter,
    ColorShift,
    FeatureNoise,
    NormalizeColor,
    Ones,
)


def rgb_cloud(n=100, seed=0):
    rng = np.random.default_rng(seed)
    return PointCloud(rng.normal(size=(n, 3)), {"rgb": rng.integers(0, 256, (n, 3)).astype(np.uint8)})


def test_normalize_color_maps_0_255_to_minus1_1():
    c = PointCloud(
        np.zeros((3, 3)), {"rgb": np.array([[0, 0, 0], [255, 255, 255], [51, 102, 204]], np.uint8)}
    )
    out = NormalizeColor()(c)
    assert out.attrs["rgb"].dtype == np.float32
    np.testing.assert_allclose(out.attrs["rgb"][:2], [[-1] * 3, [1] * 3])
    np.testing.assert_allclose(out.attrs["rgb"][2], np.array([51, 102, 204]) / 127.5 - 1, rtol=1e-6)
    assert c.attrs["rgb"].dtype == np.uint8  # input untouched


def test_color_shift_is_one_shift_per_scene():
    c = NormalizeColor()(rgb_cloud())
    out = ColorShift(0.1)(c, np.random.default_rng(0))
    d = out.attrs["rgb"] - c.attrs["rgb"]
    np.testing.assert_allclose(d, np.broadcast_to(d[0], d.shape), atol=1e-6)
    assert np.abs(d[0]).max() > 0


def test_brightness_contrast_and_noise():
    c = NormalizeColor()(rgb_cloud())
    out = BrightnessContrast(0.2, 0.2)(c, np.random.default_rng(1))
    # an affine map of the colours: correlation 1 per channel
    for k in range(3):
        assert np.corrcoef(out.attrs["rgb"][:, k], c.attrs["rgb"][:, k])[0, 1] > 0.9999
    j = ChromaticJitter(0.05)(c, np.random.default_rng(2))
    assert 0.03 < np.std(j.attrs["rgb"] - c.attrs["rgb"]) < 0.07
    f = FeatureNoise("rgb", 0.5)(c, np.random.default_rng(2))
    assert f.attrs["rgb"].dtype == np.float32


def test_add_height_and_ones():
    c = PointCloud([[0, 0, 2.0], [1, 1, 5.0], [2, 0, 3.0]])
    np.testing.assert_allclose(AddHeight()(c).attrs["height"][:, 0], [0, 3, 1])
    np.testing.assert_allclose(AddHeight("x")(c).attrs["height"][:, 0], [0, 1, 2])
    o = Ones()(c).attrs["ones"]
    assert o.shape == (3, 1) and o.dtype == np.float32 and (o == 1).all()


def test_add_normals_estimates_plane_normals_and_keeps_existing():
    rng = np.random.default_rng(0)
    x = np.c_[rng.uniform(0, 1, (400, 2)), np.zeros(400)]
    n = AddNormals(k=10)(PointCloud(x)).attrs["normals"]
    np.testing.assert_allclose(np.abs(n[:, 2]), 1.0, atol=1e-5)
    # sphere: outward
    s = rng.normal(size=(500, 3))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    ns = AddNormals(k=12)(PointCloud(s)).attrs["normals"]
    assert (np.einsum("ij,ij->i", ns, s) > 0.95).mean() > 0.98
    given = np.tile([1.0, 0, 0], (400, 1)).astype(np.float32)
    kept = AddNormals()(PointCloud(x, {"normals": given}))
    np.testing.assert_array_equal(kept.attrs["normals"], given)


def test_feature_transform_errors_name_the_file_and_attribute():
    c = PointCloud(np.zeros((2, 3)), meta={"path": "room.ply"})
    with pytest.raises(DataFormatError, match=r"room\.ply.*'rgb'"):
        NormalizeColor()(c)
    with pytest.raises(DataFormatError, match="normals"):
        AddNormals(estimate=False)(c)
    with pytest.raises(DataFormatError, match="at least 3"):
        AddNormals()(c)


def test_lazy_mesh_names_match_the_mesh_module():
    """transforms/__init__ lists the mesh names to import them lazily; the list must not drift."""
    from fastai_sparse import transforms
    from fastai_sparse.transforms import mesh

    assert sorted(transforms._MESH_NAMES) == sorted(mesh.__all__)
