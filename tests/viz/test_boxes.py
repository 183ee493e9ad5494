import numpy as np
import plotly.graph_objects as go
import pytest

from fastai_sparse.geometry import Boxes, Keypoints, PointCloud
from fastai_sparse.viz import BOX_EDGES, box_edges, draw_boxes, draw_keypoints, plot_points, show_detection


def test_box_edges_are_the_12_edges():
    assert BOX_EDGES.shape == (12, 2)
    assert len({tuple(sorted(e)) for e in BOX_EDGES.tolist()}) == 12
    b = Boxes([[1, 2, 3]], [[2, 4, 6]], [0.0], [0])
    seg = box_edges(b)[0]  # [12, 2, 3]
    d = np.abs(seg[:, 1] - seg[:, 0])
    # each edge is parallel to one axis and as long as the box along that axis: 4 of each
    assert ((d > 1e-6).sum(1) == 1).all()
    assert sorted(np.round(d.max(1), 5).tolist()) == [2.0] * 4 + [4.0] * 4 + [6.0] * 4
    # every corner is used by exactly 3 edges
    assert np.bincount(BOX_EDGES.ravel()).tolist() == [3] * 8


def test_box_edges_rotated_keep_lengths():
    b = Boxes([[0, 0, 0]], [[2, 1, 0.5]], [0.7], [0])
    seg = box_edges(b)[0]
    lengths = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1)
    assert sorted(np.round(lengths, 5).tolist()) == [0.5] * 4 + [1.0] * 4 + [2.0] * 4


def test_draw_boxes_matplotlib_and_plotly():
    b = Boxes([[0, 0, 0], [3, 0, 0]], [[1, 1, 1], [1, 2, 1]], [0, 0.3], [0, 1])
    ax = plot_points(np.random.default_rng(0).random((50, 3)))
    draw_boxes(ax, b, class_names=["a", "b"])
    assert len(ax.lines) == 24
    fig = draw_boxes(go.Figure(), b, color="red")
    assert len(fig.data) == 2
    xs = np.array(fig.data[1].x, dtype=float)
    assert np.isnan(xs).sum() == 12 and len(xs) == 36  # 12 segments separated by gaps
    corners = b.corners()[1]
    pts = np.c_[fig.data[1].x, fig.data[1].y, fig.data[1].z].astype(float)
    pts = pts[~np.isnan(pts[:, 0])]
    assert np.abs(pts[:, None] - corners[None]).sum(-1).min(1).max() < 1e-5  # all on corners


def test_draw_keypoints_with_axes():
    kp = Keypoints([[0, 0, 0], [1, 1, 1]], [[0, 0, 1], [1, 0, 0]])
    ax = plot_points(np.random.default_rng(0).random((20, 3)))
    draw_keypoints(ax, kp, axis_length=0.5)
    assert len(ax.collections) == 3  # cloud, keypoints, quiver
    fig = draw_keypoints(go.Figure(), kp, axis_length=0.5)
    kinds = [type(t).__name__ for t in fig.data]
    assert kinds == ["Scatter3d", "Scatter3d", "Cone"]
    np.testing.assert_allclose(np.array(fig.data[2].x, float), [0, 1.5])  # tips = point + 0.5 * axis
    np.testing.assert_allclose(np.array(fig.data[2].z, float), [0.5, 1])


@pytest.mark.parametrize("html", [False, True])
def test_show_detection_two_panels(html, tmp_path):
    r = np.random.default_rng(1)
    gt = Boxes([[1, 1, 0.5]], [[1, 1, 1]], [0.0], [1])
    cloud = PointCloud(r.random((300, 3)) * 3, {"rgb": r.random((300, 3)).astype(np.float32)}, target=gt)
    pred = Boxes([[1.1, 1, 0.5], [2, 2, 1]], [[1, 1, 1], [0.5, 0.5, 0.5]], [0.1, 0], [1, 0])
    path = tmp_path / ("d.html" if html else "d.png")
    fig = show_detection(cloud, pred, class_names=["a", "b"], path=path)
    assert path.stat().st_size > 1000
    if html:
        line_traces = [t for t in fig.data if t.mode == "lines"]
        assert [t.scene for t in line_traces] == ["scene", "scene2", "scene2"]
    else:
        axes = [a for a in fig.axes if a.name == "3d"]
        assert [len(a.lines) for a in axes] == [12, 24]
        assert axes[0].get_title().startswith("ground truth (1)")
