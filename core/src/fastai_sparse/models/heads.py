"""Heads: per-voxel segmentation and pooled per-sample outputs."""

from __future__ import annotations

import torch
from torch import nn

from ..engine import SparseTensor, global_avg_pool, global_max_pool
from ..errors import ShapeError

__all__ = ["PoolHead", "SegmentationHead", "head_mlp"]


def head_mlp(
    in_features: int, num_outputs: int, hidden: int | None = None, dropout: float = 0.0
) -> nn.Sequential:
    """The classifier of a head: optional hidden layer (Linear, BN, ReLU), optional dropout,
    then a Linear to ``num_outputs``."""
    layers: list[nn.Module] = []
    c = in_features
    if hidden:
        layers += [nn.Linear(c, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU()]
        c = hidden
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(c, num_outputs))
    return nn.Sequential(*layers)


class SegmentationHead(nn.Module):
    """Per-voxel logits: ``SparseTensor [M, C] -> Tensor [M, num_outputs]`` (``per = "voxel"``).

    Optional hidden layer (Linear, BN, ReLU) and dropout before the last Linear.
    """

    per = "voxel"

    def __init__(
        self,
        in_channels: int = 16,
        num_outputs: int = 20,
        hidden: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_channels, self.num_outputs = in_channels, num_outputs
        self.mlp = head_mlp(in_channels, num_outputs, hidden, dropout)

    def forward(self, x: SparseTensor) -> torch.Tensor:
        if x.num_channels != self.in_channels:
            raise ShapeError(
                f"SegmentationHead: expected {self.in_channels} input channels, got {x.num_channels}"
            )
        return self.mlp(x.feats)


class PoolHead(nn.Module):
    """Global pooling per sample then an MLP: ``SparseTensor -> Tensor [B, num_outputs]``.

    ``pool``: ``"avg"``, ``"max"`` or ``"avgmax"`` (both, concatenated). ``per = "sample"``.
    Empty samples pool to zeros.
    """

    per = "sample"

    def __init__(
        self,
        in_channels: int = 256,
        num_outputs: int = 10,
        pool: str = "avg",
        hidden: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        if pool not in ("avg", "max", "avgmax"):
            raise ValueError(f"pool must be 'avg', 'max' or 'avgmax', got {pool!r}")
        self.in_channels, self.num_outputs, self.pool = in_channels, num_outputs, pool
        self.mlp = head_mlp(in_channels * (2 if pool == "avgmax" else 1), num_outputs, hidden, dropout)

    def forward(self, x: SparseTensor) -> torch.Tensor:
        if x.num_channels != self.in_channels:
            raise ShapeError(f"PoolHead: expected {self.in_channels} input channels, got {x.num_channels}")
        if self.pool == "avg":
            p = global_avg_pool(x)
        elif self.pool == "max":
            p = global_max_pool(x)
        else:
            p = torch.cat([global_avg_pool(x), global_max_pool(x)], dim=1)
        if self.training and p.shape[0] < 2:
            # BatchNorm1d cannot train on one sample: use its running statistics
            return self._single(p)
        return self.mlp(p)

    def _single(self, p: torch.Tensor) -> torch.Tensor:
        for layer in self.mlp:
            if isinstance(layer, nn.BatchNorm1d):
                p = nn.functional.batch_norm(
                    p, layer.running_mean, layer.running_var, layer.weight, layer.bias, False
                )
            else:
                p = layer(p)
        return p
