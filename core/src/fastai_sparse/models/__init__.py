"""Models written once against the engine: UNet, sparse ResNet, VFE, heads, SparseModel.

Every class and factory takes keyword arguments with defaults, so the registry (the built-in
plugin) can build one from a name plus kwargs.
"""

from __future__ import annotations

from torch import nn

from .heads import PoolHead, SegmentationHead
from .resnet import RESNET_CONFIGS, BasicBlock, SparseResNet
from .unet import UNet
from .vfe import VFE
from .wrapper import SparseModel

__all__ = [
    "RESNET_CONFIGS",
    "VFE",
    "BasicBlock",
    "PoolHead",
    "SegmentationHead",
    "SparseModel",
    "SparseResNet",
    "UNet",
    "count_parameters",
    "resnet_sparse_18",
]


def resnet_sparse_18(
    in_channels: int = 3,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    backend=None,
) -> SparseResNet:
    """Sparse ResNet-18 encoder: basic blocks (2, 2, 2, 2) at ``widths``, 4 stages."""
    return SparseResNet(in_channels, widths=widths, blocks=(2, 2, 2, 2), backend=backend)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
