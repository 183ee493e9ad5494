"""Row order does not matter: the engine sorts an unsorted coordinate set once, computes in
key order and returns the caller's order; a permuted input gives bitwise the permuted output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastai_sparse.engine import SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d
from fastai_sparse.engine.kernel_map import CoordIndex

from .conftest import at_sites, dense_weight, random_sites, to_dense


def sorted_sites(batch_size, shape, density, seed):
    """Unique coords int64 [M, 4] sorted by (batch, x, y, z) (the voxelizer's order)."""
    c = random_sites(batch_size, shape, density, seed)
    key = ((c[:, 0] * 1000 + c[:, 1]) * 1000 + c[:, 2]) * 1000 + c[:, 3]
    return c[torch.argsort(key)]


def _grads(conv, coords, feats, grad_fn):
    f = feats.clone().requires_grad_()
    y = conv(SparseTensor(coords, f))
    y.feats.backward(grad_fn(y))
    return y, f.grad, conv.weight.grad.clone()


@pytest.mark.parametrize("threads", [1, 2])
def test_subm_permuted_is_bitwise_the_permuted_sorted_result(threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        coords = sorted_sites(2, (30, 20, 12), 0.25, 0)
        perm = torch.randperm(len(coords), generator=torch.Generator().manual_seed(1))
        torch.manual_seed(0)
        feats = torch.randn(len(coords), 16)
        g = torch.randn(len(coords), 8)
        conv = SubMConv3d(16, 8, 3)
        x = SparseTensor(coords, feats)
        assert x.cache.subm_map(1, 3).perm is None  # sorted input: used as it is
        y, gx, gw = _grads(conv, coords, feats, lambda y: g)
        conv.weight.grad = None
        xp = SparseTensor(coords[perm], feats[perm])
        assert xp.cache.subm_map(1, 3).perm is not None
        yp, gxp, gwp = _grads(conv, coords[perm], feats[perm], lambda y: g[perm])
        assert torch.equal(yp.coords, coords[perm])
        assert torch.equal(yp.feats, y.feats[perm])  # forward: bitwise
        assert torch.equal(gxp, gx[perm])  # same arithmetic in the backward too
        assert torch.equal(gwp, gw)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2)])
def test_strided_and_inverse_permuted_bitwise(k, s):
    coords = sorted_sites(2, (14, 11, 9), 0.3, 3)
    perm = torch.randperm(len(coords), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    feats = torch.randn(len(coords), 6)
    down = SparseConv3d(6, 5, k, s)
    up = SparseInverseConv3d(5, 4, k, s)
    gd = None
    outs = []
    for c, f in ((coords, feats), (coords[perm], feats[perm])):
        fr = f.clone().requires_grad_()
        x = SparseTensor(c, fr)
        y = down(x)
        z = up(y)
        if gd is None:
            gd = torch.randn_like(z.feats)
            gsorted = gd
        else:
            gd = gsorted[perm]
        z.feats.backward(gd)
        outs.append((y.coords, y.feats.detach(), z.feats.detach(), fr.grad, down.weight.grad.clone()))
        down.weight.grad = up.weight.grad = None
    (yc, yf, zf, gx, gw), (ycp, yfp, zfp, gxp, gwp) = outs
    assert torch.equal(ycp, yc)  # the coarse level is in key order either way
    assert torch.equal(yfp, yf)
    assert torch.equal(zfp, zf[perm])
    torch.testing.assert_close(gxp, gx[perm])
    torch.testing.assert_close(gwp, gw)


# the device fixture is one constant per parametrization: safe to share across examples
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 10_000),
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
    density=st.floats(0.05, 0.9),
    batch=st.integers(1, 3),
    k=st.sampled_from([1, 3, 5]),
    order=st.sampled_from(["sorted", "random", "reversed"]),
)
def test_subm_matches_dense_in_any_order(seed, shape, density, batch, k, order, device):
    coords = sorted_sites(batch, shape, density, seed)
    if len(coords) == 0:
        return
    if order == "random":
        coords = coords[torch.randperm(len(coords), generator=torch.Generator().manual_seed(seed))]
    elif order == "reversed":
        coords = coords.flip(0)
    g = torch.Generator().manual_seed(seed)
    coords, feats = (
        coords.to(device),
        torch.randn(len(coords), 3, generator=g, dtype=torch.float64).to(device),
    )
    conv = SubMConv3d(3, 2, k).double().to(device)
    y = conv(SparseTensor(coords, feats))
    assert y.feats.device == device
    ref = F.conv3d(to_dense(coords, feats, batch, shape), dense_weight(conv.weight, k), padding=k // 2)
    torch.testing.assert_close(y.feats, at_sites(ref, coords))


@pytest.mark.parametrize("grid", [True, False])
def test_coord_index_lookup_answers_in_the_callers_rows(monkeypatch, grid):
    import fastai_sparse.engine.kernel_map as km

    if not grid:
        monkeypatch.setattr(km, "_GRID_MAX_CELLS", 0)
    c = random_sites(2, (6, 5, 7), 0.4, 5)  # random order
    idx = CoordIndex(c.long())
    assert (idx.grid is not None) == grid
    assert idx.perm is not None and torch.equal(idx.perm[idx.inv], torch.arange(len(c)))
    assert torch.equal(idx.lookup(c.long()), torch.arange(len(c)))
    absent = c[:1].long().clone()
    absent[0, 0] = 5  # no such batch
    assert idx.lookup(absent).tolist() == [-1]
    # positions are the ranks of the keys
    keys = idx.linearise(c.long())
    assert torch.equal(idx.positions(keys), torch.argsort(torch.argsort(keys)))
    s = c[torch.argsort(keys)]
    idx_sorted = CoordIndex(s.long())
    assert idx_sorted.perm is None
    assert torch.equal(idx_sorted.lookup(s.long()), torch.arange(len(s)))


def test_unet_permuted_input_gives_permuted_output(device):
    from fastai_sparse.models import UNet

    coords = sorted_sites(2, (24, 20, 10), 0.3, 7).to(device)
    perm = torch.randperm(len(coords), generator=torch.Generator().manual_seed(3)).to(device)
    torch.manual_seed(0)
    net = UNet(3, m=8, levels=3).double().to(device)
    feats = torch.randn(len(coords), 3, dtype=torch.float64).to(device)
    y = net(SparseTensor(coords, feats))
    yp = net(SparseTensor(coords[perm], feats[perm]))
    assert torch.equal(yp.coords, coords[perm])
    torch.testing.assert_close(yp.feats, y.feats[perm])  # batch norm sums in another order
