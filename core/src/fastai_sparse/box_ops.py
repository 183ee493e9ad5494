"""3D box geometry for detection: IoU (axis-aligned and z-yaw rotated), NMS and mAP.

Boxes are rows ``(cx, cy, cz, sx, sy, sz, yaw)`` (float [K, 7]): centre, extents along the
box's own x, y, z, and rotation about +z in radians (the layout of
:class:`fastai_sparse.geometry.Boxes` and of ``BoundingBoxes.collate``).

Rotated IoU: the boxes' footprints are convex quadrilaterals in the xy plane; their
intersection is computed exactly by convex polygon clipping (Sutherland-Hodgman), times the
overlap of the z intervals. Axis-aligned IoU ignores the yaw (each box is taken with yaw 0).

mAP follows the usual VOC / ScanNet protocol: per class, detections of every sample sorted by
score (descending); each is matched greedily to the not-yet-matched ground-truth box of the
same class and sample with the highest IoU, if that IoU >= the threshold, else it is a false
positive (so a duplicate detection of an already matched box is a false positive); AP is
the area under the all-point interpolated precision-recall curve; mAP is the mean over
classes that have at least one ground-truth box (classes with none are left out, their
detections cannot be scored).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import ShapeError

__all__ = [
    "average_precision",
    "bev_corners",
    "box_iou_3d",
    "boxes_array",
    "mean_average_precision",
    "nms_3d",
    "polygon_area",
    "polygon_clip",
]


def boxes_array(boxes, name: str = "boxes") -> np.ndarray:
    """float64 [K, 7] from a [K, 7] array-like or a :class:`~fastai_sparse.geometry.Boxes`."""
    if hasattr(boxes, "centers") and hasattr(boxes, "sizes"):
        boxes = np.concatenate([boxes.centers, boxes.sizes, np.asarray(boxes.yaw)[:, None]], axis=1)
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return b.reshape(0, 7)
    if b.ndim != 2 or b.shape[1] != 7:
        raise ShapeError(f"{name} must have shape [K, 7] (cx, cy, cz, sx, sy, sz, yaw), got {list(b.shape)}")
    return b


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """float64 [K, 4, 2]: footprint corners of boxes [K, 7], counter-clockwise."""
    b = boxes_array(boxes)
    signs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    local = signs[None] * b[:, None, 3:5] / 2
    c, s = np.cos(b[:, 6])[:, None], np.sin(b[:, 6])[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y], -1) + b[:, None, 0:2]


def polygon_area(poly: np.ndarray) -> float:
    """Area of a simple polygon float [P, 2] (shoelace; 0 for fewer than 3 vertices)."""
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def polygon_clip(subject: np.ndarray, clipper: np.ndarray) -> np.ndarray:
    """Intersection of a polygon ``subject`` [P, 2] with a convex counter-clockwise polygon
    ``clipper`` [Q, 2] (Sutherland-Hodgman); returns its vertices [R, 2] (R may be 0)."""
    out = [tuple(p) for p in subject]
    q = len(clipper)
    for i in range(q):
        if not out:
            break
        a, b = clipper[i], clipper[(i + 1) % q]
        ex, ey = b[0] - a[0], b[1] - a[1]

        def side(p, a=a, ex=ex, ey=ey):  # > 0 left of the edge a -> b (inside for CCW)
            return ex * (p[1] - a[1]) - ey * (p[0] - a[0])

        inp, out = out, []
        prev = inp[-1]
        sp = side(prev)
        for cur in inp:
            sc = side(cur)
            if sc >= 0:
                if sp < 0:
                    t = sp / (sp - sc)
                    out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
                out.append(cur)
            elif sp >= 0:
                t = sp / (sp - sc)
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            prev, sp = cur, sc
    return np.asarray(out, np.float64).reshape(-1, 2)


def box_iou_3d(a, b, rotated: bool = True) -> np.ndarray:
    """3D IoU float64 [K, L] between boxes ``a`` [K, 7] and ``b`` [L, 7].

    rotated: True uses each box's yaw (exact footprint intersection by polygon clipping);
    False treats every box as axis-aligned (yaw ignored). Boxes with a non-positive size have
    zero volume and IoU 0 with everything.
    """
    a, b = boxes_array(a, "a"), boxes_array(b, "b")
    k, n = len(a), len(b)
    out = np.zeros((k, n), np.float64)
    if k == 0 or n == 0:
        return out
    vol_a = np.prod(np.clip(a[:, 3:6], 0, None), axis=1)
    vol_b = np.prod(np.clip(b[:, 3:6], 0, None), axis=1)
    za0, za1 = a[:, 2] - a[:, 5] / 2, a[:, 2] + a[:, 5] / 2
    zb0, zb1 = b[:, 2] - b[:, 5] / 2, b[:, 2] + b[:, 5] / 2
    zov = np.clip(np.minimum(za1[:, None], zb1[None]) - np.maximum(za0[:, None], zb0[None]), 0, None)
    if not rotated:
        ov = np.ones((k, n))
        for d in range(2):
            lo = np.maximum(a[:, None, d] - a[:, None, 3 + d] / 2, b[None, :, d] - b[None, :, 3 + d] / 2)
            hi = np.minimum(a[:, None, d] + a[:, None, 3 + d] / 2, b[None, :, d] + b[None, :, 3 + d] / 2)
            ov *= np.clip(hi - lo, 0, None)
        inter = ov * zov
    else:
        inter = np.zeros((k, n))
        ca, cb = bev_corners(a), bev_corners(b)
        # only pairs whose bounding circles overlap in xy and whose z ranges overlap
        ra = np.hypot(a[:, 3], a[:, 4]) / 2
        rb = np.hypot(b[:, 3], b[:, 4]) / 2
        dist = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
        cand = (dist < ra[:, None] + rb[None]) & (zov > 0) & (vol_a[:, None] > 0) & (vol_b[None] > 0)
        for i, j in zip(*np.nonzero(cand)):
            inter[i, j] = polygon_area(polygon_clip(ca[i], cb[j])) * zov[i, j]
    union = vol_a[:, None] + vol_b[None] - inter
    np.divide(inter, union, out=out, where=union > 0)
    return np.clip(out, 0.0, 1.0)


def nms_3d(
    boxes, scores, iou_threshold: float = 0.25, rotated: bool = True, max_out: int | None = None
) -> np.ndarray:
    """Greedy non-maximum suppression: int64 indices of the kept boxes, by descending score.

    A box is suppressed when its 3D IoU with an already kept box exceeds ``iou_threshold``.
    """
    b = boxes_array(boxes)
    s = np.asarray(scores, np.float64).reshape(-1)
    if len(s) != len(b):
        raise ShapeError(f"nms_3d: {len(b)} boxes but {len(s)} scores")
    order = np.argsort(-s, kind="stable")
    if len(order) == 0:
        return order.astype(np.int64)
    iou = box_iou_3d(b[order], b[order], rotated=rotated)
    keep: list[int] = []
    dead = np.zeros(len(order), bool)
    for i in range(len(order)):
        if dead[i]:
            continue
        keep.append(i)
        if max_out is not None and len(keep) >= max_out:
            break
        dead |= iou[i] > iou_threshold
    return order[np.asarray(keep, np.int64)]


def average_precision(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP from per-detection true-positive flags and scores.

    tp: bool [D] (after greedy matching); scores: float [D]; n_gt: number of ground-truth
    boxes (> 0). Detections are sorted by descending score; precision is made monotone
    (the maximum precision at any higher recall) and integrated over recall.
    """
    if n_gt <= 0:
        raise ValueError("average_precision: needs at least one ground-truth box")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    tp = np.asarray(tp, bool)[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    rec = ctp / n_gt
    prec = ctp / np.maximum(ctp + cfp, 1)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def mean_average_precision(
    pred_boxes: Sequence,
    pred_scores: Sequence,
    pred_labels: Sequence,
    gt_boxes: Sequence,
    gt_labels: Sequence,
    iou_threshold: float = 0.25,
    num_classes: int | None = None,
    rotated: bool = True,
) -> dict:
    """mAP over a set of samples (see the module docstring for the protocol).

    Per sample ``i``: pred_boxes[i] float [D_i, 7], pred_scores[i] float [D_i], pred_labels[i]
    int [D_i], gt_boxes[i] float [G_i, 7], gt_labels[i] int [G_i].

    Returns ``{"map": float (nan when no class has ground truth), "ap": float64 [C] (nan for
    classes without ground truth), "n_gt": int64 [C], "n_pred": int64 [C]}``.
    """
    n = len(gt_boxes)
    if not (len(pred_boxes) == len(pred_scores) == len(pred_labels) == len(gt_labels) == n):
        raise ShapeError(
            f"mean_average_precision: got {len(pred_boxes)} prediction and {n} ground-truth samples "
            f"(scores {len(pred_scores)}, labels {len(pred_labels)}, gt labels {len(gt_labels)})"
        )
    pb = [boxes_array(b, "pred_boxes") for b in pred_boxes]
    ps = [np.asarray(s, np.float64).reshape(-1) for s in pred_scores]
    pl = [np.asarray(v, np.int64).reshape(-1) for v in pred_labels]
    gb = [boxes_array(b, "gt_boxes") for b in gt_boxes]
    gl = [np.asarray(v, np.int64).reshape(-1) for v in gt_labels]
    for i in range(n):
        if not (len(pb[i]) == len(ps[i]) == len(pl[i])):
            raise ShapeError(
                f"sample {i}: {len(pb[i])} predicted boxes, {len(ps[i])} scores, {len(pl[i])} labels"
            )
        if len(gb[i]) != len(gl[i]):
            raise ShapeError(f"sample {i}: {len(gb[i])} ground-truth boxes but {len(gl[i])} labels")
    if num_classes is None:
        num_classes = int(max([v.max(initial=-1) for v in pl + gl], default=-1)) + 1
    ap = np.full(num_classes, np.nan)
    n_gt = np.zeros(num_classes, np.int64)
    n_pred = np.zeros(num_classes, np.int64)
    for c in range(num_classes):
        scores, tps = [], []
        total = 0
        for i in range(n):
            g = gb[i][gl[i] == c]
            total += len(g)
            m = pl[i] == c
            d, s = pb[i][m], ps[i][m]
            if len(d) == 0:
                continue
            order = np.argsort(-s, kind="stable")
            d, s = d[order], s[order]
            tp = np.zeros(len(d), bool)
            if len(g):
                iou = box_iou_3d(d, g, rotated=rotated)
                used = np.zeros(len(g), bool)
                for j in range(len(d)):  # greedy by score within the sample (ties: input order)
                    best = int(np.argmax(iou[j]))
                    if iou[j, best] >= iou_threshold and not used[best]:
                        tp[j], used[best] = True, True
            scores.append(s)
            tps.append(tp)
        n_gt[c] = total
        n_pred[c] = sum(len(s) for s in scores)
        if total == 0:
            continue
        if not scores:
            ap[c] = 0.0
            continue
        ap[c] = average_precision(np.concatenate(tps), np.concatenate(scores), total)
    valid = ~np.isnan(ap)
    return {
        "map": float(ap[valid].mean()) if valid.any() else float("nan"),
        "ap": ap,
        "n_gt": n_gt,
        "n_pred": n_pred,
    }
