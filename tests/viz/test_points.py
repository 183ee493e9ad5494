import matplotlib.image as mpimg
import numpy as np
import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.viz import class_colors, plot_points, points_figure, show_clouds, subsample_indices

from .viz_helpers import external_refs


def _cloud(n, seed, with_labels=True, cid=None):
    r = np.random.default_rng(seed)
    xyz = (r.random((n, 3)) * [4, 3, 2]).astype(np.float32)
    attrs = {"rgb": r.integers(0, 256, (n, 3)).astype(np.uint8)}
    if with_labels:
        attrs["labels"] = (xyz[:, 0] > 2).astype(np.int64) + 2 * (xyz[:, 2] > 1)
    return PointCloud(xyz, attrs, meta={"id": cid or f"c{seed}"})


def test_subsample_deterministic_and_without_replacement():
    a = subsample_indices(10_000, 500, rng=3)
    b = subsample_indices(10_000, 500, rng=3)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 500 and (np.diff(a) > 0).all() and a.max() < 10_000
    assert not np.array_equal(a, subsample_indices(10_000, 500, rng=4))
    np.testing.assert_array_equal(subsample_indices(300, 500), np.arange(300))
    np.testing.assert_array_equal(subsample_indices(300, None), np.arange(300))


def test_plot_points_subsamples_says_so_and_has_equal_aspect(rng):
    xyz = rng.random((3000, 3)) * [10, 1, 1]
    ax = plot_points(xyz, max_points=1000, title="t")
    offsets = ax.collections[0]._offsets3d
    assert len(offsets[0]) == 1000
    assert "1,000 of 3,000 points shown" in ax.get_title()
    spans = [np.diff(ax.get_xlim())[0], np.diff(ax.get_ylim())[0], np.diff(ax.get_zlim())[0]]
    np.testing.assert_allclose(spans, spans[0])
    # the same subsample on every call
    ax2 = plot_points(xyz, max_points=1000, title="t")
    np.testing.assert_array_equal(np.asarray(offsets[0]), np.asarray(ax2.collections[0]._offsets3d[0]))


def test_plot_points_label_colours(rng):
    xyz = rng.random((6, 3))
    lab = np.array([0, 1, 2, 2, -100, 1])
    ax = plot_points(xyz, labels=lab, n_classes=3, class_names=["a", "b", "c"])
    # the colours as passed, in point order (get_facecolors() is depth-sorted/cached in 3D)
    fc = np.asarray(ax.collections[0]._original_facecolor)[:, :3]
    pal = class_colors(3)
    np.testing.assert_allclose(fc[[0, 1, 2, 3, 5]], pal[[0, 1, 2, 2, 1]], atol=1e-6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ignored", "a", "b", "c"]


def test_points_figure_plotly(rng):
    xyz = rng.random((2500, 3))
    fig = points_figure(xyz, max_points=1000)
    assert fig.layout.scene.aspectmode == "data"
    assert len(fig.data) == 1 and len(fig.data[0].x) == 1000
    assert "1,000 of 2,500" in fig.layout.title.text
    lab = (xyz[:, 0] > 0.5).astype(int)
    fig = points_figure(xyz, labels=lab, class_names=["low", "high"], max_points=None)
    assert sorted(t.name for t in fig.data) == ["high", "low"]
    assert sum(len(t.x) for t in fig.data) == 2500
    assert len(fig.data[[t.name for t in fig.data].index("high")].x) == int(lab.sum())


def test_show_clouds_png_size_and_panels(tmp_path):
    clouds = [_cloud(500, s) for s in range(3)]
    path = tmp_path / "clouds.png"
    fig = show_clouds(clouds, ncols=2, path=path, class_names=["a", "b", "c", "d"], panel_size=3, dpi=50)
    assert path.stat().st_size > 1000
    img = mpimg.imread(path)
    assert img.shape[:2] == (2 * 3 * 50, 2 * 3 * 50)  # 2 rows x 2 cols of 3-inch panels at 50 dpi
    axes = [a for a in fig.axes if a.name == "3d"]
    assert len(axes) == 3
    assert [ax.get_title() for ax in axes] == ["c0", "c1", "c2"]
    assert float(np.std(img[..., :3])) > 0.01  # not blank


def test_show_clouds_color_by_variants(tmp_path):
    c = _cloud(200, 1)
    for cb in ("rgb", "z", "auto", "labels"):
        fig = show_clouds(c, color_by=cb)
        assert len(fig.axes) == 1
    with pytest.raises(DataFormatError, match=r"cannot colour by 'normals'.*\['labels', 'rgb'\]"):
        show_clouds(c, color_by="normals")
    with pytest.raises(DataFormatError, match="labels"):
        show_clouds(_cloud(50, 2, with_labels=False), color_by="labels")


def test_show_clouds_html_offline(tmp_path):
    clouds = [_cloud(300, s) for s in range(3)]
    path = tmp_path / "clouds.html"
    fig = show_clouds(clouds, path=path, class_names=["a", "b", "c", "d"])
    html = path.read_text()
    assert external_refs(html) == []
    assert html.count("plotly.js v") >= 1 and len(html) > 1_000_000  # the library is inlined
    scenes = [k for k in fig.layout if k.startswith("scene")]
    assert len(scenes) == 3
    assert all(fig.layout[s].aspectmode == "data" for s in scenes)
    # every point drawn once, in the scene of its own cloud
    per_scene = {}
    for t in fig.data:
        per_scene[t.scene] = per_scene.get(t.scene, 0) + len(t.x)
    assert sorted(per_scene.values()) == [300, 300, 300]
