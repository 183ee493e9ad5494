import numpy as np
import pytest
from matplotlib import colormaps

from fastai_sparse.errors import DataFormatError, ShapeError
from fastai_sparse.viz import IGNORED_COLOR, class_colors, feature_colors, label_colors


def _min_pairwise(c):
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    return d[~np.eye(len(c), dtype=bool)].min()


def test_class_colors_stable_across_n():
    big = class_colors(60)
    for n in (1, 5, 20, 21, 40):
        np.testing.assert_array_equal(class_colors(n), big[:n])
    np.testing.assert_array_equal(class_colors(13), class_colors(13))  # no hidden randomness


def test_class_colors_distinct_and_not_grey():
    c20 = class_colors(20)
    assert _min_pairwise(c20) > 0.14
    c60 = class_colors(60)
    assert _min_pairwise(c60) > 0.09
    assert len(np.unique(np.round(class_colors(256) * 255).astype(int), axis=0)) == 256
    assert np.linalg.norm(c60 - IGNORED_COLOR, axis=1).min() > 0.15
    assert (c60 >= 0).all() and (c60 <= 1).all() and c60.dtype == np.float32


def test_label_colors_maps_and_greys_ignored():
    lab = np.array([0, 3, -100, 3, -1])
    col = label_colors(lab, 5)
    pal = class_colors(5)
    np.testing.assert_array_equal(col[[0, 1, 3]], pal[[0, 3, 3]])
    np.testing.assert_array_equal(col[[2, 4]], np.stack([IGNORED_COLOR] * 2))


def test_label_colors_rejects_out_of_range():
    with pytest.raises(DataFormatError, match=r"label 7 found, expected labels in 0..4"):
        label_colors(np.array([0, 7]), 5)
    with pytest.raises(ShapeError):
        label_colors(np.zeros((3, 2), int), 5)


@pytest.mark.parametrize(
    "arr,expected",
    [
        (np.array([[0, 128, 255]], np.uint8), [[0, 128 / 255, 1]]),
        (np.array([[0.0, 127.5, 255.0]], np.float32), [[0, 0.5, 1]]),  # 0..255 floats as read from files
        (np.array([[-1.0, 0.0, 1.0]], np.float32), [[0, 0.5, 1]]),  # rgb / 127.5 - 1
        (np.array([[0.2, 0.4, 0.6]], np.float32), [[0.2, 0.4, 0.6]]),  # already 0..1
    ],
)
def test_feature_colors_rgb(arr, expected):
    np.testing.assert_allclose(feature_colors(arr), expected, atol=1e-6)


def test_feature_colors_scalar_uses_colormap_ends():
    out = feature_colors(np.array([5.0, 7.5, 10.0]), cmap="viridis")
    cm = colormaps["viridis"]
    np.testing.assert_allclose(out[0], cm(0.0)[:3], atol=1e-6)
    np.testing.assert_allclose(out[2], cm(1.0)[:3], atol=1e-6)
    np.testing.assert_allclose(out[1], cm(0.5)[:3], atol=1e-6)
    fixed = feature_colors(np.array([0.5]), vmin=0, vmax=1)
    np.testing.assert_allclose(fixed[0], cm(0.5)[:3], atol=1e-6)
    with pytest.raises(ShapeError, match=r"\[N\], \[N, 1\] or \[N, 3\]"):
        feature_colors(np.zeros((4, 5)))
