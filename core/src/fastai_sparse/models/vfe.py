"""PointNet-like voxel feature encoding (VoxelNet): per-point MLP, max-pool per voxel."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ShapeError

__all__ = ["VFE", "scatter_max"]


def scatter_max(x: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Max of rows ``x`` [N, C] per group ``index`` int64 [N] -> [n, C] (0 for empty groups)."""
    out = x.new_zeros((n, x.shape[1]))
    return out.scatter_reduce(0, index[:, None].expand_as(x), x, "amax", include_self=False)


class _PointLayer(nn.Module):
    """Linear + BN + ReLU on point features [N, C] (BN skipped for fewer than 2 points)."""

    def __init__(self, a: int, b: int):
        super().__init__()
        self.linear = nn.Linear(a, b, bias=False)
        self.bn = nn.BatchNorm1d(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if not (self.training and y.shape[0] < 2):
            y = self.bn(y)
        return y.relu()


class VFE(nn.Module):
    """Voxel feature encoding.

    For each width ``h`` in ``hidden``: per-point Linear+BN+ReLU, max-pool per voxel, and the
    pooled feature concatenated back to every point (VoxelNet's VFE layer, ``2h`` channels);
    then a last per-point layer to ``out_channels`` and a max-pool per voxel.

    ``forward(point_feats float [N, C], inverse int64 [N] voxel row of each point,
    num_voxels int) -> float [num_voxels, out_channels]``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        hidden: Sequence[int] = (32,),
        out_channels: int = 32,
        concat: bool = True,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.concat = in_channels, out_channels, concat
        layers = []
        c = in_channels
        for h in hidden:
            layers.append(_PointLayer(c, h))
            c = 2 * h if concat else h
        self.layers = nn.ModuleList(layers)
        self.last = _PointLayer(c, out_channels)

    def forward(self, point_feats: torch.Tensor, inverse: torch.Tensor, num_voxels: int) -> torch.Tensor:
        if point_feats.dim() != 2 or point_feats.shape[1] != self.in_channels:
            raise ShapeError(
                f"VFE: expected point features [N, {self.in_channels}], got {list(point_feats.shape)}"
            )
        if inverse.shape[0] != point_feats.shape[0]:
            raise ShapeError(f"VFE: {point_feats.shape[0]} points but inverse has {inverse.shape[0]} entries")
        inv = inverse.long()
        x = point_feats
        for layer in self.layers:
            x = layer(x)
            if self.concat:
                x = torch.cat([x, scatter_max(x, inv, num_voxels)[inv]], dim=1)
        return scatter_max(self.last(x), inv, num_voxels)
