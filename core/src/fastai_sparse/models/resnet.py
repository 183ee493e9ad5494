"""A sparse ResNet encoder (basic blocks, stride-2 2x2x2 convolutions between stages)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..engine import SparseBatchNorm, SparseConv3d, SparseReLU, SparseTensor, SubMConv3d
from ..engine.backends import Backend
from ..errors import ShapeError

__all__ = ["RESNET_CONFIGS", "BasicBlock", "SparseResNet"]

#: Named configurations (``widths``, ``blocks``); 18 = 1 stem + 2 * 8 block convs + 1 head.
RESNET_CONFIGS: dict[str, dict] = {
    "resnet-sparse-18": {"widths": (32, 64, 128, 256), "blocks": (2, 2, 2, 2)},
    "resnet-sparse-34": {"widths": (32, 64, 128, 256), "blocks": (3, 4, 6, 3)},
}


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus identity shortcut, then ReLU (submanifold 3x3x3)."""

    def __init__(self, channels: int, backend: str | Backend | None = None):
        super().__init__()
        self.body = nn.Sequential(
            SubMConv3d(channels, channels, 3, backend=backend),
            SparseBatchNorm(channels),
            SparseReLU(),
            SubMConv3d(channels, channels, 3, backend=backend),
            SparseBatchNorm(channels),
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        y = self.body(x)
        return y.replace((y.feats + x.feats).relu())


class SparseResNet(nn.Module):
    """Sparse ResNet encoder.

    Stem: SubMConv 3x3x3 ``in_channels -> widths[0]``, BN, ReLU. Stage ``i``: (for ``i > 0``)
    a 2x2x2 stride-2 convolution ``widths[i-1] -> widths[i]`` with BN and ReLU, then
    ``blocks[i]`` basic blocks. ``forward(SparseTensor) -> SparseTensor`` at stride
    ``2 ** (len(widths) - 1)``; ``out_channels == widths[-1]``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks: Sequence[int] = (2, 2, 2, 2),
        backend: str | Backend | None = None,
    ):
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ShapeError(f"widths {tuple(widths)} and blocks {tuple(blocks)} must match")
        self.in_channels = in_channels
        self.out_channels = widths[-1]
        layers: list[nn.Module] = [
            SubMConv3d(in_channels, widths[0], 3, backend=backend),
            SparseBatchNorm(widths[0]),
            SparseReLU(),
        ]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            if i > 0:
                layers += [
                    SparseConv3d(widths[i - 1], w, 2, 2, backend=backend),
                    SparseBatchNorm(w),
                    SparseReLU(),
                ]
            layers += [BasicBlock(w, backend) for _ in range(n)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.layers(x)
