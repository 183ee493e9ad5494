"""Center-heatmap 3D object detection on a sparse bird's-eye-view (BEV) grid.

The design follows CenterPoint on a sparse grid: the backbone's features are downsampled by
``down`` stride-2 sparse convolutions, max-pooled over z into occupied BEV cells (one per
occupied (x, y) column), refined by submanifold 3x3 convolutions on that 2D sparse grid, and
each cell predicts

- a heatmap logit per class (a Gaussian around every box centre, 1 at the cell nearest it),
- a box regression: centre offset (dx, dy, dz) from the cell's position, log sizes, and the
  yaw as (sin 2*yaw, cos 2*yaw) (a box is the same box after a half turn, so the
  regression is made pi-periodic; decoded yaw is in (-pi/2, pi/2]).

A cell's position is the mean of the input points that fall in it (world units), so the
head needs the points' coordinates: the target types add ``x["point_xyz"]`` float32
[N_total, 3] through ``collate_inputs``.

Output (``per = "raw"``, returned unchanged by :class:`~fastai_sparse.models.SparseModel`):
float32 [B, C_max, 12 + K] for K classes, one row per BEV cell of each sample padded to the
largest sample (C_max); columns: ``0`` valid (1 for a real cell, 0 for padding), ``1:4``
position xyz, ``4:4+K`` heatmap logits, ``4+K:12+K`` regression (see :data:`REG_NAMES`).

:class:`CenterDetectionLoss` assigns targets and computes the focal heatmap loss plus a
smooth-L1 box regression loss; :func:`decode_detections` turns outputs into scored boxes
with per-class non-maximum suppression. :class:`PointFeatureVoxelizer` keeps per-point
features for a VoxelNet-style VFE input stage (it lives in :mod:`fastai_sparse.voxelize`, a
data-side module, and is re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..engine import SparseBatchNorm, SparseConv3d, SparseReLU, SparseTensor, SubMConv3d
from ..errors import DataFormatError, ShapeError
from ..voxelize import PointFeatureVoxelizer  # moved to voxelize; importable here as before
from .vfe import scatter_max

__all__ = [
    "REG_NAMES",
    "CenterDetectionLoss",
    "CenterHead",
    "PointFeatureVoxelizer",
    "decode_detections",
    "detection_columns",
    "point_rows",
    "point_xyz",
    "scatter_mean",
]

#: The 8 regression columns of every cell.
REG_NAMES = ("dx", "dy", "dz", "log_sx", "log_sy", "log_sz", "sin2yaw", "cos2yaw")


def detection_columns(num_classes: int) -> dict[str, slice]:
    """Column slices of the head output for ``num_classes`` classes."""
    k = int(num_classes)
    return {
        "valid": slice(0, 1),
        "position": slice(1, 4),
        "heat": slice(4, 4 + k),
        "reg": slice(4 + k, 12 + k),
    }


def point_xyz(batch: Mapping) -> torch.Tensor:
    """float [N_total, 3] point coordinates of the batch (``x["point_xyz"]``), or a clear error."""
    xyz = batch.get("point_xyz") if isinstance(batch, Mapping) else getattr(batch, "point_xyz", None)
    if xyz is None:
        raise DataFormatError(
            "the batch has no 'point_xyz' (float32 [N, 3] point coordinates); spatial heads need it: "
            "collate with the task's target type (BoundingBoxes / KeypointTarget add it through "
            "collate_inputs)",
            field="point_xyz",
        )
    return xyz


def scatter_mean(x: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of rows ``x`` [N, C] per group ``index`` int64 [N] -> [n, C] (0 for empty groups)."""
    out = x.new_zeros((n, x.shape[1])).index_add_(0, index, x)
    cnt = torch.bincount(index, minlength=n).clamp(min=1).to(x.dtype)
    return out / cnt[:, None]


def _keys(b: torch.Tensor, q: torch.Tensor, ext: torch.Tensor) -> torch.Tensor:
    k = b.long()
    for d in range(q.shape[1]):
        k = k * ext[d] + q[:, d]
    return k


