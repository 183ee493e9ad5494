"""Spatial target types: :class:`VectorTarget` (a 3-vector that moves with the geometry),
:class:`BoundingBoxes` (oriented 3D boxes) and :class:`KeypointTarget` (named keypoints, with
axes). Every spatial transform moves them with the points (``map_points``); their metrics are
in :mod:`fastai_sparse.spatial.metrics`, their heads and losses in
:mod:`fastai_sparse.models.detection` and :mod:`fastai_sparse.models.keypoints`.

Also importable from :mod:`fastai_sparse.targets`, where they used to live. torch is imported
inside the methods that need it, so registering these types (``fastai-sparse plugins``) stays
light.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataFormatError, ShapeError
from ..geometry import Boxes, Keypoints, jacobian
from ..targets import TargetType, _classes, _path, _short

if TYPE_CHECKING:
    import torch

__all__ = ["BoundingBoxes", "KeypointTarget", "VectorTarget"]


class VectorTarget:
    """A 3-vector regression target that moves with the geometry.

    value: float32 [3]; kind: ``"direction"`` (rotated and reflected by the local linear map,
    length kept: e.g. an up axis), ``"displacement"`` (multiplied by the linear map, length
    changes with scale) or ``"normal"`` (inverse-transpose, length kept). The vector is
    attached at ``origin`` (float [3], default the coordinate origin): for non-affine maps its
    local Jacobian is taken there, and the origin moves with the points.
    """

    def __init__(self, value, kind: str = "direction", origin=None):
        self.value = np.asarray(value, np.float32).reshape(3)
        if kind not in ("direction", "displacement", "normal"):
            raise ValueError(
                f"VectorTarget: kind must be 'direction', 'displacement' or 'normal', got {kind!r}"
            )
        self.kind = kind
        self.origin = np.zeros(3, np.float32) if origin is None else np.asarray(origin, np.float32).reshape(3)

    def __repr__(self) -> str:
        return f"VectorTarget({self.value.tolist()}, kind={self.kind!r})"

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def map_points(self, fn, linear=None) -> VectorTarget:
        j = np.asarray(linear, np.float64) if linear is not None else jacobian(fn, self.origin[None])[0]
        v = self.value.astype(np.float64)
        out = np.linalg.inv(j).T @ v if self.kind == "normal" else j @ v
        if self.kind != "displacement":
            n = np.linalg.norm(out)
            out = out / n * np.linalg.norm(v) if n > 0 else out
        origin = np.asarray(fn(self.origin[None].astype(np.float64)), np.float64)[0]
        return VectorTarget(out, self.kind, origin)


def _point_xyz_input(clouds) -> dict[str, torch.Tensor]:
    """``{"point_xyz": float32 [N_total, 3]}``: the points' coordinates, which spatial heads use
    to place their predictions in the cloud's frame."""
    import torch

    return {"point_xyz": torch.from_numpy(np.concatenate([c.xyz for c in clouds]).astype(np.float32))}


