"""Models run forward and backward; shapes and coords contracts; registry configs."""

from __future__ import annotations

import pytest
import torch

from fastai_sparse.engine import SparseTensor
from fastai_sparse.models import (
    VFE,
    PoolHead,
    SegmentationHead,
    SparseModel,
    SparseResNet,
    UNet,
    count_parameters,
    resnet_sparse_18,
)


def _batch(B=2, n_pts=400, size=12, c=3, seed=0, empty=(), device="cpu"):
    g = torch.Generator().manual_seed(seed)
    coords, inverse, vo, po, feats, pfeats = [], [], [0], [0], [], []
    for b in range(B):
        if b in empty:
            vo.append(vo[-1])
            po.append(po[-1])
            continue
        pts = torch.randint(0, size, (n_pts, 3), generator=g)
        uniq, inv = torch.unique(pts, dim=0, return_inverse=True)
        coords.append(torch.cat([torch.full((len(uniq), 1), b), uniq], 1))
        inverse.append(inv + vo[-1])
        vo.append(vo[-1] + len(uniq))
        po.append(po[-1] + n_pts)
        feats.append(torch.randn(len(uniq), c, generator=g))
        pfeats.append(torch.randn(n_pts, c, generator=g))
    batch = {
        "coords": torch.cat(coords).int(),
        "feats": torch.cat(feats),
        "inverse": torch.cat(inverse).long(),
        "voxel_offsets": torch.tensor(vo),
        "point_offsets": torch.tensor(po),
        "point_feats": torch.cat(pfeats),
    }
    return {k: v.to(device) for k, v in batch.items()}


def _shifted(coords: torch.Tensor, by: int) -> torch.Tensor:
    """Coordinates moved by ``by`` voxels along x, y and z (the batch column kept)."""
    return coords + torch.tensor([0, by, by, by], dtype=coords.dtype, device=coords.device)


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=10 * tol, atol=tol), f"max difference {float((a - b).abs().max())}"


def _grads_flow(net: torch.nn.Module) -> None:
    """Every parameter received a finite gradient, and most a non-zero one (a layer cut off from
    the output, or a backward that returns zeros, fails this)."""
    grads = {n: p.grad for n, p in net.named_parameters()}
    missing = [n for n, g in grads.items() if g is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(g).all() for g in grads.values())
    zero = [n for n, g in grads.items() if not g.abs().sum() > 0]
    assert len(zero) <= len(grads) // 10, f"zero gradients for {zero}"


def test_unet_forward_backward_coords(device):
    b = _batch(device=device)
    net = UNet(3, m=8, levels=4, reps=1).to(device)
    x = SparseTensor(b["coords"], b["feats"])
    y = net(x)
    assert y.feats.device == device
    assert y.coords is x.coords and y.stride == 1 and y.feats.shape == (len(b["coords"]), 8)
    assert net.out_channels == 8
    y.feats.sum().backward()
    _grads_flow(net)


def test_unet_is_translation_equivariant(device):
    # Sparse convolutions, strided ones included, commute with a shift by a multiple of the
    # coarsest stride (2 ** (levels - 1)); batch norm statistics do not change either. A wrong
    # kernel map (offsets, stride rounding, up-sampling to the wrong rows) breaks this.
    b = _batch(seed=1, device=device)
    net = UNet(3, m=4, levels=3, reps=2, residual=True).to(device)
    y = net(SparseTensor(b["coords"], b["feats"]))
    assert torch.equal(y.coords, b["coords"]) and y.num_channels == 4
    moved = net(SparseTensor(_shifted(b["coords"], 4 * 3), b["feats"]))
    _close(moved.feats, y.feats)
    odd = net(SparseTensor(_shifted(b["coords"], 1), b["feats"]))  # not a multiple: voxels regroup
    assert not torch.allclose(odd.feats, y.feats, atol=1e-3)
    y.feats.pow(2).mean().backward()
    _grads_flow(net)


