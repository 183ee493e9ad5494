"""The UNet's output stage option: ``output_bn_relu`` adds (default) or leaves out the final
BN+ReLU between the last decoder block and the head."""

from __future__ import annotations

import torch
from torch import nn

from fastai_sparse.engine import SparseBatchNorm, SparseReLU, SparseTensor
from fastai_sparse.models import UNet

from .test_models import _batch


def test_default_ends_with_bn_relu_as_the_reference():
    net = UNet(3, m=8, levels=3)
    assert net.output_bn_relu is True
    kinds = [type(m) for m in net.output]
    assert kinds == [SparseBatchNorm, SparseReLU]


def test_without_output_bn_relu_structure_and_parameters():
    torch.manual_seed(0)
    with_bn = UNet(3, m=8, levels=3)
    torch.manual_seed(0)
    without = UNet(3, m=8, levels=3, output_bn_relu=False)
    assert isinstance(without.output, nn.Identity)
    n_with = sum(p.numel() for p in with_bn.parameters())
    n_without = sum(p.numel() for p in without.parameters())
    assert n_with - n_without == 2 * 8  # the final batch norm's weight and bias
    assert not any(k.startswith("output.") for k in without.state_dict())


def test_without_output_bn_relu_forward_is_the_body_output():
    b = _batch(seed=3)
    torch.manual_seed(0)
    with_bn = UNet(3, m=8, levels=3)
    torch.manual_seed(0)
    without = UNet(3, m=8, levels=3, output_bn_relu=False)
    # same initial weights: only the output stage differs
    without.load_state_dict({k: v for k, v in with_bn.state_dict().items() if not k.startswith("output.")})
    x = SparseTensor(b["coords"], b["feats"])
    y = without(x)
    assert y.feats.shape == (len(b["coords"]), 8) and y.coords is x.coords
    assert (y.feats < 0).any()  # no ReLU at the end: the last convolution's output as it is
    z = with_bn(x)
    torch.testing.assert_close(z.feats, with_bn.output(y).feats)
    assert (z.feats >= 0).all()
    y.feats.sum().backward()
    assert all(p.grad is not None for p in without.parameters())