class BoundingBoxes(TargetType):
    """Oriented boxes per sample (``cloud.target``: :class:`~fastai_sparse.geometry.Boxes`).

    Collates to ``{"boxes": float32 [K_total, 7] (cx, cy, cz, sx, sy, sz, yaw), "labels":
    int64 [K_total], "batch": int64 [K_total]}``; ``collate_inputs`` adds ``x["point_xyz"]``.
    The model is a :class:`~fastai_sparse.models.detection.CenterHead` (output [B, C_max,
    12 + K], ``num_outputs`` = K + 8 regression channels); loss
    :class:`~fastai_sparse.models.detection.CenterDetectionLoss`; ``decode`` gives scored boxes
    after per-class NMS (``nms_iou``, rotated or axis-aligned with ``rotated_nms``); metrics
    mAP at 3D IoU 0.25 and 0.5.

    Bad input: a box with a size <= ``min_size`` or non-finite values, or a label outside the
    classes, raises DataFormatError naming the file and the box. A sample with no boxes is
    valid (e.g. every box dropped by a crop): it trains with an all-negative heatmap.
    """

    name = "bounding-boxes"
    per = "sample"
    metrics = ("map-0.25", "map-0.5")

    def __init__(
        self,
        classes: Sequence[str] | int,
        min_size: float = 1e-6,
        score_threshold: float = 0.1,
        nms_iou: float = 0.25,
        rotated_nms: bool = True,
        max_boxes: int = 50,
    ):
        self.classes = _classes(classes, "BoundingBoxes")
        self.min_size = float(min_size)
        self.score_threshold, self.nms_iou = float(score_threshold), float(nms_iou)
        self.rotated_nms, self.max_boxes = bool(rotated_nms), int(max_boxes)

    def __repr__(self) -> str:
        return f"BoundingBoxes(classes={_short(self.classes)})"

    @property
    def num_outputs(self) -> int:
        return len(self.classes) + 8

    def check(self, cloud):
        b, path = cloud.target, _path(cloud)
        if not isinstance(b, Boxes):
            raise DataFormatError(
                f"target must be geometry.Boxes, got {type(b).__name__}", path=path, field="target"
            )
        if len(b) == 0:
            return
        bad = ~(
            np.isfinite(b.sizes).all(1)
            & (b.sizes > self.min_size).all(1)
            & np.isfinite(b.yaw)
            & np.isfinite(b.centers).all(1)
        )
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"box {i} is degenerate: centre {b.centers[i].tolist()}, size {b.sizes[i].tolist()}, yaw "
                f"{float(b.yaw[i])}; expected sizes > {self.min_size:g} and finite values",
                path=path,
                field="target",
            )
        k = len(self.classes)
        badl = (b.labels < 0) | (b.labels >= k)
        if badl.any():
            i = int(np.flatnonzero(badl)[0])
            raise DataFormatError(
                f"box {i} has label {int(b.labels[i])}, expected 0..{k - 1}", path=path, field="target"
            )

    def collate(self, clouds):
        import torch

        rows, labels, batch = [], [], []
        for i, c in enumerate(clouds):
            b = c.target
            rows.append(np.concatenate([b.centers, b.sizes, b.yaw[:, None]], axis=1).reshape(-1, 7))
            labels.append(b.labels)
            batch.append(np.full(len(b), i, np.int64))
        return {
            "boxes": torch.from_numpy(np.concatenate(rows).astype(np.float32)),
            "labels": torch.from_numpy(np.concatenate(labels).astype(np.int64)),
            "batch": torch.from_numpy(np.concatenate(batch)),
        }

    def collate_inputs(self, clouds) -> dict[str, torch.Tensor]:
        return _point_xyz_input(clouds)

    def loss_func(self):
        from ..models.detection import CenterDetectionLoss

        return CenterDetectionLoss(len(self.classes))

    def detections(self, pred) -> list[dict[str, np.ndarray]]:
        """Per sample ``{"boxes": float32 [D, 7], "scores": float32 [D], "labels": int64 [D]}``
        from head outputs [B, C_max, 12 + K] (a single sample [C_max, 12 + K], or a list)."""
        from ..models.detection import decode_detections

        return decode_detections(
            pred,
            len(self.classes),
            score_threshold=self.score_threshold,
            nms_iou=self.nms_iou,
            max_boxes=self.max_boxes,
            rotated=self.rotated_nms,
        )

    def decode(self, pred) -> list[Boxes]:
        """One :class:`~fastai_sparse.geometry.Boxes` per sample (best first); the scores are in
        :meth:`detections`."""
        return [
            Boxes(d["boxes"][:, :3], d["boxes"][:, 3:6], d["boxes"][:, 6], d["labels"])
            for d in self.detections(pred)
        ]

    def result_json(self, pred) -> dict[str, Any]:
        """``{"boxes": [{"center", "size", "yaw", "class", "score"}, ...]}`` for one sample's
        output [C_max, 12 + K] (what ``fastai-sparse predict`` writes)."""
        import torch

        d = self.detections(torch.as_tensor(pred))[0]
        return {
            "boxes": [
                {
                    "center": d["boxes"][i, :3].tolist(),
                    "size": d["boxes"][i, 3:6].tolist(),
                    "yaw": float(d["boxes"][i, 6]),
                    "class": self.classes[int(d["labels"][i])],
                    "score": float(d["scores"][i]),
                }
                for i in range(len(d["scores"]))
            ]
        }

    def check_output(self, out, x, y=None) -> None:
        """Raise ShapeError unless ``out`` is a CenterHead output for this target and batch."""
        import torch

        bs = int(x["voxel_offsets"].shape[0]) - 1
        width = 12 + len(self.classes)
        if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[0] != bs or out.shape[2] != width:
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeError(
                f"BoundingBoxes: model output must be [B={bs}, C, {width}] (valid, xyz, {len(self.classes)} "
                f"heatmap logits, 8 box values per BEV cell), got {shape}"
            )
        valid = out[..., 0]
        if not bool(((valid == 0) | (valid == 1)).all()) or not bool((valid.sum(1) > 0).all()):
            raise ShapeError("BoundingBoxes: column 0 must flag valid cells (0 or 1), >= 1 per sample")


