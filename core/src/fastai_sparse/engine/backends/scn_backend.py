"""Adapter for SparseConvNet (``import sparseconvnet``; not on PyPI, users build it).

Thin by design: SparseConvNet keeps its own coordinate hash tables inside a ``Metadata``
object, so the adapter converts the :class:`SparseTensor` to an ``InputLayer`` once per
forward (stored in the kernel-map cache under ``("scn", ...)``) and calls
``sparseconvnet``'s functional convolutions with the weight reshaped from the common
layout float [K**3, C_in, C_out], which is also SparseConvNet's own layout
(``weight[filter_volume, nIn, nOut]`` with x-major offsets). The strided and inverse
convolutions reuse the torch backend's maps to put rows in the engine's order.

It is only used when ``import sparseconvnet`` works; this file imports nothing from it at
module import time. Untested here (SparseConvNet is not installable in CI); its tests skip.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import torch

from .base import Backend

if TYPE_CHECKING:
    from ..tensor import SparseTensor

__all__ = ["ScnBackend"]


class ScnBackend(Backend):
    """SparseConvNet adapter (submanifold convolution on SCN, the rest on torch)."""

    name = "scn"

    def available(self) -> bool:
        if importlib.util.find_spec("sparseconvnet") is None:
            return False
        try:
            import sparseconvnet  # noqa: F401
        except Exception:
            return False
        return True

    def why_unavailable(self) -> str:
        return (
            "backend 'scn' needs SparseConvNet (import sparseconvnet failed); build it from "
            "https://github.com/facebookresearch/SparseConvNet or use backend='torch'"
        )

    def _torch(self):
        from .torch_backend import TorchBackend

        return TorchBackend()

    def subm_conv(self, x: SparseTensor, weight: torch.Tensor, kernel_size: int) -> SparseTensor:
        import sparseconvnet as scn

        key = ("scn", "meta", x.stride)
        entry = x.cache.get(key)
        if entry is None:
            coords = x.coords.long()
            loc = torch.cat([coords[:, 1:] // x.stride, coords[:, :1]], dim=1).cpu()
            size = int(loc[:, :3].max()) + kernel_size + 1 if len(loc) else kernel_size + 1
            spatial = torch.LongTensor([size] * 3)
            meta = scn.Metadata(3)
            # mode 0: the caller guarantees unique sites; rows keep their order
            meta.setInputSpatialLocations(spatial, loc, torch.zeros(len(loc), 1), True)
            entry = x.cache.set(key, (meta, spatial))
        meta, spatial = entry
        feats = scn.SubmanifoldConvolutionFunction.apply(
            x.feats, weight, torch.Tensor(), meta, spatial, 3, kernel_size
        )
        return x.replace(feats)

    def sparse_conv(self, x, weight, kernel_size, stride):
        return self._torch().sparse_conv(x, weight, kernel_size, stride)

    def inverse_conv(self, x, weight, kernel_size, stride):
        return self._torch().inverse_conv(x, weight, kernel_size, stride)
