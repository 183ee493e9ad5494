"""Sparse layers: ``torch.nn.Module`` s taking and returning :class:`SparseTensor`.

Convolution weights have one layout on every backend: float [K**3, C_in, C_out] (offset
order in :mod:`fastai_sparse.engine.kernel_map`), so a state dict loads on every backend.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ShapeError
from .backends import Backend, resolve_backend
from .functional import global_avg_pool_feats, global_max_pool_feats
from .tensor import SparseTensor

__all__ = [
    "SparseActivation",
    "SparseBatchNorm",
    "SparseConv3d",
    "SparseDropout",
    "SparseInverseConv3d",
    "SparseLinear",
    "SparseReLU",
    "SubMConv3d",
    "global_avg_pool",
    "global_max_pool",
    "set_backend",
    "sparse_cat",
]


class _SparseConvBase(nn.Module):
    kind = "conv"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        bias: bool,
        backend: str | Backend | None,
    ):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ShapeError(
                f"{type(self).__name__}: channel counts must be >= 1, got {in_channels} -> {out_channels}"
            )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.backend = resolve_backend(backend)
        vol = self.kernel_size**3
        self.weight = nn.Parameter(torch.empty(vol, self.in_channels, self.out_channels))
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.in_channels * self.weight.shape[0]
        nn.init.normal_(self.weight, std=math.sqrt(2.0 / fan_in))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.kind != "subm":
            s += f", stride={self.stride}"
        if self.bias is None:
            s += ", bias=False"
        return s + f", backend={self.backend.name!r}"

    def _check(self, x: SparseTensor) -> None:
        if not isinstance(x, SparseTensor):
            raise TypeError(f"{type(self).__name__} takes a SparseTensor, got {type(x).__name__}")
        if x.num_channels != self.in_channels:
            raise ShapeError(
                f"{type(self).__name__}: expected {self.in_channels} input channels, got {x.num_channels}"
            )

    def _finish(self, y: SparseTensor) -> SparseTensor:
        if self.bias is not None:  # in the features' dtype (a reduced-precision output stays so)
            y = y.replace(y.feats + self.bias.to(y.feats.dtype))
        return y


class SubMConv3d(_SparseConvBase):
    """Submanifold convolution: output sites == input sites.

    weight float [K**3, C_in, C_out]; ``out[p] = sum_k x[p + offset_k] @ weight[k]``.
    """

    kind = "subm"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        bias: bool = False,
        backend: str | Backend | None = None,
    ):
        if kernel_size % 2 != 1:
            raise ShapeError(f"SubMConv3d needs an odd kernel_size, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, 1, bias, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        return self._finish(self.backend.subm_conv(x, self.weight, self.kernel_size))


class SparseConv3d(_SparseConvBase):
    """Strided (downsampling) convolution; the output has stride ``x.stride * stride``."""

    kind = "down"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 2,
        stride: int = 2,
        bias: bool = False,
        backend: str | Backend | None = None,
    ):
        if stride < 2 or kernel_size < 1:
            raise ShapeError(
                f"SparseConv3d needs stride >= 2 and kernel_size >= 1, got kernel_size="
                f"{kernel_size}, stride={stride} (use SubMConv3d for stride 1)"
            )
        super().__init__(in_channels, out_channels, kernel_size, stride, bias, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        return self._finish(self.backend.sparse_conv(x, self.weight, self.kernel_size, self.stride))


class SparseInverseConv3d(_SparseConvBase):
    """Transposed (upsampling) convolution reusing the matching down map.

    Returns exactly the coords of the finer tensor that the matching :class:`SparseConv3d`
    (same kernel size and stride, same forward pass) was applied to.
    """

    kind = "up"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 2,
        stride: int = 2,
        bias: bool = False,
        backend: str | Backend | None = None,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, bias, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        return self._finish(self.backend.inverse_conv(x, self.weight, self.kernel_size, self.stride))


class SparseBatchNorm(nn.BatchNorm1d):
    """Batch norm over the active sites (features [M, C]).

    Training with fewer than 2 sites normalises to zero (output = bias) without updating the
    running statistics, instead of raising. Reduced-precision features (bfloat16, float16 under
    autocast) are normalised in float32 (batch statistics, running statistics and the affine
    transform) and returned in their own dtype.
    """

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        f = x.feats
        if f.shape[1] != self.num_features:
            raise ShapeError(
                f"SparseBatchNorm: expected {self.num_features} input channels, got {f.shape[1]}"
            )
        if self.training and f.shape[0] < 2:
            y = f * 0.0
            if self.affine:
                y = y * self.weight + self.bias
            return x.replace(y.to(f.dtype))
        if f.dtype in (torch.bfloat16, torch.float16):
            return x.replace(super().forward(f.float()).to(f.dtype))
        return x.replace(super().forward(f))


class SparseActivation(nn.Module):
    """Apply an elementwise ``module`` (e.g. ``nn.ReLU()``) to the features."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(self.module(x.feats))


class SparseReLU(SparseActivation):
    def __init__(self, inplace: bool = False):
        super().__init__(nn.ReLU(inplace=inplace))


class SparseDropout(SparseActivation):
    def __init__(self, p: float = 0.5):
        super().__init__(nn.Dropout(p))


class SparseLinear(nn.Module):
    """Per-site linear layer (a 1x1x1 convolution): features [M, C_in] -> [M, C_out]."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels, bias=bias)

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.num_channels != self.linear.in_features:
            raise ShapeError(
                f"SparseLinear: expected {self.linear.in_features} input channels, got {x.num_channels}"
            )
        return x.replace(self.linear(x.feats))


def sparse_cat(*tensors: SparseTensor) -> SparseTensor:
    """Channel concatenation of tensors with identical coords (e.g. a UNet skip)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    a = tensors[0]
    for b in tensors[1:]:
        if b.stride != a.stride:
            raise ShapeError(f"sparse_cat: strides differ ({a.stride} vs {b.stride})")
        if b.coords is not a.coords and (
            b.coords.shape != a.coords.shape or not torch.equal(b.coords, a.coords)
        ):
            raise ShapeError(
                f"sparse_cat: tensors must have identical coords; got {a.num_sites} and {b.num_sites} sites"
            )
    return a.replace(torch.cat([t.feats for t in tensors], dim=1))


def global_avg_pool(x: SparseTensor) -> torch.Tensor:
    """Mean of the features of each sample: float [B, C] (zeros for an empty sample)."""
    return global_avg_pool_feats(x.feats, x.coords[:, 0], x.batch_size)


def global_max_pool(x: SparseTensor) -> torch.Tensor:
    """Max of the features of each sample: float [B, C] (zeros for an empty sample)."""
    return global_max_pool_feats(x.feats, x.coords[:, 0], x.batch_size)


def set_backend(module: nn.Module, backend: str | Backend | None) -> nn.Module:
    """Switch every sparse convolution inside ``module`` to ``backend``; returns ``module``."""
    b = resolve_backend(backend)
    for m in module.modules():
        if isinstance(m, _SparseConvBase):
            m.backend = b
        elif hasattr(m, "backend_name"):
            m.backend_name = b.name
    return module
