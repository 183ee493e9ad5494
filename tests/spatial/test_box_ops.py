"""3D IoU, NMS and mAP against hand-worked cases and an independent dense computation."""

import math

import numpy as np
import pytest

from fastai_sparse.box_ops import (
    average_precision,
    box_iou_3d,
    mean_average_precision,
    nms_3d,
    polygon_area,
    polygon_clip,
)
from fastai_sparse.errors import ShapeError
from fastai_sparse.geometry import Boxes


def _dense_iou(a, b, n=400):
    """Independent reference: footprint overlap by dense sampling of a grid (no clipping code)."""
    lo = np.minimum(a[:2] - np.hypot(*a[3:5]), b[:2] - np.hypot(*b[3:5]))
    hi = np.maximum(a[:2] + np.hypot(*a[3:5]), b[:2] + np.hypot(*b[3:5]))
    xs = lo[0] + (np.arange(n) + 0.5) * (hi[0] - lo[0]) / n
    ys = lo[1] + (np.arange(n) + 0.5) * (hi[1] - lo[1]) / n
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    cell = (hi[0] - lo[0]) * (hi[1] - lo[1]) / n**2

    def inside(box):
        dx, dy = X - box[0], Y - box[1]
        c, s = math.cos(box[6]), math.sin(box[6])
        u, v = c * dx + s * dy, -s * dx + c * dy
        return (np.abs(u) <= box[3] / 2) & (np.abs(v) <= box[4] / 2)

    area = (inside(a) & inside(b)).sum() * cell
    zov = max(0.0, min(a[2] + a[5] / 2, b[2] + b[5] / 2) - max(a[2] - a[5] / 2, b[2] - b[5] / 2))
    inter = area * zov
    return inter / (np.prod(a[3:6]) + np.prod(b[3:6]) - inter)


def test_identical_and_disjoint():
    a = np.array([[1.0, 2.0, 0.5, 1.0, 2.0, 1.0, 0.3]])
    assert box_iou_3d(a, a)[0, 0] == pytest.approx(1.0)
    assert box_iou_3d(a, a, rotated=False)[0, 0] == pytest.approx(1.0)
    far = a.copy()
    far[0, 0] += 10
    assert box_iou_3d(a, far)[0, 0] == 0.0
    above = a.copy()
    above[0, 2] += 1.0  # touching in z only
    assert box_iou_3d(a, above)[0, 0] == 0.0


def test_axis_aligned_hand_case():
    # unit cubes shifted by 0.5 along x: intersection 0.5, union 1.5 -> 1/3
    a = np.array([[0, 0, 0, 1, 1, 1, 0.0]])
    b = np.array([[0.5, 0, 0, 1, 1, 1, 0.0]])
    assert box_iou_3d(a, b)[0, 0] == pytest.approx(1 / 3)
    assert box_iou_3d(a, b, rotated=False)[0, 0] == pytest.approx(1 / 3)
    # half overlap in z as well: inter 0.25, union 1.75
    b[0, 2] = 0.5
    assert box_iou_3d(a, b)[0, 0] == pytest.approx(0.25 / 1.75)


def test_analytic_45_degrees():
    # a unit square and the same square turned 45 degrees about its centre: the intersection is
    # a regular octagon of area 2 * (sqrt(2) - 1); same height -> IoU = A / (2 - A)
    a = np.array([[0, 0, 0, 1, 1, 1, 0.0]])
    b = np.array([[0, 0, 0, 1, 1, 1, math.pi / 4]])
    inter = 2 * (math.sqrt(2) - 1)
    assert box_iou_3d(a, b)[0, 0] == pytest.approx(inter / (2 - inter), rel=1e-9)
    # axis-aligned mode ignores yaw
    assert box_iou_3d(a, b, rotated=False)[0, 0] == pytest.approx(1.0)


def test_rotated_vs_dense_sampling():
    rng = np.random.default_rng(0)
    for _ in range(6):
        a = np.r_[rng.uniform(-0.3, 0.3, 3), rng.uniform(0.5, 1.5, 3), rng.uniform(-np.pi, np.pi)]
        b = np.r_[rng.uniform(-0.3, 0.3, 3), rng.uniform(0.5, 1.5, 3), rng.uniform(-np.pi, np.pi)]
        got = box_iou_3d(a[None], b[None])[0, 0]
        assert got == pytest.approx(_dense_iou(a, b), abs=0.01)


def test_yaw_pi_is_the_same_box_and_symmetry():
    a = np.array([[0, 0, 0, 2, 1, 1, 0.4]])
    b = a.copy()
    b[0, 6] += math.pi
    assert box_iou_3d(a, b)[0, 0] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    x = np.c_[rng.uniform(-1, 1, (5, 3)), rng.uniform(0.3, 1.5, (5, 3)), rng.uniform(-3, 3, 5)]
    iou = box_iou_3d(x, x)
    assert np.allclose(iou, iou.T)
    assert np.allclose(np.diag(iou), 1)


