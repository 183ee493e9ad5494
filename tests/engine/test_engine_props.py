"""Gradients, batch isolation, edge cases, bad input and thread-count independence."""

from __future__ import annotations

import pytest
import torch

from fastai_sparse.engine import (
    SparseBatchNorm,
    SparseConv3d,
    SparseInverseConv3d,
    SparseTensor,
    SubMConv3d,
    global_avg_pool,
    global_max_pool,
    sparse_cat,
)
from fastai_sparse.engine.functional import down_conv, inverse_conv, subm_conv
from fastai_sparse.errors import FastaiSparseError, ShapeError

from .conftest import random_sites


def _small(seed=0, B=2, shape=(4, 3, 4), density=0.35, order="random"):
    coords = random_sites(B, shape, density, seed)  # rows in random order
    if order == "sorted":  # the voxelizer's order: the engine uses it without reordering
        key = ((coords[:, 0] * 100 + coords[:, 1]) * 100 + coords[:, 2]) * 100 + coords[:, 3]
        coords = coords[torch.argsort(key)]
    return coords


@pytest.mark.parametrize("order", ["random", "sorted"])
def test_gradcheck_subm(order, device):
    coords = _small(0, order=order).to(device)
    x = SparseTensor(coords, torch.randn(len(coords), 2, dtype=torch.float64, device=device))
    kmap = x.cache.subm_map(1, 3)
    assert (kmap.perm is None) == (order == "sorted")
    assert kmap.nbr_t.device == device
    f = torch.randn(len(coords), 2, dtype=torch.float64, requires_grad=True, device=device)
    w = torch.randn(27, 2, 3, dtype=torch.float64, requires_grad=True, device=device)
    assert torch.autograd.gradcheck(lambda f, w: subm_conv(f, w, kmap), (f, w))


@pytest.mark.parametrize("order", ["random", "sorted"])
@pytest.mark.parametrize("k", [2, 3])
def test_gradcheck_down_and_inverse(k, order, device):
    coords = _small(1, shape=(5, 4, 5), order=order).to(device)
    x = SparseTensor(coords, torch.randn(len(coords), 2, dtype=torch.float64, device=device))
    kmap = x.cache.down_map(1, k, 2)
    assert (kmap.perm is None) == (order == "sorted")
    assert kmap.nbr_t.device == device and kmap.out_coords.device == device
    f = torch.randn(len(coords), 2, dtype=torch.float64, requires_grad=True, device=device)
    w = torch.randn(k**3, 2, 3, dtype=torch.float64, requires_grad=True, device=device)
    # CUDA's index_add_ (the input gradient of a strided conv) sums in no fixed order: gradcheck's
    # reentrancy check then allows float64 rounding differences
    nondet = 1e-12 if device.type == "cuda" else 0.0
    assert torch.autograd.gradcheck(lambda f, w: down_conv(f, w, kmap), (f, w), nondet_tol=nondet)
    g = torch.randn(kmap.n_out, 2, dtype=torch.float64, requires_grad=True, device=device)
    assert torch.autograd.gradcheck(lambda g, w: inverse_conv(g, w, kmap), (g, w), nondet_tol=nondet)


def _net(cin=3):
    torch.manual_seed(0)
    return torch.nn.ModuleList(
        [SubMConv3d(cin, 4), SparseConv3d(4, 5), SubMConv3d(5, 5), SparseInverseConv3d(5, 4)]
    )


def _run(net, x):
    a = net[0](x)
    b = net[2](net[1](a))
    c = net[3](b)
    return sparse_cat(a, c)


