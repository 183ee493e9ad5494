"""Helpers for the engine tests: random sparse inputs and dense references."""

from __future__ import annotations

import pytest
import torch


def random_sites(
    batch_size: int, shape: tuple[int, int, int], density: float, seed: int, stride: int = 1
) -> torch.Tensor:
    """Unique random coords int64 [M, 4] (batch, x, y, z), multiples of ``stride``."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in range(batch_size):
        occ = torch.rand(shape, generator=g) < density
        idx = occ.nonzero()
        rows.append(torch.cat([torch.full((len(idx), 1), b), idx * stride], dim=1))
    c = torch.cat(rows)
    perm = torch.randperm(len(c), generator=g)  # rows in no particular order
    return c[perm]


def to_dense(coords, feats, batch_size, shape, stride=1):
    """Dense float [B, C, *shape] grid in per-level units."""
    out = feats.new_zeros((batch_size, feats.shape[1], *shape))
    c = coords.long()
    out[c[:, 0], :, c[:, 1] // stride, c[:, 2] // stride, c[:, 3] // stride] = feats
    return out


def at_sites(dense, coords, stride=1):
    """Rows of a dense [B, C, X, Y, Z] grid at ``coords`` -> [M, C]."""
    c = coords.long()
    return dense[c[:, 0], :, c[:, 1] // stride, c[:, 2] // stride, c[:, 3] // stride]


def dense_weight(weight: torch.Tensor, k: int) -> torch.Tensor:
    """Engine layout [K**3, Cin, Cout] -> conv3d layout [Cout, Cin, K, K, K]."""
    return weight.reshape(k, k, k, weight.shape[1], weight.shape[2]).permute(4, 3, 0, 1, 2)


def dense_weight_t(weight: torch.Tensor, k: int) -> torch.Tensor:
    """Engine layout -> conv_transpose3d layout [Cin, Cout, K, K, K]."""
    return weight.reshape(k, k, k, weight.shape[1], weight.shape[2]).permute(3, 4, 0, 1, 2)


@pytest.fixture
def sites():
    return random_sites