def test_unet_samples_of_a_batch_do_not_mix(device):
    # in eval mode, a sample's features are those it gets alone: no convolution (strided or
    # transposed) reaches across the batch column or maps a row to another sample's voxel
    b = _batch(B=2, seed=2, device=device)
    net = UNet(3, m=4, levels=3).eval().to(device)
    both = net(SparseTensor(b["coords"], b["feats"]))
    n0 = int(b["voxel_offsets"][1])
    alone = net(SparseTensor(b["coords"][:n0], b["feats"][:n0]))
    second = net(
        SparseTensor(
            b["coords"][n0:] - torch.tensor([1, 0, 0, 0], dtype=torch.int32, device=device), b["feats"][n0:]
        )
    )
    _close(alone.feats, both.feats[:n0])
    _close(second.feats, both.feats[n0:])


def test_segmentation_model_learns_a_labelling(device):
    # backward gives useful gradients: 30 Adam steps fit a labelling that depends on position
    torch.manual_seed(0)
    b = _batch(B=2, n_pts=200, size=10, device=device)
    pts_xyz = b["coords"][b["inverse"], 1:].float()
    y = (pts_xyz[:, 0] + pts_xyz[:, 2] > 9).long()
    model = SparseModel(UNet(3, m=8, levels=3), SegmentationHead(8, 2)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(b), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.25 * losses[0], losses
    assert (model(b).argmax(1) == y).float().mean() > 0.95


def test_resnet_pool_model_with_empty_sample(device):
    b = _batch(B=3, empty=(1,), device=device)
    model = SparseModel(
        SparseResNet(3, widths=(8, 16), blocks=(1, 1)), PoolHead(16, 5, pool="avgmax", hidden=8)
    ).to(device)
    out = model(b)
    assert out.shape == (3, 5)
    out.sum().backward()
    _grads_flow(model)
    model.eval()
    out = model(b)
    assert out.shape == (3, 5)
    # the empty sample pools to zeros, so its output is the head's MLP applied to zeros
    _close(out[1], model.head.mlp(torch.zeros(1, 32, device=device))[0])
    # in eval mode a sample's output does not depend on the other samples of its batch
    first = {
        "coords": b["coords"][: int(b["voxel_offsets"][1])],
        "feats": b["feats"][: int(b["voxel_offsets"][1])],
        "voxel_offsets": b["voxel_offsets"][:2],
    }
    _close(model(first)[0], out[0])


def test_segmentation_model_per_point_with_vfe(device):
    b = _batch(device=device)
    model = SparseModel(UNet(16, m=8, levels=3), SegmentationHead(8, 7), input_stage=VFE(3, (8,), 16)).to(
        device
    )
    out = model(b)
    assert out.shape == (len(b["inverse"]), 7) and out.device == device
    # one row per point, the row of the point's voxel: points sharing a voxel get equal rows
    per_voxel = torch.zeros(len(b["coords"]), 7, device=device).index_copy_(0, b["inverse"], out.detach())
    _close(out.detach(), per_voxel[b["inverse"]])
    out.logsumexp(1).mean().backward()
    _grads_flow(model)


def test_vfe_is_max_over_points():
    vfe = VFE(2, hidden=(), out_channels=3).eval()
    pf = torch.randn(10, 2)
    inv = torch.tensor([0, 0, 1, 1, 1, 3, 3, 3, 3, 0])
    out = vfe(pf, inv, 5)
    per_point = vfe.last(pf)
    _close(out[1], per_point[2:5].max(0).values)
    assert torch.all(out[2] == 0) and torch.all(out[4] == 0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: UNet(3, m=16),
        lambda: UNet(3, m=32, reps=2, residual=True),
        lambda: resnet_sparse_18(in_channels=3),
        lambda: VFE(),
    ],
)
def test_factories_build_with_defaults(make):
    net = make()
    assert count_parameters(net) > 0 and net.out_channels > 0


@pytest.mark.slow
def test_unet_m16_default_runs():
    b = _batch(B=2, n_pts=2000, size=40)
    net = UNet(3, m=16, levels=5)
    x = SparseTensor(b["coords"], b["feats"])
    y = net(x)
    assert y.coords is x.coords and y.stride == 1 and y.feats.shape == (len(b["coords"]), 16)
    moved = net(SparseTensor(_shifted(b["coords"], 16 * 2), b["feats"]))
    _close(moved.feats, y.feats)
    y.feats.sum().backward()
    _grads_flow(net)
