"""Part segmentation with a known category: target type, masked head, masked loss.

The category of every shape is known at training and test time (ShapeNet part convention),
so the 50 global part logits are restricted to the shape's own parts:

- :class:`ShapeNetPartTarget` (in :mod:`fastai_sparse_shapenet.target`, which does not
  import torch, so building the task stays light; re-exported here) adds ``collate_inputs(clouds)``: ``{"category": int64 [B], "part_mask": bool
  [B, 50]}`` merged into the batch dict ``x``;
- :class:`MaskedPartHead` (``needs_batch = True``) is called ``head(features, x)`` and sets the
  logits of parts outside each voxel's category to a large negative value;
- :func:`mask_logits` does the same on per-point outputs given point offsets and categories
  (used by the metrics, prediction and TTA, so masking holds even with an unmasked head);
- :class:`MaskedPartLoss` is cross-entropy restricted to the parts of each point's category
  (found from its label), equal to plain cross-entropy on masked logits.
"""

from __future__ import annotations

import torch
from torch import nn

from fastai_sparse.errors import ShapeError
from fastai_sparse.models import SegmentationHead

from .categories import NUM_PARTS, category_mask, part_to_category
from .target import ShapeNetPartTarget

__all__ = [
    "NEG",
    "MaskedPartHead",
    "MaskedPartLoss",
    "ShapeNetPartTarget",
    "categories_from_labels",
    "mask_logits",
    "point_categories",
]

#: value given to the logits of parts outside a shape's category (finite, so sums stay finite)
NEG = -1e9

_CAT_MASK = torch.from_numpy(category_mask())  # bool [16, 50]
_PART_CAT = torch.from_numpy(part_to_category())  # int64 [50]


def _fill(dtype: torch.dtype) -> float:
    return max(NEG, float(torch.finfo(dtype).min) / 2)


def point_categories(point_offsets: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
    """int64 [N_total]: the category of every point, from ``point_offsets`` int64 [B+1] and
    ``category`` int64 [B]."""
    counts = (point_offsets[1:] - point_offsets[:-1]).long()
    return torch.repeat_interleave(category.long().to(counts.device), counts)


def mask_logits(logits: torch.Tensor, point_category: torch.Tensor) -> torch.Tensor:
    """Logits [N, 50] with every part outside the point's category (int64 [N]) set to a large
    negative value (a copy)."""
    if logits.ndim != 2 or logits.shape[1] != NUM_PARTS:
        raise ShapeError(f"expected part logits [N, {NUM_PARTS}], got {list(logits.shape)}")
    if len(point_category) != len(logits):
        raise ShapeError(f"{len(point_category)} point categories for {len(logits)} rows of logits")
    allowed = _CAT_MASK.to(logits.device)[point_category.long().to(logits.device)]
    return logits.masked_fill(~allowed, _fill(logits.dtype))


def categories_from_labels(labels: torch.Tensor, point_offsets: torch.Tensor, ignore_index: int = -100):
    """int64 [B]: the category of every shape, from its first valid global part label
    (-1 for a shape without one)."""
    out = torch.full((len(point_offsets) - 1,), -1, dtype=torch.int64)
    lab = labels.detach().cpu().long()
    po = point_offsets.detach().cpu().long().tolist()
    for b in range(len(po) - 1):
        seg = lab[po[b] : po[b + 1]]
        seg = seg[(seg != ignore_index) & (seg >= 0) & (seg < NUM_PARTS)]
        if len(seg):
            out[b] = _PART_CAT[seg[0]]
    return out


class MaskedPartLoss(nn.Module):
    """Cross-entropy over the parts of each point's category (from its label).

    pred: float [N, 50] logits; y: int64 [N] global part ids or ``ignore_index``. Equal to
    ``cross_entropy(mask_logits(pred, category_of(y)), y)``; a plain torch callable.
    """

    def __init__(self, ignore_index: int = -100):
        super().__init__()
        self.ignore_index = int(ignore_index)

    def forward(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = y.long()
        valid = y != self.ignore_index
        cat = torch.zeros_like(y)
        cat[valid] = _PART_CAT.to(y.device)[y[valid]]
        return nn.functional.cross_entropy(mask_logits(pred, cat), y, ignore_index=self.ignore_index)

    def __repr__(self) -> str:
        return f"MaskedPartLoss(ignore_index={self.ignore_index})"


class MaskedPartHead(SegmentationHead):
    """Per-voxel part logits restricted to each sample's category.

    ``head(features, batch)``: features a SparseTensor [M, C] (coords int32 [M, 4], batch
    index first); batch the collated dict with ``"part_mask"`` bool [B, 50] (or
    ``"category"`` int64 [B]). Returns float [M, 50] with parts outside the category set to
    :data:`NEG`. Without a batch (a core that does not pass it) the logits are returned
    unmasked; metrics, loss and prediction mask them anyway.
    """

    needs_batch = True

    def __init__(
        self,
        in_channels: int = 16,
        num_outputs: int = NUM_PARTS,
        hidden: int | None = None,
        dropout: float = 0.0,
    ):
        if num_outputs != NUM_PARTS:
            raise ValueError(
                f"MaskedPartHead predicts the {NUM_PARTS} ShapeNet parts, got num_outputs={num_outputs}"
            )
        super().__init__(in_channels, num_outputs, hidden, dropout)

    def forward(self, features, batch: dict | None = None) -> torch.Tensor:
        logits = super().forward(features)
        if batch is None:
            return logits
        mask = batch.get("part_mask") if hasattr(batch, "get") else None
        if mask is None and hasattr(batch, "get") and batch.get("category") is not None:
            mask = _CAT_MASK.to(logits.device)[batch["category"].long()]
        if mask is None:
            return logits
        rows = features.coords[:, 0].long().to(logits.device)
        return logits.masked_fill(~mask.to(logits.device)[rows], _fill(logits.dtype))
