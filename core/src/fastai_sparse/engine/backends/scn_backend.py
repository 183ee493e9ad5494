"""Adapter for SparseConvNet (``import sparseconvnet``; not on PyPI, users build it).

Thin by design. Submanifold convolutions run on SparseConvNet: each level (stride) is turned
into SparseConvNet metadata once per forward pass with ``scn.InputLayer(3, size, mode=0)``
(mode 0: sites are unique, rows keep their order), stored in the engine's kernel-map cache
under ``("scn", "level", stride)``, and a cached ``scn.SubmanifoldConvolution`` is called
through ``torch.func.functional_call`` with the engine's weight reshaped to the module's
parameter shape (SparseConvNet also stores filter-volume-major weights,
``[K**3, C_in, C_out]`` or ``[K**3 * C_in, C_out]`` depending on the version). Strided and
inverse convolutions use the torch backend's maps and kernels, so rows stay in the engine's
order.

It is only used when ``import sparseconvnet`` works; this module imports nothing from it at
import time. NOT exercised in this repository's CI (SparseConvNet cannot be installed
there): ``tests/engine/test_backends.py`` compares it with the torch backend on outputs,
gradients and state dicts wherever SparseConvNet is installed, and skips otherwise. If
SparseConvNet's offset order differs from the engine's, that test is where it shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .base import Backend, importable

if TYPE_CHECKING:
    from ..tensor import SparseTensor

__all__ = ["ScnBackend"]


class ScnBackend(Backend):
    """SparseConvNet adapter (submanifold convolution on SCN, the rest on torch)."""

    name = "scn"

    def available(self) -> bool:
        return importable("sparseconvnet")

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

        key = ("scn", "level", x.stride)
        entry = x.cache.get(key)
        if entry is None:
            loc = x.coords.long().clone()
            loc[:, 1:] //= x.stride
            # SparseConvNet wants (x, y, z, batch) on the CPU
            loc = torch.cat([loc[:, 1:], loc[:, :1]], dim=1).cpu()
            size = int(loc[:, :3].max()) + 1 + kernel_size if len(loc) else 1 + kernel_size
            layer = scn.InputLayer(3, torch.LongTensor([size] * 3), mode=0)
            probe = layer([loc, torch.zeros(len(loc), 1)])
            entry = x.cache.set(key, (probe.metadata, probe.spatial_size))
        metadata, spatial = entry
        cin, cout = weight.shape[1], weight.shape[2]
        mods = ScnBackend.__dict__.get("_modules")
        if mods is None:
            mods = ScnBackend._modules = {}
        mod = mods.get((cin, cout, kernel_size))
        if mod is None:
            mod = mods[(cin, cout, kernel_size)] = scn.SubmanifoldConvolution(
                3, cin, cout, kernel_size, False
            )
        mod = mod.to(x.feats.device)
        t = scn.SparseConvNetTensor(x.feats, metadata, spatial)
        w = weight.reshape(mod.weight.shape)
        out = torch.func.functional_call(mod, {"weight": w}, (t,))
        return x.replace(out.features)

    def sparse_conv(self, x, weight, kernel_size, stride):
        return self._torch().sparse_conv(x, weight, kernel_size, stride)

    def inverse_conv(self, x, weight, kernel_size, stride):
        return self._torch().inverse_conv(x, weight, kernel_size, stride)
