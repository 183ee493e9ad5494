"""The built-in backend: pure PyTorch, CPU and CUDA, no compilation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ...errors import ShapeError
from ..functional import down_conv, inverse_conv, subm_conv
from .base import Backend

if TYPE_CHECKING:
    from ..tensor import SparseTensor

__all__ = ["TorchBackend", "find_down_map"]


def find_down_map(x: SparseTensor, kernel_size: int, stride: int):
    """The down map whose output is ``x`` (for an inverse convolution); ShapeError if none."""
    if x.stride % stride:
        raise ShapeError(f"inverse convolution with stride {stride} on a tensor of stride {x.stride}")
    fine = x.stride // stride
    kmap = x.cache.get(("down", fine, kernel_size, stride))
    if kmap is None:
        raise ShapeError(
            f"no strided convolution (kernel {kernel_size}, stride {stride}) from stride "
            f"{fine} in this forward pass: an inverse convolution must follow the matching "
            f"SparseConv3d on tensors sharing one kernel-map cache"
        )
    if kmap.n_out != x.num_sites:
        raise ShapeError(
            f"inverse convolution input has {x.num_sites} sites but the matching strided "
            f"convolution produced {kmap.n_out}"
        )
    return kmap


class TorchBackend(Backend):
    """Gather-GEMM convolutions in plain PyTorch (see :mod:`fastai_sparse.engine.functional`)."""

    name = "torch"

    def available(self) -> bool:
        return True

    def subm_conv(self, x: SparseTensor, weight: torch.Tensor, kernel_size: int) -> SparseTensor:
        kmap = x.cache.subm_map(x.stride, kernel_size)
        return x.replace(subm_conv(x.feats, weight, kmap))

    def sparse_conv(
        self, x: SparseTensor, weight: torch.Tensor, kernel_size: int, stride: int
    ) -> SparseTensor:
        kmap = x.cache.down_map(x.stride, kernel_size, stride)
        return x.derive(kmap.out_coords, down_conv(x.feats, weight, kmap), x.stride * stride)

    def inverse_conv(
        self, x: SparseTensor, weight: torch.Tensor, kernel_size: int, stride: int
    ) -> SparseTensor:
        kmap = find_down_map(x, kernel_size, stride)
        fine = x.stride // stride
        coords = x.cache.get(("coords", fine))
        return x.derive(coords, inverse_conv(x.feats, weight, kmap), fine)
