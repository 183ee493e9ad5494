"""SparseConvNet-style UNet on the engine's layers (any backend)."""

from __future__ import annotations

from torch import nn

from ..engine import (
    SparseBatchNorm,
    SparseConv3d,
    SparseInverseConv3d,
    SparseLinear,
    SparseReLU,
    SparseTensor,
    SubMConv3d,
    sparse_cat,
)
from ..engine.backends import Backend

__all__ = ["BNReLU", "ConvBlock", "ResidualBlock", "UNet"]


class BNReLU(nn.Sequential):
    """Batch norm then ReLU on a :class:`SparseTensor`."""

    def __init__(self, channels: int):
        super().__init__(SparseBatchNorm(channels), SparseReLU())


class ConvBlock(nn.Sequential):
    """Pre-activation block: BN, ReLU, submanifold 3x3x3 convolution ``a -> b``."""

    def __init__(self, a: int, b: int, backend: str | Backend | None = None):
        super().__init__(BNReLU(a), SubMConv3d(a, b, 3, backend=backend))


class ResidualBlock(nn.Module):
    """Pre-activation residual block: two BN-ReLU-SubMConv; 1x1x1 shortcut when ``a != b``."""

    def __init__(self, a: int, b: int, backend: str | Backend | None = None):
        super().__init__()
        self.shortcut = SparseLinear(a, b, bias=False) if a != b else nn.Identity()
        self.branch = nn.Sequential(ConvBlock(a, b, backend), ConvBlock(b, b, backend))

    def forward(self, x: SparseTensor) -> SparseTensor:
        y = self.branch(x)
        return y.replace(y.feats + self.shortcut(x).feats)


def _blocks(a: int, b: int, reps: int, residual: bool, backend) -> nn.Sequential:
    block = ResidualBlock if residual else ConvBlock
    return nn.Sequential(*[block(a if i == 0 else b, b, backend) for i in range(reps)])


class _Level(nn.Module):
    """One UNet level: blocks, then (down, inner levels, up, concat skip, blocks)."""

    def __init__(self, planes: list[int], reps: int, residual: bool, backend):
        super().__init__()
        n = planes[0]
        self.pre = _blocks(n, n, reps, residual, backend)
        self.inner = None
        if len(planes) > 1:
            self.down = nn.Sequential(BNReLU(n), SparseConv3d(n, planes[1], 2, 2, backend=backend))
            self.inner = _Level(planes[1:], reps, residual, backend)
            self.up = nn.Sequential(
                BNReLU(planes[1]), SparseInverseConv3d(planes[1], n, 2, 2, backend=backend)
            )
            self.post = _blocks(2 * n, n, reps, residual, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        x = self.pre(x)
        if self.inner is None:
            return x
        y = self.up(self.inner(self.down(x)))
        return self.post(sparse_cat(x, y))


class UNet(nn.Module):
    """SparseConvNet-style UNet.

    Input submanifold 3x3x3 convolution ``in_channels -> m``; planes ``m, 2m, ..., levels*m``;
    per level ``reps`` blocks (BN+ReLU+SubMConv, or residual blocks), a 2x2x2 stride-2
    convolution down, a transposed convolution up, a skip concatenation and ``reps`` more
    blocks; then, with ``output_bn_relu=True`` (default), a final BN+ReLU.

    The final BN+ReLU is what SparseConvNet's ScanNet example puts between ``scn.UNet`` and
    its linear classifier (``scn.BatchNormReLU(m)`` before ``scn.OutputLayer``). With
    ``output_bn_relu=False`` the head sees the last submanifold convolution's output directly
    (32 fewer parameters at m = 16); see the task that turns it off for the measured reason.

    ``forward(SparseTensor [M, in_channels]) -> SparseTensor [M, m]`` at stride 1 with the
    input's coords. ``out_channels == m``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        m: int = 16,
        levels: int = 5,
        reps: int = 1,
        residual: bool = False,
        backend: str | Backend | None = None,
        output_bn_relu: bool = True,
    ):
        super().__init__()
        self.in_channels, self.m, self.levels, self.reps = in_channels, m, levels, reps
        self.out_channels = m
        self.output_bn_relu = bool(output_bn_relu)
        self.input_conv = SubMConv3d(in_channels, m, 3, backend=backend)
        self.body = _Level([m * (i + 1) for i in range(levels)], reps, residual, backend)
        self.output = BNReLU(m) if self.output_bn_relu else nn.Identity()

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.output(self.body(self.input_conv(x)))