def test_batches_do_not_leak(device):
    c0 = random_sites(1, (6, 6, 6), 0.3, 0).to(device)
    c1 = random_sites(1, (6, 6, 6), 0.3, 1).to(device)
    c1[:, 0] = 1
    f0, f1 = torch.randn(len(c0), 3, device=device), torch.randn(len(c1), 3, device=device)
    net = _net().double().to(device)
    out = _run(net, SparseTensor(torch.cat([c0, c1]), torch.cat([f0, f1]).double()))
    # move sample 1 next to sample 0 (shifted by one voxel) and change its features
    c1b = c1.clone()
    c1b[:, 1:] = c1b[:, 1:] // 2 * 2  # different geometry, may have duplicates
    c1b = torch.unique(c1b, dim=0)
    out2 = _run(
        net,
        SparseTensor(torch.cat([c0, c1b]), torch.cat([f0, torch.randn(len(c1b), 3, device=device)]).double()),
    )
    torch.testing.assert_close(out.feats[: len(c0)], out2.feats[: len(c0)])
    alone = _run(net, SparseTensor(c0, f0.double()))
    torch.testing.assert_close(out.feats[: len(c0)], alone.feats)


def test_single_voxel_and_empty_sample(device):
    net = _net().to(device)
    coords = torch.tensor([[0, 5, 5, 5], [2, 1, 2, 3]], dtype=torch.int32, device=device)
    x = SparseTensor(coords, torch.randn(2, 3, requires_grad=True, device=device), batch_size=4)
    y = _run(net, x)
    assert y.feats.shape == (2, 8)
    y.feats.sum().backward()
    avg, mx = global_avg_pool(y), global_max_pool(y)
    assert avg.shape == (4, 8) and mx.shape == (4, 8)
    assert torch.all(avg[1] == 0) and torch.all(mx[3] == 0)
    torch.testing.assert_close(avg[0], y.feats[0])
    bn = SparseBatchNorm(8).train()
    assert bn(SparseTensor(coords[:1], torch.randn(1, 8))).feats.shape == (1, 8)


def test_empty_tensor():
    x = SparseTensor(torch.zeros(0, 4, dtype=torch.int64), torch.zeros(0, 3), batch_size=2)
    y = SubMConv3d(3, 4)(x)
    assert y.feats.shape == (0, 4)
    z = SparseConv3d(4, 5)(y)
    assert z.feats.shape == (0, 5)
    assert global_avg_pool(z).shape == (2, 5)


def test_pooling_matches_reference():
    coords = random_sites(3, (4, 4, 4), 0.3, 5)
    f = torch.randn(len(coords), 2)
    x = SparseTensor(coords, f)
    for b in range(3):
        sel = coords[:, 0] == b
        torch.testing.assert_close(global_avg_pool(x)[b], f[sel].mean(0))
        torch.testing.assert_close(global_max_pool(x)[b], f[sel].max(0).values)


@pytest.mark.parametrize(
    "coords,feats,exc,match",
    [
        (torch.tensor([[0, -1, 0, 0]]), torch.zeros(1, 2), FastaiSparseError, ">= 0"),
        (torch.tensor([[0, 0.5, 0, 0]]), torch.zeros(1, 2), FastaiSparseError, "integer"),
        (torch.tensor([[0, 2**40, 2**40, 2**40]]), torch.zeros(1, 2), FastaiSparseError, "large"),
        (torch.tensor([[0, 1, 0, 0]]), torch.zeros(2, 2), ShapeError, "rows"),
        (torch.tensor([[0, 1, 0]]), torch.zeros(1, 2), ShapeError, r"\[M, 4\]"),
    ],
)
def test_bad_input(coords, feats, exc, match):
    with pytest.raises(exc, match=match):
        SparseTensor(coords, feats)


def test_bad_stride_multiple():
    with pytest.raises(FastaiSparseError, match="multiples"):
        SparseTensor(torch.tensor([[0, 1, 2, 2]]), torch.zeros(1, 1), stride=2)