def test_polygon_helpers():
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert polygon_area(sq) == pytest.approx(1)
    assert polygon_area(polygon_clip(sq, sq + 2)) == 0
    assert polygon_area(polygon_clip(sq, sq + 0.5)) == pytest.approx(0.25)


def test_accepts_geometry_boxes_and_rejects_bad_shapes():
    b = Boxes([[0, 0, 0]], [[1, 1, 1]], [0], [0])
    assert box_iou_3d(b, b)[0, 0] == pytest.approx(1)
    assert box_iou_3d(np.zeros((0, 7)), b).shape == (0, 1)
    with pytest.raises(ShapeError, match=r"\[K, 7\]"):
        box_iou_3d(np.zeros((2, 6)), b)


def test_nms():
    boxes = np.array(
        [[0, 0, 0, 1, 1, 1, 0], [0.05, 0, 0, 1, 1, 1, 0], [3, 0, 0, 1, 1, 1, 0], [0.1, 0, 0, 1, 1, 1, 0.1]],
        float,
    )
    scores = np.array([0.6, 0.9, 0.5, 0.2])
    keep = nms_3d(boxes, scores, 0.5)
    assert keep.tolist() == [1, 2]
    assert nms_3d(boxes, scores, 0.99).tolist() == [1, 0, 2, 3]
    assert nms_3d(np.zeros((0, 7)), np.zeros(0)).tolist() == []


def test_average_precision_hand_case():
    # 3 gts; ranked detections TP, FP, TP -> recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3
    # envelope: 1 at r=1/3, 2/3 at r=2/3 -> AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    ap = average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), 3)
    assert ap == pytest.approx(5 / 9)
    assert average_precision(np.array([True]), np.array([1.0]), 1) == pytest.approx(1)


def _box(x, y=0.0, s=1.0):
    return [x, y, 0.5, s, s, 1.0, 0.0]


def test_map_hand_made_set():
    # sample 0: two gts of class 0 (x=0, x=5), one of class 1 (x=10)
    # sample 1: one gt of class 0 (x=0)
    gt_b = [np.array([_box(0), _box(5), _box(10)]), np.array([_box(0)])]
    gt_l = [np.array([0, 0, 1]), np.array([0])]
    # class 0 predictions, ranked: s0 x=0.1 (TP, .95), s0 duplicate x=0 (FP dup, .9),
    # s1 x=20 (FP, .8), s1 x=0 (TP, .7); gt s0 x=5 is missed.
    # class 1: one TP at 0.6
    pred_b = [np.array([_box(0.1), _box(0), _box(10)]), np.array([_box(20), _box(0)])]
    pred_s = [np.array([0.95, 0.9, 0.6]), np.array([0.8, 0.7])]
    pred_l = [np.array([0, 0, 1]), np.array([0, 0])]
    res = mean_average_precision(pred_b, pred_s, pred_l, gt_b, gt_l, iou_threshold=0.5)
    # class 0: tp flags by rank T F F T, n_gt 3: recall 1/3 (p 1), 1/3, 1/3, 2/3 (p 2/4)
    # AP = 1/3 * 1 + 1/3 * 1/2 = 1/2
    assert res["ap"][0] == pytest.approx(0.5)
    assert res["ap"][1] == pytest.approx(1.0)
    assert res["map"] == pytest.approx(0.75)
    assert res["n_gt"].tolist() == [3, 1]
    assert res["n_pred"].tolist() == [4, 1]
    # an IoU threshold the offset box (IoU 0.9/1.1 = 0.818) fails: the duplicate at x=0 becomes TP
    res = mean_average_precision(pred_b, pred_s, pred_l, gt_b, gt_l, iou_threshold=0.9)
    # ranks: F(0.95) T(0.9) F(0.8) T(0.7) -> recall 0,1/3,1/3,2/3; precision 0,1/2,1/3,1/2
    # envelope at r=1/3: max(1/2, 1/3, 1/2) = 1/2; at 2/3: 1/2 -> AP = 1/3
    assert res["ap"][0] == pytest.approx(1 / 3)


def test_map_no_predictions_no_gt():
    gt_b = [np.array([_box(0)]), np.zeros((0, 7))]
    gt_l = [np.array([0]), np.zeros(0, int)]
    empty = [np.zeros((0, 7)), np.zeros((0, 7))]
    res = mean_average_precision(empty, [np.zeros(0)] * 2, [np.zeros(0, int)] * 2, gt_b, gt_l, num_classes=2)
    assert res["ap"][0] == 0.0 and np.isnan(res["ap"][1]) and res["map"] == 0.0
    # a prediction of a class with no ground truth does not count
    res = mean_average_precision(
        [np.array([_box(0)]), np.array([_box(3)])],
        [np.array([0.9]), np.array([0.9])],
        [np.array([0]), np.array([1])],
        gt_b,
        gt_l,
        num_classes=2,
    )
    assert res["map"] == pytest.approx(1.0)
    with pytest.raises(ShapeError):
        mean_average_precision(empty, [np.zeros(0)], [np.zeros(0, int)] * 2, gt_b, gt_l)
