"""Part segmentation with a known category: target type, masked head, masked loss.

The category of every shape is known at training and test time (ShapeNet part convention),
so the 50 global part logits are restricted to the shape's own parts:

- :class:`ShapeNetPartTarget` (a :class:`~fastai_sparse.targets.Segmentation` over the 50
  global parts) adds ``collate_inputs(clouds)``: ``{"category": int64 [B], "part_mask": bool
  [B, 50]}`` merged into the batch dict ``x``;
- :class:`MaskedPartHead` (``needs_batch = True``) is called ``head(features, x)`` and sets the
  logits of parts outside each voxel's category to a large negative value;
- :func:`mask_logits` does the same on per-point outputs given point offsets and categories
  (used by the metrics, prediction and TTA, so masking holds even with an unmasked head);
- :class:`MaskedPartLoss` is cross-entropy restricted to the parts of each point's category
  (found from its label), equal to plain cross-entropy on masked logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fastai_sparse.errors import DataFormatError, ShapeError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.models import SegmentationHead
from fastai_sparse.targets import Segmentation

from .categories import NUM_PARTS, PART_NAMES, category_mask, get_category, part_to_category

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


class ShapeNetPartTarget(Segmentation):
    """Per-point global part ids (0..49) of a shape whose category is known.

    ``cloud.attrs["labels"]`` int64 [N] global part ids; ``cloud.meta["category"]`` (name or
    synset) or ``meta["category_index"]`` (0..15) gives the category. ``check`` also verifies
    every label belongs to the category. ``collate_inputs(clouds)`` gives ``{"category":
    int64 [B], "part_mask": bool [B, 50]}``. Loss: :class:`MaskedPartLoss`.
    """

    name = "shapenet-part"
    metrics = ("shapenet-instance-miou", "shapenet-class-miou")

    def __init__(self, ignore_index: int = -100):
        super().__init__(PART_NAMES, ignore_index=ignore_index, key="labels")

    def __repr__(self) -> str:
        return f"ShapeNetPartTarget(parts={NUM_PARTS}, ignore_index={self.ignore_index})"

    @staticmethod
    def category_index(cloud: PointCloud) -> int:
        """The category index (0..15) of a cloud from its meta (``category_index``, ``synset`` or
        ``category``), else from a ``<synset>`` folder in ``meta["path"]``; DataFormatError when
        none is found."""
        meta = cloud.meta
        key = meta.get("category_index", meta.get("synset", meta.get("category")))
        if key is None and meta.get("path"):
            # a file kept in the dataset's folders: <synset>/<shape> or <synset>/points/<shape>.pts
            from pathlib import Path

            for d in Path(str(meta["path"])).parents[:2]:
                try:
                    return get_category(d.name).index
                except KeyError:
                    continue
        if key is None:
            raise DataFormatError(
                "the shape's category is unknown: set meta['category'] (name or synset) or "
                "meta['category_index'] (0..15), or keep the file in a <synset>/ folder",
                path=meta.get("path") or meta.get("id"),
                field="category",
            )
        try:
            return get_category(key).index
        except KeyError as e:
            raise DataFormatError(str(e.args[0]), path=meta.get("path"), field="category") from None

    def check(self, cloud: PointCloud) -> None:
        super().check(cloud)
        cat = get_category(self.category_index(cloud))
        lab = np.asarray(cloud.attrs[self.key]).astype(np.int64)
        bad = (lab != self.ignore_index) & ((lab < cat.first) | (lab >= cat.first + cat.num_parts))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"point {i} has part {int(lab[i])} ({PART_NAMES[lab[i]]}), outside {cat.name}'s parts "
                f"{cat.first}..{cat.first + cat.num_parts - 1}",
                path=cloud.meta.get("path") or cloud.meta.get("id"),
                field=self.key,
            )

    def collate_inputs(self, clouds: Sequence[PointCloud]) -> dict[str, torch.Tensor]:
        """``{"category": int64 [B], "part_mask": bool [B, 50]}`` for the batch dict."""
        cats = torch.tensor([self.category_index(c) for c in clouds], dtype=torch.int64)
        return {"category": cats, "part_mask": _CAT_MASK[cats].clone()}

    def loss_func(self):
        return MaskedPartLoss(self.ignore_index)


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
