"""`SparseModel`: input stage + backbone + head, driven by a collated batch dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..engine import SparseTensor
from ..errors import DataFormatError, ShapeError

__all__ = ["SparseModel"]


def _field(batch: Any, name: str, required: bool = True):
    if isinstance(batch, Mapping):
        if name in batch:
            return batch[name]
    elif hasattr(batch, name):
        return getattr(batch, name)
    if required:
        raise DataFormatError(f"the batch has no {name!r}", field=name)
    return None


def _check_backbone_keeps_voxels(backbone: nn.Module, head: nn.Module, x: SparseTensor, out: Any) -> None:
    """A per-voxel head needs the backbone's output on the input's voxels (same rows, stride 1),
    to map it back to every point; say so here rather than fail with an IndexError later."""
    rows = getattr(getattr(out, "feats", None), "shape", (None,))[0]
    stride = getattr(out, "stride", None)
    if rows != x.feats.shape[0] or stride != 1:
        raise ShapeError(
            f"backbone {type(backbone).__name__} returned {rows} rows at stride {stride} for "
            f"{x.feats.shape[0]} input voxels: a per-voxel head ({type(head).__name__}) needs the "
            "input's voxels at stride 1 (an encoder-decoder such as UNet); for one output per sample "
            "use a pooled head (cls-pool)"
        )


class SparseModel(nn.Module):
    """The module a fastai Learner trains.

    ``forward(batch)`` where ``batch`` is a dict (or an object with these attributes):
    ``coords`` int32 [M, 4] (batch, x, y, z), ``feats`` float32 [M, C], ``inverse`` int64
    [N] (row in ``coords`` of every input point), ``voxel_offsets`` int64 [B + 1],
    ``point_offsets`` int64 [B + 1], optionally ``point_feats`` float32 [N, C'] (the input of
    ``input_stage``; then voxel features are ``input_stage(point_feats, inverse, M)``).

    Returns per-point outputs ``head(...)[inverse]`` [N, K] when ``head.per == "voxel"``, or
    per-sample outputs [B, K] when ``head.per == "sample"``; any other ``per`` (e.g. ``"raw"``,
    the structured [B, C, D] output of a detection head) is returned unchanged. A head with ``needs_batch = True``
    is called as ``head(features, batch)``; it can use extra batch fields that a target type's
    ``collate_inputs(clouds)`` added (see :func:`fastai_sparse.batch.collate`).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, input_stage: nn.Module | None = None):
        super().__init__()
        self.input_stage = input_stage
        self.backbone = backbone
        self.head = head

    @property
    def per(self) -> str:
        return getattr(self.head, "per", "voxel")

    def sparse_input(self, batch: Any) -> SparseTensor:
        """The :class:`SparseTensor` the backbone sees for ``batch``."""
        coords = _field(batch, "coords")
        offsets = _field(batch, "voxel_offsets", required=False)
        bs = int(offsets.shape[0]) - 1 if offsets is not None else None
        if self.input_stage is not None:
            pf = _field(batch, "point_feats")
            feats = self.input_stage(pf, _field(batch, "inverse"), int(coords.shape[0]))
        else:
            feats = _field(batch, "feats")
        return SparseTensor(coords, feats, batch_size=bs)

    def forward(self, batch: Any) -> torch.Tensor:
        x = self.sparse_input(batch)
        feats = self.backbone(x)
        if self.per == "voxel":
            _check_backbone_keeps_voxels(self.backbone, self.head, x, feats)
        # a head that needs per-sample inputs (e.g. an object category to mask logits with)
        # declares ``needs_batch = True`` and receives the whole batch dict
        y = self.head(feats, batch) if getattr(self.head, "needs_batch", False) else self.head(feats)
        if self.per == "voxel":
            return y[_field(batch, "inverse").long()]
        return y
