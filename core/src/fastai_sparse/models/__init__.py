"""Models written once against the engine: UNet, sparse ResNet, VFE, heads, SparseModel.

Named configurations (for the registry; every factory takes keyword arguments with
defaults): :data:`MODEL_CONFIGS` maps a name to ``(class, kwargs)``; build one with
:func:`build_backbone`.
"""

from __future__ import annotations

from torch import nn

from .heads import PoolHead, SegmentationHead
from .resnet import RESNET_CONFIGS, BasicBlock, SparseResNet
from .unet import UNet
from .vfe import VFE
from .wrapper import SparseModel

__all__ = [
    "MODEL_CONFIGS",
    "VFE",
    "BasicBlock",
    "PoolHead",
    "SegmentationHead",
    "SparseModel",
    "SparseResNet",
    "UNet",
    "build_backbone",
    "count_parameters",
]

#: name -> (backbone class, default kwargs). ``unet-m32-r2`` follows SparseConvNet's ScanNet
#: example (m=32, 2 blocks per level, 7 levels).
MODEL_CONFIGS: dict[str, tuple[type[nn.Module], dict]] = {
    "unet-m16": (UNet, {"m": 16, "levels": 5, "reps": 1, "residual": False}),
    "unet-m32-r2": (UNet, {"m": 32, "levels": 7, "reps": 2, "residual": False}),
    "unet-m16-res": (UNet, {"m": 16, "levels": 5, "reps": 1, "residual": True}),
    **{name: (SparseResNet, dict(cfg)) for name, cfg in RESNET_CONFIGS.items()},
}


def build_backbone(name: str, in_channels: int = 3, **kwargs) -> nn.Module:
    """Backbone ``name`` from :data:`MODEL_CONFIGS`, defaults overridden by ``kwargs``."""
    cls, defaults = MODEL_CONFIGS[name]
    return cls(in_channels=in_channels, **{**defaults, **kwargs})


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
