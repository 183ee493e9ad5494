"""Adapter for spconv 2.x (``pip install fastai-sparse[spconv]``).

How it maps onto spconv:

* Each level (stride) of a :class:`SparseTensor` becomes a ``spconv.pytorch.SparseConvTensor``
  with indices ``(batch, x, y, z) // stride`` in the engine's row order; one spconv
  ``indice_dict`` lives in the engine's kernel-map cache, so spconv builds each of its maps
  once per forward pass (indice keys ``fs-subm-<stride>-<K>`` / ``fs-down-<stride>-<K>-<s>``).
* Weights: the engine's float [K**3, C_in, C_out] is viewed as spconv's layout
  [C_out, K, K, K, C_in] on the fly (a differentiable permute), so the same state dict
  serves both backends.
* Strided convolution: spconv orders the coarse sites its own way; the adapter permutes the
  rows into the engine's order (``cache.down_map(...).out_coords``) so that every backend
  returns identical tensors. The inverse convolution undoes the permutation and reuses
  spconv's pairs of the matching strided convolution.
* Thread guard: spconv 2.3.x on CPU with more than one torch thread was observed to return
  wrong values for 0.1-0.5% of the rows (a race). Every spconv call on a CPU tensor, forward
  and backward, therefore runs with ``torch.set_num_threads(1)`` (restored afterwards):
  :class:`_Guarded` re-runs spconv's backward under the same guard.

Strided and inverse convolutions with ``kernel_size != stride`` run on the torch backend
(spconv's output extents for overlapping windows do not line up level to level).

Forward and backward work on CPU and CUDA (``ConvAlgo.Native`` on CPU; spconv's default on
CUDA).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

import torch

from ...errors import ShapeError
from .base import Backend, importable

if TYPE_CHECKING:
    from ..tensor import SparseTensor

__all__ = ["SpconvBackend", "single_thread"]

_LOCK = threading.RLock()


@contextlib.contextmanager
def single_thread(active: bool = True):
    """Run the block with one torch intra-op thread (restored afterwards)."""
    if not active:
        yield
        return
    with _LOCK:
        old = torch.get_num_threads()
        if old != 1:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if old != 1:
                torch.set_num_threads(old)


@contextlib.contextmanager
def _cpu_stream_patch(active: bool):
    """spconv 2.3's CPU backward asks for the current CUDA stream before branching to its
    CPU code (and never uses it there); on a CUDA build of torch without a GPU that raises.
    While active and without CUDA, answer 0 instead (scoped, restored afterwards)."""
    if not active or torch.cuda.is_available():
        yield
        return
    from spconv.pytorch import ops

    orig = ops.get_current_stream
    ops.get_current_stream = lambda: 0
    try:
        yield
    finally:
        ops.get_current_stream = orig


class _Guarded(torch.autograd.Function):
    """Run ``fn(feats, weight)`` (spconv) with its forward AND backward under one thread.

    The inner graph is recorded on detached inputs and differentiated in ``backward`` with
    ``torch.autograd.grad`` inside the guard, so spconv's backward kernels never run with
    several threads either.
    """

    @staticmethod
    def forward(ctx, fn, cpu: bool, feats, weight):
        ctx.cpu = cpu
        f = feats.detach().requires_grad_(feats.requires_grad)
        w = weight.detach().requires_grad_(weight.requires_grad)
        with single_thread(cpu), torch.enable_grad():
            out = fn(f, w)
        ctx.inner = (f, w, out)
        return out.detach()

    @staticmethod
    def backward(ctx, grad):
        f, w, out = ctx.inner
        ins = [t for t in (f, w) if t.requires_grad]
        if not out.requires_grad or not ins:
            return None, None, None, None
        with single_thread(ctx.cpu), _cpu_stream_patch(ctx.cpu):
            grads = list(torch.autograd.grad(out, ins, grad, allow_unused=True))
        gf = grads.pop(0) if f.requires_grad else None
        gw = grads.pop(0) if w.requires_grad else None
        del ctx.inner
        return None, None, gf, gw


def _spconv_weight(weight: torch.Tensor, k: int) -> torch.Tensor:
    """[K**3, C_in, C_out] -> spconv [C_out, K, K, K, C_in]."""
    cin, cout = weight.shape[1], weight.shape[2]
    return weight.reshape(k, k, k, cin, cout).permute(4, 0, 1, 2, 3).contiguous()


class SpconvBackend(Backend):
    """spconv 2.x adapter (see the module docstring)."""

    name = "spconv"

    def available(self) -> bool:
        return importable("spconv.pytorch")

    def why_unavailable(self) -> str:
        return (
            "backend 'spconv' needs spconv 2.x (pip install 'fastai-sparse[spconv]', or the "
            "spconv-cuXXX wheel matching your CUDA); import spconv.pytorch failed"
        )

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _torch():
        from .torch_backend import TorchBackend

        return TorchBackend()

    @staticmethod
    def _modules(key, factory):
        cache = SpconvBackend.__dict__.get("_module_cache")
        if cache is None:
            cache = {}
            SpconvBackend._module_cache = cache
        m = cache.get(key)
        if m is None:
            m = cache[key] = factory()
        return m

    @staticmethod
    def _algo(x: SparseTensor):
        import spconv.pytorch as spc

        return spc.ConvAlgo.Native

    @staticmethod
    def _extent(x: SparseTensor) -> int:
        """One spatial extent G (original units) for every level of this forward pass.

        Level ``s`` uses the spatial shape ``ceil(G / s)``; G is a multiple of 256 above
        the largest coordinate plus a margin, so every 2x2x2 stride-2 level is exact.
        """
        g = x.cache.get(("spconv", "extent"))
        if g is None:
            hi = int(x.coords[:, 1:].max()) if x.coords.shape[0] else 0
            g = ((hi + 1 + 2 * x.stride) // 256 + 1) * 256
            g = x.cache.set(("spconv", "extent"), g)
        return g

    def _level_tensor(self, x: SparseTensor, feats: torch.Tensor):
        """A SparseConvTensor for ``x``'s level (engine row order) with the shared indice dict."""
        import spconv.pytorch as spc

        cache = x.cache
        key = ("spconv", "indices", x.stride)
        idx = cache.get(key)
        if idx is None:
            idx = x.coords.int().clone()
            if x.stride != 1:
                idx[:, 1:] //= x.stride
            idx = cache.set(key, idx.contiguous())
        g = self._extent(x)
        shape = [-(-g // x.stride)] * 3
        idict = cache.get(("spconv", "indice_dict"))
        if idict is None:
            idict = cache.set(("spconv", "indice_dict"), {})
        t = spc.SparseConvTensor(feats, idx, shape, x.batch_size, indice_dict=idict)
        return t, idict

    @staticmethod
    def _remember(idict: dict, out) -> None:
        for k, v in out.indice_dict.items():
            idict.setdefault(k, v)

    # ------------------------------------------------------------------ convolutions
    def subm_conv(self, x: SparseTensor, weight: torch.Tensor, kernel_size: int) -> SparseTensor:
        import spconv.pytorch as spc

        cin, cout = weight.shape[1], weight.shape[2]
        key = f"fs-subm-{x.stride}-{kernel_size}"
        algo = self._algo(x)
        mod = self._modules(
            ("subm", cin, cout, kernel_size, str(algo)),
            lambda: spc.SubMConv3d(cin, cout, kernel_size, bias=False, indice_key="_", algo=algo),
        )

        def fn(f, w):
            t, idict = self._level_tensor(x, f)
            mod.indice_key = key
            out = torch.func.functional_call(mod, {"weight": _spconv_weight(w, kernel_size)}, (t,))
            self._remember(idict, out)
            return out.features

        feats = _Guarded.apply(fn, x.feats.device.type == "cpu", x.feats, weight)
        return x.replace(feats)

    def sparse_conv(
        self, x: SparseTensor, weight: torch.Tensor, kernel_size: int, stride: int
    ) -> SparseTensor:
        import spconv.pytorch as spc

        if kernel_size != stride:
            return self._torch().sparse_conv(x, weight, kernel_size, stride)
        cin, cout = weight.shape[1], weight.shape[2]
        dmap = x.cache.down_map(x.stride, kernel_size, stride)  # the engine's coarse order
        key = f"fs-down-{x.stride}-{kernel_size}-{stride}"
        algo = self._algo(x)
        mod = self._modules(
            ("down", cin, cout, kernel_size, stride, str(algo)),
            lambda: spc.SparseConv3d(cin, cout, kernel_size, stride, bias=False, indice_key="_", algo=algo),
        )
        out_stride = x.stride * stride
        state = {}

        def fn(f, w):
            t, idict = self._level_tensor(x, f)
            # spconv rebuilds (never reuses) strided pairs; hide an earlier copy of this key
            t.indice_dict = {k: v for k, v in idict.items() if k != key}
            mod.indice_key = key
            out = torch.func.functional_call(mod, {"weight": _spconv_weight(w, kernel_size)}, (t,))
            self._remember(idict, out)
            state["out"] = out
            return out.features

        feats_sp = _Guarded.apply(fn, x.feats.device.type == "cpu", x.feats, weight)
        out = state["out"]
        perm_key = ("spconv", "perm", out_stride)
        perm = x.cache.get(perm_key)
        if perm is None:
            # rows of spconv's coarse sites in the engine's coarse order
            ours = x.cache.index(out_stride)
            found = ours.lookup(out.indices.long())
            if found.shape[0] != dmap.n_out or bool((found < 0).any()):
                raise ShapeError(
                    f"spconv produced {out.indices.shape[0]} coarse sites, the engine "
                    f"{dmap.n_out}: the two backends disagree on the strided output"
                )
            perm = x.cache.set(perm_key, found)
            x.cache.set(("spconv", "coarse_sp", out_stride), (out.indices, out.spatial_shape))
        feats = feats_sp.new_empty(feats_sp.shape).index_copy(0, perm, feats_sp)
        return x.derive(dmap.out_coords, feats, out_stride)

    def inverse_conv(
        self, x: SparseTensor, weight: torch.Tensor, kernel_size: int, stride: int
    ) -> SparseTensor:
        import spconv.pytorch as spc

        from .torch_backend import find_down_map

        if kernel_size != stride:
            return self._torch().inverse_conv(x, weight, kernel_size, stride)
        find_down_map(x, kernel_size, stride)  # same checks as the torch backend
        fine = x.stride // stride
        perm = x.cache.get(("spconv", "perm", x.stride))
        sp = x.cache.get(("spconv", "coarse_sp", x.stride))
        idict = x.cache.get(("spconv", "indice_dict"))
        key = f"fs-down-{fine}-{kernel_size}-{stride}"
        if perm is None or sp is None or idict is None or key not in idict:
            raise ShapeError(
                "spconv inverse convolution needs the matching strided convolution to run on "
                "the spconv backend in the same forward pass"
            )
        cin, cout = weight.shape[1], weight.shape[2]
        algo = self._algo(x)
        mod = self._modules(
            ("up", cin, cout, kernel_size, str(algo)),
            lambda: spc.SparseInverseConv3d(cin, cout, kernel_size, indice_key="_", bias=False, algo=algo),
        )
        indices, shape = sp

        def fn(f, w):
            t = spc.SparseConvTensor(f.index_select(0, perm), indices, shape, x.batch_size, indice_dict=idict)
            mod.indice_key = key
            out = torch.func.functional_call(mod, {"weight": _spconv_weight(w, kernel_size)}, (t,))
            return out.features

        feats = _Guarded.apply(fn, x.feats.device.type == "cpu", x.feats, weight)
        coords = x.cache.get(("coords", fine))
        return x.derive(coords, feats, fine)
