"""Submanifold convolutions grouped by absent kernel faces (``SubmanifoldMap.plane_groups``):
which rows go where, that no neighbour is ever dropped, and that the grouped path gives the
dense ``conv3d`` result and gradients (the full-table path is the second reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastai_sparse.engine import SparseTensor, SubMConv3d
from fastai_sparse.engine.functional import subm_conv
from fastai_sparse.engine.kernel_map import CoordIndex, build_plane_groups, build_submanifold_map

from .conftest import at_sites, dense_weight, random_sites, to_dense


def _map(coords: torch.Tensor, k: int = 3):
    return build_submanifold_map(CoordIndex(coords.long(), pad=k // 2), k)


def _floor(nx: int, ny: int, z: int = 2, b: int = 0) -> torch.Tensor:
    x, y = torch.meshgrid(torch.arange(nx), torch.arange(ny), indexing="ij")
    n = x.numel()
    return torch.stack([torch.full((n,), b), x.flatten(), y.flatten(), torch.full((n,), z)], 1)


def _room(seed: int = 0) -> torch.Tensor:
    """A floor one voxel thick, a wall two voxels thick and scattered voxels, in two samples."""
    floor = _floor(12, 10)
    wall = torch.cat([_floor(12, 8, z=z).index_select(1, torch.tensor([0, 1, 3, 2])) for z in (0, 1)])
    wall[:, 2] += 3  # y = 3, 4 (the wall stands in the x-z plane)
    clutter = random_sites(1, (12, 10, 8), 0.05, seed)
    one = torch.unique(torch.cat([floor, wall, clutter]), dim=0)
    two = one.clone()
    two[:, 0] = 1
    return torch.cat([one, two])


def test_a_flat_layer_keeps_only_its_own_plane():
    kmap = _map(_floor(10, 10))
    groups = kmap.plane_groups
    assert groups is not None
    # every row misses both z faces: one group of the 9 in-plane offsets (dz == 0)
    assert len(groups.groups) == 1
    start, end, cols, table = groups.groups[0]
    assert (start, end) == (0, 100)
    assert cols.tolist() == [k for k in range(27) if k % 3 == 1]
    assert groups.entries == 9 * 100
    assert torch.equal(table, kmap.nbr_t.index_select(0, groups.order)[:, cols])


def test_a_solid_block_is_not_grouped():
    # a 20^3 block: only its skin misses faces, the grouped tables would save under 10%
    g = torch.stack(torch.meshgrid(*[torch.arange(20)] * 3, indexing="ij"), -1).reshape(-1, 3)
    coords = torch.cat([torch.zeros(len(g), 1, dtype=torch.long), g], 1)
    kmap = _map(coords)
    assert kmap.plane_groups is None
    # ... though a small one is (its skin is most of it)
    small = coords[(coords[:, 1:] < 5).all(1)]
    assert _map(small).plane_groups is not None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_drop_no_neighbour_and_cover_every_row_once(seed):
    kmap = _map(_room(seed))
    groups = build_plane_groups(kmap, min_saving=0.0)
    n = kmap.n
    assert torch.equal(torch.sort(groups.order).values, torch.arange(n))
    kept_pairs = 0
    for start, end, cols, table in groups.groups:
        rows = kmap.nbr_t.index_select(0, groups.order[start:end])
        dropped = torch.ones(27, dtype=torch.bool)
        dropped[cols] = False
        assert (rows[:, dropped] == n).all(), "a group dropped an offset that has a neighbour"
        assert torch.equal(table, rows[:, cols])
        kept_pairs += int((table < n).sum())
    assert kept_pairs == int((kmap.nbr_t < n).sum())
    assert len(groups.groups) <= 10
    assert groups.entries == sum(t.numel() for *_, t in groups.groups)
    assert groups.entries < 0.8 * n * 27


@pytest.mark.parametrize("order", ["sorted", "random"])
def test_grouped_convolution_matches_dense_conv3d_with_gradients(order):
    coords = _room(3)
    if order == "random":
        coords = coords[torch.randperm(len(coords), generator=torch.Generator().manual_seed(0))]
    shape, batch = (12, 10, 8), 2
    torch.manual_seed(0)
    conv = SubMConv3d(4, 5, 3).double()
    feats = torch.randn(len(coords), 4, dtype=torch.float64, requires_grad=True)
    x = SparseTensor(coords, feats)
    assert x.cache.subm_map(1, 3).plane_groups is not None  # the grouped path is the one tested
    y = conv(x)
    g = torch.randn_like(y.feats)
    y.feats.backward(g)

    wd = dense_weight(conv.weight.detach(), 3).requires_grad_()
    dense_x = to_dense(coords, feats.detach(), batch, shape).requires_grad_()
    ref = at_sites(F.conv3d(dense_x, wd, padding=1), coords)
    ref.backward(g)
    torch.testing.assert_close(y.feats, ref)
    torch.testing.assert_close(feats.grad, at_sites(dense_x.grad, coords))
    torch.testing.assert_close(dense_weight(conv.weight.grad, 3), wd.grad)


def test_grouped_bf16_is_as_close_to_float64_as_the_full_table():
    coords = _room(4)
    kmap = _map(coords)
    full = _map(coords)
    full.extra["plane_groups"] = None  # the full-table path
    assert kmap.plane_groups is not None
    torch.manual_seed(0)
    x = torch.randn(len(coords), 16)
    w = torch.randn(27, 16, 8) / 8
    g = torch.randn(len(coords), 8)

    def run(m, autocast):
        xi, wi = x.double().requires_grad_(), w.double().requires_grad_()
        if autocast:
            xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = subm_conv(xi, wi, m)
        y.backward(g.to(y.dtype))
        return y.double(), xi.grad.double(), wi.grad.double()

    ref = run(full, False)
    for got_g, got_f, r in zip(run(kmap, True), run(full, True), ref):
        scale = float(r.abs().max())
        err_g, err_f = float((got_g - r).abs().max()) / scale, float((got_f - r).abs().max()) / scale
        assert err_g < 1e-2 and err_g < 2 * err_f + 1e-3, (err_g, err_f)
