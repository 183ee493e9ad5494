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


def _batch(B=2, n_pts=400, size=12, c=3, seed=0, empty=()):
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
    return {
        "coords": torch.cat(coords).int(),
        "feats": torch.cat(feats),
        "inverse": torch.cat(inverse).long(),
        "voxel_offsets": torch.tensor(vo),
        "point_offsets": torch.tensor(po),
        "point_feats": torch.cat(pfeats),
    }


def test_unet_forward_backward_coords():
    b = _batch()
    net = UNet(3, m=8, levels=4, reps=1)
    x = SparseTensor(b["coords"], b["feats"])
    y = net(x)
    assert y.coords is x.coords and y.stride == 1 and y.feats.shape == (len(b["coords"]), 8)
    assert net.out_channels == 8
    y.feats.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_unet_residual_reps2():
    b = _batch(seed=1)
    net = UNet(3, m=4, levels=3, reps=2, residual=True)
    y = net(SparseTensor(b["coords"], b["feats"]))
    assert torch.equal(y.coords, b["coords"]) and y.num_channels == 4
    y.feats.pow(2).mean().backward()


def test_resnet_pool_model_with_empty_sample():
    b = _batch(B=3, empty=(1,))
    model = SparseModel(
        SparseResNet(3, widths=(8, 16), blocks=(1, 1)), PoolHead(16, 5, pool="avgmax", hidden=8)
    )
    out = model(b)
    assert out.shape == (3, 5)
    out.sum().backward()
    model.eval()
    assert model(b).shape == (3, 5)


def test_segmentation_model_per_point_with_vfe():
    b = _batch()
    model = SparseModel(UNet(16, m=8, levels=3), SegmentationHead(8, 7), input_stage=VFE(3, (8,), 16))
    out = model(b)
    assert out.shape == (len(b["inverse"]), 7)
    out.logsumexp(1).mean().backward()
    assert model.input_stage.last.linear.weight.grad is not None


def test_vfe_is_max_over_points():
    vfe = VFE(2, hidden=(), out_channels=3).eval()
    pf = torch.randn(10, 2)
    inv = torch.tensor([0, 0, 1, 1, 1, 3, 3, 3, 3, 0])
    out = vfe(pf, inv, 5)
    per_point = vfe.last(pf)
    torch.testing.assert_close(out[1], per_point[2:5].max(0).values)
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
    y = net(SparseTensor(b["coords"], b["feats"]))
    y.feats.sum().backward()
