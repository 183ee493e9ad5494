"""Sparse convolutions equal dense conv3d / conv_transpose3d restricted to active sites."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastai_sparse.engine import (
    SparseConv3d,
    SparseInverseConv3d,
    SparseTensor,
    SubMConv3d,
)

from .conftest import at_sites, dense_weight, dense_weight_t, random_sites, to_dense

torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize(
    "shape,density,k,seed",
    [
        ((5, 7, 6), 0.3, 3, 0),
        ((9, 4, 11), 0.15, 3, 1),
        ((6, 6, 6), 0.5, 5, 2),
        ((3, 1, 8), 0.6, 1, 3),
    ],
)
def test_subm_matches_dense(shape, density, k, seed, device):
    B, cin, cout = 3, 4, 5
    coords = random_sites(B, shape, density, seed).to(device)
    feats = torch.randn(len(coords), cin, dtype=torch.float64).to(device)
    conv = SubMConv3d(cin, cout, kernel_size=k, bias=True).double().to(device)
    torch.nn.init.normal_(conv.bias)
    y = conv(SparseTensor(coords, feats))
    assert y.feats.device == device and y.coords.device == device
    assert y.coords is not None and torch.equal(y.coords, coords)
    ref = F.conv3d(to_dense(coords, feats, B, shape), dense_weight(conv.weight, k), conv.bias, padding=k // 2)
    torch.testing.assert_close(y.feats, at_sites(ref, coords))


@pytest.mark.parametrize(
    "shape,density,k,s,seed",
    [
        ((8, 6, 10), 0.2, 2, 2, 0),
        ((7, 9, 5), 0.3, 2, 2, 1),
        ((9, 8, 7), 0.2, 3, 2, 2),
        ((9, 9, 9), 0.1, 3, 3, 3),
        ((6, 5, 7), 0.3, 4, 2, 4),
    ],
)
def test_strided_matches_dense(shape, density, k, s, seed, device):
    B, cin, cout = 2, 3, 4
    coords = random_sites(B, shape, density, seed).to(device)
    feats = torch.randn(len(coords), cin, dtype=torch.float64).to(device)
    conv = SparseConv3d(cin, cout, kernel_size=k, stride=s).double().to(device)
    y = conv(SparseTensor(coords, feats))
    assert y.stride == s and y.feats.device == device and y.coords.device == device
    # grow the grid so every output whose window touches an active site exists densely
    shape = tuple(((n - 1) // s) * s + k for n in shape)
    ref = F.conv3d(to_dense(coords, feats, B, shape), dense_weight(conv.weight, k), stride=s)
    # active outputs: every dense output whose receptive field holds an active input
    occ = F.conv3d(
        to_dense(coords, torch.ones(len(coords), 1, dtype=torch.float64, device=device), B, shape),
        torch.ones(1, 1, k, k, k, dtype=torch.float64, device=device),
        stride=s,
    )
    expect = occ[:, 0].nonzero()
    got = y.coords.long().clone()
    got[:, 1:] //= s
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, expect.tolist()))
    torch.testing.assert_close(y.feats, at_sites(ref, y.coords, s))
    assert bool((y.coords[:, 1:] % s == 0).all())


@pytest.mark.parametrize(
    "shape,density,k,s,seed",
    [((8, 6, 10), 0.2, 2, 2, 0), ((7, 9, 5), 0.4, 2, 2, 1), ((9, 8, 7), 0.2, 3, 2, 2)],
)
def test_inverse_matches_dense(shape, density, k, s, seed, device):
    B, c0, c1, c2 = 2, 3, 4, 2
    coords = random_sites(B, shape, density, seed).to(device)
    feats = torch.randn(len(coords), c0, dtype=torch.float64).to(device)
    x = SparseTensor(coords, feats)
    down = SparseConv3d(c0, c1, kernel_size=k, stride=s).double().to(device)
    up = SparseInverseConv3d(c1, c2, kernel_size=k, stride=s).double().to(device)
    y = down(x)
    yf = y.feats.detach().clone().normal_()
    z = up(y.replace(yf))
    assert z.coords is coords and z.stride == 1 and z.feats.device == device
    # dense transposed conv of the coarse grid, restricted to the fine active sites
    cs = [(n - 1) // s + 1 for n in shape]
    dense_in = to_dense(y.coords, yf, B, cs, stride=s)
    out_shape = [(n - 1) * s + k for n in cs]
    ref = F.conv_transpose3d(dense_in, dense_weight_t(up.weight, k), stride=s)
    pad = [max(0, a - b) for a, b in zip(shape, out_shape)]
    ref = F.pad(ref, (0, pad[2], 0, pad[1], 0, pad[0]))
    torch.testing.assert_close(z.feats, at_sites(ref, coords))


def test_strided_input_level_units():
    """A stride-2 tensor's coords are in original voxel units (multiples of 2)."""
    coords = random_sites(1, (6, 6, 6), 0.4, 7, stride=2)
    x = SparseTensor(coords, torch.randn(len(coords), 2), stride=2)
    y = SparseConv3d(2, 2)(x)
    assert y.stride == 4 and bool((y.coords[:, 1:] % 4 == 0).all())