def test_wrong_channels_named():
    x = SparseTensor(torch.tensor([[0, 1, 2, 2]]), torch.zeros(1, 5))
    with pytest.raises(ShapeError, match=r"SubMConv3d.*3.*5"):
        SubMConv3d(3, 4)(x)
    with pytest.raises(ShapeError, match=r"SparseConv3d.*3.*5"):
        SparseConv3d(3, 4)(x)


def test_inverse_without_down_raises():
    x = SparseTensor(torch.tensor([[0, 2, 2, 2]]), torch.zeros(1, 3), stride=2)
    with pytest.raises(ShapeError, match="inverse"):
        SparseInverseConv3d(3, 4)(x)


def test_one_vs_two_threads_identical():
    coords = random_sites(2, (20, 20, 12), 0.2, 3)
    torch.manual_seed(0)
    net = _net(8)
    f = torch.randn(len(coords), 8)
    old = torch.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            fr = f.clone().requires_grad_()
            out = _run(net, SparseTensor(coords, fr))
            (out.feats**2).sum().backward()
            res.append((out.feats.detach(), fr.grad, [p.grad.clone() for p in net.parameters()]))
            net.zero_grad()
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(res[0][0], res[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(res[0][1], res[1][1], rtol=1e-5, atol=1e-5)
    for a, b in zip(res[0][2], res[1][2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_cache_builds_each_map_once():
    coords = random_sites(2, (8, 8, 8), 0.3, 4)
    x = SparseTensor(coords, torch.randn(len(coords), 3))
    net = _net()
    _run(net, x)
    m = x.cache.get(("subm", 1, 3))
    _run(net, x.replace(torch.randn(len(coords), 3)))
    assert x.cache.get(("subm", 1, 3)) is m


@pytest.mark.parametrize("force_sorted", [False, True])
def test_sorted_key_path_matches_grid(monkeypatch, force_sorted):
    """Large or forced-sparse bounding boxes use sorted keys + searchsorted: same results."""
    import fastai_sparse.engine.kernel_map as km

    coords = random_sites(2, (7, 6, 5), 0.3, 21)
    f = torch.randn(len(coords), 3)
    torch.manual_seed(0)
    net = _net()
    ref = _run(net, SparseTensor(coords, f)).feats
    if force_sorted:
        monkeypatch.setattr(km, "_GRID_MAX_CELLS", 0)
    far = coords.clone()
    far[:, 1:] += torch.tensor([100_000, 4_000, 250_000]) * 2  # keep stride-2 parity
    x = SparseTensor(far, f)
    out = _run(net, x)
    assert (x.cache.index(1).grid is None) or not force_sorted
    torch.testing.assert_close(out.feats, ref)


def test_chunking_does_not_change_results():
    from fastai_sparse.engine.functional import gather_mm, gather_mm_wgrad, subm_backward

    coords = random_sites(2, (9, 8, 7), 0.3, 22)
    x = SparseTensor(coords, torch.randn(len(coords), 3, dtype=torch.float64))
    kmap = x.cache.subm_map(1, 3)
    xs = kmap.to_positions(x.feats)  # the compute kernels work in the map's positions
    w = torch.randn(27, 3, 4, dtype=torch.float64)
    g = torch.randn(len(coords), 4, dtype=torch.float64)
    ref = gather_mm(xs, kmap.nbr_t, w, chunk=10**6)
    gref = subm_backward(xs, w, g, kmap, True, True, chunk=10**6)
    wref = gather_mm_wgrad(xs, kmap.nbr_t, g, chunk=10**6)
    torch.testing.assert_close(wref, gref[1])  # the map is symmetric
    for chunk in (1, 7, 64):
        torch.testing.assert_close(gather_mm(xs, kmap.nbr_t, w, chunk), ref)
        got = subm_backward(xs, w, g, kmap, True, True, chunk=chunk)
        torch.testing.assert_close(got[0], gref[0])
        torch.testing.assert_close(got[1], gref[1])
        torch.testing.assert_close(gather_mm_wgrad(xs, kmap.nbr_t, g, chunk), wref)
