import matplotlib.image as mpimg
import numpy as np
import plotly.graph_objects as go
import pytest

from fastai_sparse.errors import ShapeError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.viz import IGNORED_COLOR, class_colors, confidence_heatmap, error_map, show_results


def _cloud(n, seed, target=None):
    r = np.random.default_rng(seed)
    xyz = r.random((n, 3)).astype(np.float32)
    lab = (xyz[:, 0] > 0.5).astype(np.int64) + (xyz[:, 1] > 0.5)
    lab[:5] = -100
    return PointCloud(xyz, {"labels": lab, "rgb": r.random((n, 3)).astype(np.float32)}, target=target,
                      meta={"id": f"s{seed}"})  # fmt: skip


def _fc(ax):
    return np.asarray(ax.collections[0]._original_facecolor)[:, :3]


def test_show_results_side_by_side_with_accuracy(tmp_path):
    clouds = [_cloud(400, 0), _cloud(300, 1)]
    preds = [clouds[0].attrs["labels"].clip(0).copy(), np.eye(3)[clouds[1].attrs["labels"].clip(0)]]
    preds[0][10:50] = (preds[0][10:50] + 1) % 3  # 40 wrong of 395 valid
    path = tmp_path / "res.png"
    fig = show_results(clouds, preds, class_names=["a", "b", "c"], path=path, panel_size=2, dpi=40)
    axes = [a for a in fig.axes if a.name == "3d"]
    assert len(axes) == 4
    t = [a.get_title() for a in axes]
    assert t[0] == "s0 ground truth" and t[1] == f"s0 prediction (acc {1 - 40 / 395:.3f})"
    assert t[3] == "s1 prediction (acc 1.000)"
    np.testing.assert_allclose(_fc(axes[1]), class_colors(3)[preds[0]], atol=1e-6)
    gt = _fc(axes[0])
    np.testing.assert_allclose(gt[:5], np.stack([IGNORED_COLOR] * 5), atol=1e-6)
    assert mpimg.imread(path).shape[:2] == (2 * 2 * 40, 2 * 2 * 40)


def test_show_results_html(tmp_path):
    c = _cloud(200, 2)
    fig = show_results(c, c.attrs["labels"].clip(0), class_names=["a", "b", "c"], path=tmp_path / "r.html")
    assert isinstance(fig, go.Figure)
    assert {t.scene for t in fig.data} == {"scene", "scene2"}
    assert (tmp_path / "r.html").stat().st_size > 1_000_000


def test_show_results_classification_titles():
    clouds = [_cloud(100, 3, target=1), _cloud(100, 4, target=2)]
    fig = show_results(clouds, [1, 0], class_names=["cube", "sphere", "cone"])
    titles = [a.get_title() for a in fig.axes if a.name == "3d"]
    assert titles == ["s3 pred sphere / true sphere ✓", "s4 pred cube / true cone ✗"]


def test_show_results_length_mismatch():
    c = _cloud(100, 5)
    with pytest.raises(ShapeError, match="sample 0: 99 predictions for 100 points"):
        show_results(c, np.zeros(99, int))


def test_error_map_colours_and_rate(tmp_path):
    xyz = np.random.default_rng(0).random((10, 3))
    tgt = np.array([0, 1, 2, 0, 1, 2, -100, -100, 1, 1])
    pred = np.array([0, 1, 0, 0, 2, 2, 1, 0, 1, 0])  # wrong at 2, 4, 9 (6, 7 ignored)
    fig = error_map(xyz, pred, tgt, path=tmp_path / "e.png")
    ax = fig.axes[0]
    fc = _fc(ax)
    wrong = np.flatnonzero((fc[:, 0] > 0.8) & (fc[:, 1] < 0.3))
    grey = np.flatnonzero(np.all(np.isclose(fc, IGNORED_COLOR), axis=1))
    assert wrong.tolist() == [2, 4, 9] and grey.tolist() == [6, 7]
    assert "3 of 8 wrong, 37.5%" in ax.get_title()
    assert (tmp_path / "e.png").stat().st_size > 1000


def test_confidence_heatmap_from_probabilities(tmp_path):
    from matplotlib import colormaps

    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    fig = confidence_heatmap(np.eye(3), probs, path=tmp_path / "c.png")
    fc = _fc(fig.axes[0])
    np.testing.assert_allclose(fc, colormaps["magma"](np.array([0.9, 0.5, 0.8]))[:, :3], atol=1e-6)
    assert "mean 0.733" in fig.axes[0].get_title()
    html = confidence_heatmap(np.eye(3), probs, html=True)
    assert any(getattr(t.marker, "showscale", False) for t in html.data)
    with pytest.raises(ShapeError):
        confidence_heatmap(np.eye(3), np.ones(4))