def point_rows(t: SparseTensor, batch: Mapping) -> torch.Tensor:
    """int64 [N_total]: the row of ``t`` (a sparse tensor derived from the batch, any stride)
    whose site contains each input point of the batch."""
    inverse = batch["inverse"].long()
    if t.stride == 1 and t.coords.shape[0] == batch["coords"].shape[0]:
        return inverse
    s = t.stride
    pc = batch["coords"].long()[inverse]
    pq = torch.div(pc[:, 1:], s, rounding_mode="floor")
    tq = torch.div(t.coords.long()[:, 1:], s, rounding_mode="floor")
    ext = torch.maximum(pq.max(0).values, tq.max(0).values) + 1
    tk = _keys(t.coords[:, 0], tq, ext)
    pk = _keys(pc[:, 0], pq, ext)
    order = torch.argsort(tk)
    pos = torch.searchsorted(tk[order], pk).clamp(max=len(tk) - 1)
    rows = order[pos]
    if not bool((tk[rows] == pk).all()):
        raise ShapeError("point_rows: some points fall in no site of the feature tensor")
    return rows


class CenterHead(nn.Module):
    """Center-heatmap detection head on a sparse BEV grid (see the module docstring).

    Args:
        in_channels: backbone output channels.
        num_outputs: ``num_classes + 8`` (``BoundingBoxes.num_outputs``).
        down: number of stride-2 2x2x2 sparse convolutions before the BEV pooling (the BEV
            cell is ``input stride * 2**down`` voxels wide).
        hidden: channels of the head.
        bev_convs: submanifold 3x3 convolutions on the BEV grid.

    ``forward(x: SparseTensor, batch: dict) -> float32 [B, C_max, 12 + K]``.
    """

    per = "raw"
    needs_batch = True

    def __init__(
        self,
        in_channels: int = 16,
        num_outputs: int = 12,
        down: int = 1,
        hidden: int = 32,
        bev_convs: int = 2,
        backend: Any = None,
    ):
        super().__init__()
        self.num_classes = int(num_outputs) - len(REG_NAMES)
        if self.num_classes < 1:
            raise ShapeError(f"CenterHead: num_outputs must be num_classes + 8 >= 9, got {num_outputs}")
        self.in_channels, self.down_steps, self.hidden = in_channels, int(down), hidden
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(self.down_steps):
            layers += [
                SparseConv3d(c, hidden, 2, 2, backend=backend),
                SparseBatchNorm(hidden),
                SparseReLU(),
            ]
            c = hidden
        self.down = nn.Sequential(*layers)
        self.pre = nn.Sequential(nn.Linear(c, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU())
        bev: list[nn.Module] = []
        for _ in range(bev_convs):
            bev += [
                SubMConv3d(hidden, hidden, 3, backend=backend),
                SparseBatchNorm(hidden),
                SparseReLU(),
            ]
        self.bev = nn.Sequential(*bev)
        self.heat = nn.Linear(hidden, self.num_classes)
        self.reg = nn.Linear(hidden, len(REG_NAMES))
        nn.init.constant_(self.heat.bias, -math.log((1 - 0.05) / 0.05))  # prior probability 0.05
        nn.init.normal_(self.reg.weight, std=1e-3)
        nn.init.zeros_(self.reg.bias)

    def forward(self, x: SparseTensor, batch: Mapping) -> torch.Tensor:
        if x.num_channels != self.in_channels:
            raise ShapeError(f"CenterHead: expected {self.in_channels} input channels, got {x.num_channels}")
        xyz = point_xyz(batch).to(x.feats.dtype)
        bs = int(batch["voxel_offsets"].shape[0]) - 1
        t = self.down(x) if self.down_steps else x
        s = t.stride
        # BEV cells: occupied (batch, x // s, y // s) columns, from the points (the same set as
        # the columns of t's sites)
        inverse = batch["inverse"].long()
        pc = batch["coords"].long()[inverse]
        pq = torch.div(pc[:, 1:3], s, rounding_mode="floor")
        tq = torch.div(t.coords.long()[:, 1:3], s, rounding_mode="floor")
        ext = torch.maximum(pq.max(0).values, tq.max(0).values) + 1
        keys, cell = torch.unique(
            torch.cat([_keys(pc[:, 0], pq, ext), _keys(t.coords[:, 0], tq, ext)]),
            return_inverse=True,
        )
        n_pts = pc.shape[0]
        p_cell, t_cell = cell[:n_pts], cell[n_pts:]
        n = keys.shape[0]
        feats = scatter_max(self._pre(t.feats), t_cell, n)
        cb = torch.div(keys, ext[0] * ext[1], rounding_mode="floor")
        rem = keys - cb * ext[0] * ext[1]
        bev_coords = torch.stack(
            [cb, torch.div(rem, ext[1], rounding_mode="floor"), rem % ext[1], torch.zeros_like(cb)],
            1,
        ).to(torch.int32)
        g = SparseTensor(bev_coords, feats, batch_size=bs, validate=False)
        g = self.bev(g) if len(self.bev) else g
        pos = scatter_mean(xyz, p_cell, n)
        rows = torch.cat([torch.ones_like(pos[:, :1]), pos, self.heat(g.feats), self.reg(g.feats)], 1)
        counts = torch.bincount(cb, minlength=bs)
        cmax = max(int(counts.max()) if n else 0, 1)
        start = torch.cumsum(counts, 0) - counts
        within = torch.arange(n, device=rows.device) - start[cb]
        out = rows.new_zeros((bs, cmax, rows.shape[1]))
        out[cb, within] = rows
        return out

    def _pre(self, f: torch.Tensor) -> torch.Tensor:
        if self.training and f.shape[0] < 2:
            lin, bn, act = self.pre
            return act(F.batch_norm(lin(f), bn.running_mean, bn.running_var, bn.weight, bn.bias, False))
        return self.pre(f)


def _split_targets(y: Mapping, bs: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    boxes, labels, b = y["boxes"], y["labels"], y["batch"].long()
    return [(boxes[b == i], labels[b == i]) for i in range(bs)]


def encode_yaw(yaw: torch.Tensor) -> torch.Tensor:
    """(sin 2*yaw, cos 2*yaw) [..., 2]: the pi-periodic yaw code."""
    return torch.stack([torch.sin(2 * yaw), torch.cos(2 * yaw)], -1)


class CenterDetectionLoss:
    """Target assignment + loss for :class:`CenterHead` outputs: ``loss(pred, y) -> scalar``.

    pred: float [B, C_max, 12 + K]; y: ``BoundingBoxes.collate`` dict (``boxes`` float [G, 7],
    ``labels`` int64 [G], ``batch`` int64 [G]).

    Heatmap target of cell j for class c: the largest ``exp(-d^2 / (2 sigma^2))`` over boxes
    of class c, d the xy distance from the cell position to the box centre and ``sigma =
    max(min_sigma, sigma_ratio * min(sx, sy))``; the cell nearest each box centre gets
    exactly 1 (a positive). Heatmap loss: CenterNet's focal loss (alpha 2, beta 4) divided
    by the number of positives. Regression: each cell whose best target value is at least
    ``reg_threshold`` (always including the peaks) regresses the box giving that value;
    smooth-L1 on the 8 regression values, averaged over those cells. A sample without boxes
    only contributes negatives (no error).
    """

    def __init__(
        self,
        num_classes: int,
        sigma_ratio: float = 0.25,
        min_sigma: float = 0.1,
        reg_threshold: float = 0.5,
        reg_weight: float = 1.0,
    ):
        self.num_classes = int(num_classes)
        self.sigma_ratio, self.min_sigma = float(sigma_ratio), float(min_sigma)
        self.reg_threshold, self.reg_weight = float(reg_threshold), float(reg_weight)
        self.cols = detection_columns(self.num_classes)

    def __repr__(self) -> str:
        return (
            f"CenterDetectionLoss(num_classes={self.num_classes}, sigma_ratio={self.sigma_ratio}, "
            f"min_sigma={self.min_sigma}, reg_threshold={self.reg_threshold}, reg_weight={self.reg_weight})"
        )

    @torch.no_grad()
    def assign(self, pos: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor):
        """Targets for one sample: cells ``pos`` float [n, 3], ``boxes`` float [G, 7], ``labels``
        int64 [G] -> (heat float [n, K], reg float [n, 8], reg_mask bool [n])."""
        n, k = pos.shape[0], self.num_classes
        heat = pos.new_zeros((n, k))
        reg = pos.new_zeros((n, len(REG_NAMES)))
        if boxes.shape[0] == 0 or n == 0:
            return heat, reg, torch.zeros(n, dtype=torch.bool, device=pos.device)
        d2 = ((pos[:, None, :2] - boxes[None, :, :2]) ** 2).sum(-1)  # [n, G]
        sigma = torch.clamp(self.sigma_ratio * torch.minimum(boxes[:, 3], boxes[:, 4]), min=self.min_sigma)
        g = torch.exp(-d2 / (2 * sigma[None] ** 2))
        g[d2.argmin(0), torch.arange(boxes.shape[0], device=pos.device)] = 1.0
        heat.scatter_reduce_(1, labels.long()[None].expand(n, -1), g, "amax", include_self=True)
        best, who = g.max(1)
        mask = best >= self.reg_threshold
        b = boxes[who]
        reg[:, 0:3] = b[:, 0:3] - pos
        reg[:, 3:6] = torch.log(b[:, 3:6].clamp(min=1e-6))
        reg[:, 6:8] = encode_yaw(b[:, 6])
        return heat, reg, mask

    def activation(self, x):
        """Outputs are not probabilities: fastai's get_preds returns them unchanged."""
        return x

    def decodes(self, x):
        return x

    def __call__(self, pred: torch.Tensor, y: Mapping) -> torch.Tensor:
        if pred.ndim != 3 or pred.shape[2] != 12 + self.num_classes:
            raise ShapeError(
                f"CenterDetectionLoss: predictions must be [B, C, {12 + self.num_classes}], got {list(pred.shape)}"
            )
        c = self.cols
        heat_l, heat_t, reg_p, reg_t = [], [], [], []
        for i, (boxes, labels) in enumerate(_split_targets(y, pred.shape[0])):
            valid = pred[i, :, 0] > 0.5
            p = pred[i][valid]
            h, r, m = self.assign(p[:, c["position"]].detach(), boxes.to(p.dtype), labels)
            heat_l.append(p[:, c["heat"]])
            heat_t.append(h)
            reg_p.append(p[:, c["reg"]][m])
            reg_t.append(r[m])
        z, t = torch.cat(heat_l), torch.cat(heat_t)
        pos = t >= 1.0 - 1e-6
        logp, log1p = F.logsigmoid(z), F.logsigmoid(-z)
        prob = torch.sigmoid(z)
        pos_loss = (logp * (1 - prob) ** 2)[pos].sum()
        neg_loss = (log1p * prob**2 * (1 - t) ** 4)[~pos].sum()
        heat_loss = -(pos_loss + neg_loss) / max(int(pos.sum()), 1)
        rp, rt = torch.cat(reg_p), torch.cat(reg_t)
        if rp.shape[0]:
            reg_loss = F.smooth_l1_loss(rp, rt, beta=0.1, reduction="sum") / rp.shape[0]
        else:
            reg_loss = pred[..., c["reg"]].sum() * 0.0
        return heat_loss + self.reg_weight * reg_loss


@torch.no_grad()
def decode_detections(
    pred: torch.Tensor,
    num_classes: int,
    score_threshold: float = 0.1,
    nms_iou: float = 0.25,
    max_boxes: int = 50,
    rotated: bool = True,
    pre_nms: int = 256,
) -> list[dict[str, np.ndarray]]:
    """Scored boxes per sample from :class:`CenterHead` outputs [B, C_max, 12 + K] (or one sample
    [C_max, 12 + K]).

    Every (cell, class) with probability >= ``score_threshold`` (at most ``pre_nms`` per sample,
    the best) becomes a box; per class, greedy 3D-IoU NMS at ``nms_iou`` (rotated or
    axis-aligned); at most ``max_boxes`` per sample, best first. Returns per sample
    ``{"boxes": float32 [D, 7], "scores": float32 [D], "labels": int64 [D]}``.
    """
    from ..box_ops import nms_3d

    if isinstance(pred, list):
        return [
            decode_detections(p, num_classes, score_threshold, nms_iou, max_boxes, rotated)[0] for p in pred
        ]
    if pred.ndim == 2:
        pred = pred[None]
    c = detection_columns(num_classes)
    out = []
    for p in pred.detach().float().cpu():
        p = p[p[:, 0] > 0.5]
        prob = torch.sigmoid(p[:, c["heat"]])
        cell, cls = torch.nonzero(prob >= score_threshold, as_tuple=True)
        score = prob[cell, cls]
        if score.numel() > pre_nms:
            top = torch.topk(score, pre_nms).indices
            cell, cls, score = cell[top], cls[top], score[top]
        reg = p[cell][:, c["reg"]]
        centers = p[cell][:, c["position"]] + reg[:, 0:3]
        sizes = torch.exp(reg[:, 3:6].clamp(-6, 4))
        yaw = 0.5 * torch.atan2(reg[:, 6], reg[:, 7])
        boxes = torch.cat([centers, sizes, yaw[:, None]], 1).numpy().astype(np.float64)
        score_np, cls_np = score.numpy(), cls.numpy()
        keep = []
        for k in np.unique(cls_np):
            idx = np.flatnonzero(cls_np == k)
            keep.append(idx[nms_3d(boxes[idx], score_np[idx], nms_iou, rotated=rotated)])
        keep = np.concatenate(keep) if keep else np.zeros(0, np.int64)
        keep = keep[np.argsort(-score_np[keep], kind="stable")][:max_boxes]
        out.append(
            {
                "boxes": boxes[keep].astype(np.float32).reshape(-1, 7),
                "scores": score_np[keep].astype(np.float32),
                "labels": cls_np[keep].astype(np.int64),
            }
        )
    return out