class KeypointTarget(TargetType):
    """K named keypoints per sample (``cloud.target``: :class:`~fastai_sparse.geometry.Keypoints`
    with K == len(names), and axes when ``axes=True``).

    Collates to ``{"points": float32 [B, K, 3]}`` plus ``"axes": float32 [B, K, 3]`` when
    ``axes=True``; ``collate_inputs`` adds ``x["point_xyz"]``. Model: a
    :class:`~fastai_sparse.models.keypoints.VoteKeypointHead` (output [B, K * 7] with axes,
    [B, K * 4] without); loss :class:`~fastai_sparse.models.keypoints.KeypointLoss`
    (``scale``: a typical object size); ``decode`` gives :class:`Keypoints` with unit axes.
    Metrics: mean distance, PCK at ``pck_threshold`` (cloud units), and the mean angle
    between predicted and true axes (degrees) when ``axes=True``.

    Bad input: a sample whose keypoint count differs from ``len(names)``, or without axes
    when ``axes=True``, raises DataFormatError (``collate`` raises ShapeError for mixed
    counts). Keypoints outside the scene (beyond the points' bounding box, e.g. after a crop:
    see ``meta["keypoints_in_crop"]``) are kept as targets by default, since votes can reach
    them; with ``max_outside=d`` a keypoint farther than ``d`` outside the bounding box of the
    points raises DataFormatError naming it.
    """

    name = "keypoints"
    per = "sample"
    metrics = ("mean-distance", "pck")

    def __init__(
        self,
        names: Sequence[str],
        axes: bool = False,
        max_outside: float | None = None,
        scale: float = 1.0,
        pck_threshold: float = 0.1,
    ):
        self.names = tuple(names)
        if not self.names:
            raise ValueError("KeypointTarget: at least one keypoint name is needed")
        self.axes = bool(axes)
        self.max_outside = None if max_outside is None else float(max_outside)
        self.scale, self.pck_threshold = float(scale), float(pck_threshold)
        self.metrics = ("mean-distance", "pck") + (("axis-angle-error",) if self.axes else ())

    def _fields(self):
        return {"names": self.names, "axes": self.axes}

    @property
    def classes(self) -> tuple[str, ...]:
        return self.names

    @property
    def num_outputs(self) -> int:
        return len(self.names) * (7 if self.axes else 4)

    def check(self, cloud):
        k, path = cloud.target, _path(cloud)
        if not isinstance(k, Keypoints):
            raise DataFormatError(
                f"target must be geometry.Keypoints, got {type(k).__name__}", path=path, field="target"
            )
        if len(k) != len(self.names):
            raise DataFormatError(
                f"{len(k)} keypoints, expected {len(self.names)} ({', '.join(self.names)})",
                path=path,
                field="target",
            )
        if self.axes and k.axes is None:
            raise DataFormatError(
                "keypoints have no axes but KeypointTarget(axes=True)", path=path, field="target"
            )
        if self.axes and not (np.isfinite(k.axes).all() and (np.linalg.norm(k.axes, axis=1) > 0).all()):
            i = int(np.flatnonzero(~np.isfinite(k.axes).all(1) | (np.linalg.norm(k.axes, axis=1) == 0))[0])
            raise DataFormatError(
                f"keypoint {i} ({self.names[i]}) has axis {k.axes[i].tolist()}; expected a finite non-zero "
                "direction",
                path=path,
                field="target",
            )
        if self.max_outside is not None and len(cloud):
            lo, hi = cloud.xyz.min(0), cloud.xyz.max(0)
            out = np.maximum(lo - k.points, 0) + np.maximum(k.points - hi, 0)
            dist = np.linalg.norm(out, axis=1)
            if (dist > self.max_outside).any():
                i = int(np.argmax(dist))
                raise DataFormatError(
                    f"keypoint {i} ({self.names[i]}) at {k.points[i].tolist()} is {dist[i]:.3g} outside the "
                    f"points' bounding box {lo.tolist()}..{hi.tolist()}; at most {self.max_outside:g} allowed",
                    path=path,
                    field="target",
                )

    def collate(self, clouds):
        import torch

        counts = {len(c.target) for c in clouds}
        if len(counts) != 1 or counts != {len(self.names)}:
            raise ShapeError(
                f"KeypointTarget.collate: samples have {sorted(len(c.target) for c in clouds)} keypoints, "
                f"expected {len(self.names)} each"
            )
        out = {"points": torch.from_numpy(np.stack([c.target.points for c in clouds]).astype(np.float32))}
        if self.axes:
            if any(c.target.axes is None for c in clouds):
                raise ShapeError("KeypointTarget.collate: a sample has no axes but axes=True")
            out["axes"] = torch.from_numpy(np.stack([c.target.axes for c in clouds]).astype(np.float32))
        return out

    def collate_inputs(self, clouds) -> dict[str, torch.Tensor]:
        return _point_xyz_input(clouds)

    def loss_func(self):
        from ..models.keypoints import KeypointLoss

        return KeypointLoss(len(self.names), self.axes, scale=self.scale)

    def split_output(self, pred) -> dict[str, torch.Tensor]:
        """``{"points": [B, K, 3], "axes": [B, K, 3] (with axes), "variance": [B, K]}``."""
        import torch

        from ..models.keypoints import split_keypoint_output

        pred = torch.as_tensor(pred)
        return split_keypoint_output(pred[None] if pred.ndim == 1 else pred, len(self.names), self.axes)

    def decode(self, pred) -> list[Keypoints]:
        """One :class:`~fastai_sparse.geometry.Keypoints` per sample from outputs [B, K * (7|4)]
        (or one sample's [K * (7|4)])."""
        out = self.split_output(pred)
        pts = out["points"].detach().float().cpu().numpy()
        axes = out["axes"].detach().float().cpu().numpy() if self.axes else None
        return [Keypoints(pts[i], None if axes is None else axes[i]) for i in range(len(pts))]

    def result_json(self, pred) -> dict[str, Any]:
        """``{"keypoints": [{"name", "point", "axis"?}, ...]}`` for one sample's output."""
        import torch

        kp = self.decode(torch.as_tensor(pred))[0]
        rows = []
        for i, name in enumerate(self.names):
            row: dict[str, Any] = {"name": name, "point": kp.points[i].tolist()}
            if kp.axes is not None:
                row["axis"] = kp.axes[i].tolist()
            rows.append(row)
        return {"keypoints": rows}

    def check_output(self, out, x, y=None) -> None:
        """Raise ShapeError unless ``out`` is [B, num_outputs] with unit axes."""
        import torch

        bs = int(x["voxel_offsets"].shape[0]) - 1
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (bs, self.num_outputs):
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeError(f"KeypointTarget: model output must be [{bs}, {self.num_outputs}], got {shape}")
        parts = self.split_output(out.detach())
        if self.axes and not torch.allclose(parts["axes"].norm(dim=-1), torch.ones(1), atol=1e-3):
            raise ShapeError("KeypointTarget: predicted axes must be unit vectors")
        if bool((parts["variance"] < -1e-6).any()):
            raise ShapeError("KeypointTarget: vote variances must be >= 0")
