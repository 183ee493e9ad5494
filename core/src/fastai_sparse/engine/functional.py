"""Functional sparse ops of the built-in torch backend (gather-GEMM-scatter with autograd).

Weight layout everywhere: ``weight`` float [K**3, C_in, C_out] in the offset order of
:mod:`fastai_sparse.engine.kernel_map`.

Two compute kernels do all the work:

* :func:`gather_conv` (output-stationary): ``out[j] = sum_k x[nbr[k, j]] @ W[k]`` over a
  neighbour table with a zero padding row for absent neighbours. Rows are processed in
  chunks that stay in cache; each (chunk, offset) is a contiguous ``index_select`` followed
  by an in-place ``addmm_`` into the output chunk, so nothing is scattered and no
  [pairs, C] intermediate is ever materialised. (chunk, offset) blocks without any active
  pair are skipped.
* :func:`scatter_conv` (input-stationary): per offset ``out[o_k] += x[i_k] @ W[k]``, used for
  the input gradient of strided convolutions and the forward of inverse convolutions, where
  every fine row belongs to exactly one (coarse row, offset) pair and the scatter is a plain
  ``index_copy_``.

Row order: maps index the fine side in sorted positions (see
:mod:`fastai_sparse.engine.kernel_map`). When a map carries a ``perm``, the caller's
fine-side features are gathered into position order once on entry (``kmap.to_positions``)
and fine-side results are returned in the caller's order (``kmap.to_caller``); coarse rows
need neither. The arithmetic then is exactly that of sorted input, so a permuted input
gives bitwise the permuted output of the sorted one.
"""

from __future__ import annotations

import torch

from ..errors import ShapeError
from .kernel_map import DownMap, SubmanifoldMap

__all__ = [
    "down_conv",
    "gather_conv",
    "global_avg_pool_feats",
    "global_max_pool_feats",
    "inverse_conv",
    "scatter_conv",
    "subm_conv",
]

#: Bytes of one gathered block per intra-op thread; a chunk of outputs plus one gathered
#: block stay in L2 while all offsets are accumulated into it.
CHUNK_BYTES_PER_THREAD = 1 << 19


def chunk_rows(channels: int) -> int:
    """Rows per chunk for blocks of ``channels`` float32 columns (scaled by torch threads)."""
    per_thread = CHUNK_BYTES_PER_THREAD // (4 * max(1, channels))
    return max(1024, per_thread * max(1, torch.get_num_threads()))


def _chunk_counts(nbr: torch.Tensor, n_in: int, chunk: int, cache: dict) -> list[list[bool]]:
    """For each row chunk, which offsets have at least one active pair (cached per map)."""
    key = ("chunk_active", chunk)
    act = cache.get(key)
    if act is None:
        n = nbr.shape[1]
        act = []
        valid = nbr < n_in
        for a in range(0, n, chunk):
            act.append(valid[:, a : a + chunk].any(dim=1).tolist())
        cache[key] = act
    return act


def gather_conv(
    x: torch.Tensor,
    nbr: torch.Tensor,
    weight: torch.Tensor,
    extra: dict,
    identity_offset: int | None = None,
    chunk: int | None = None,
) -> torch.Tensor:
    """Output-stationary sparse convolution.

    Args:
        x: float [N_in, C_in] input features.
        nbr: int64 [K, N_out] neighbour table, ``N_in`` marks an absent neighbour.
        weight: float [K, C_in, C_out].
        extra: per-map dict for cached chunk statistics.
        identity_offset: offset ``k`` with ``nbr[k] == arange`` (submanifold centre): its
            rows are used in place, without a gather.

    Returns:
        float [N_out, C_out].
    """
    vol, n_out = nbr.shape
    n_in, c_in = x.shape
    c_out = weight.shape[2]
    chunk = chunk or chunk_rows(max(c_in, c_out))
    x_pad = torch.cat([x, x.new_zeros(1, c_in)])
    out = x.new_empty((n_out, c_out))
    if n_out == 0:
        return out
    active = _chunk_counts(nbr, n_in, chunk, extra)
    buf = x.new_empty((min(chunk, n_out), c_in))
    for ci, a in enumerate(range(0, n_out, chunk)):
        b = min(n_out, a + chunk)
        o = out[a:b]
        g = buf[: b - a]
        first = True
        if identity_offset is not None:
            torch.mm(x[a:b], weight[identity_offset], out=o)
            first = False
        for k in range(vol):
            if k == identity_offset or not active[ci][k]:
                continue
            torch.index_select(x_pad, 0, nbr[k, a:b], out=g)
            if first:
                torch.mm(g, weight[k], out=o)
                first = False
            else:
                o.addmm_(g, weight[k])
        if first:
            o.zero_()
    return out


def gather_weight_grad(
    x: torch.Tensor,
    nbr: torch.Tensor,
    grad_out: torch.Tensor,
    extra: dict,
    identity_offset: int | None = None,
    chunk: int | None = None,
) -> torch.Tensor:
    """``dW[k] = sum_j x[nbr[k, j]]^T grad_out[j]``: float [K, C_in, C_out]."""
    vol, n_out = nbr.shape
    n_in, c_in = x.shape
    c_out = grad_out.shape[1]
    chunk = chunk or chunk_rows(max(c_in, c_out))
    gw = x.new_zeros((vol, c_in, c_out))
    if n_out == 0:
        return gw
    x_pad = torch.cat([x, x.new_zeros(1, c_in)])
    active = _chunk_counts(nbr, n_in, chunk, extra)
    buf = x.new_empty((min(chunk, n_out), c_in))
    for ci, a in enumerate(range(0, n_out, chunk)):
        b = min(n_out, a + chunk)
        go = grad_out[a:b]
        g = buf[: b - a]
        for k in range(vol):
            if k == identity_offset:
                gw[k].addmm_(x[a:b].t(), go)
                continue
            if not active[ci][k]:
                continue
            torch.index_select(x_pad, 0, nbr[k, a:b], out=g)
            gw[k].addmm_(g.t(), go)
    return gw


def scatter_conv(
    x: torch.Tensor, kmap: DownMap, weight: torch.Tensor, n_out: int, coarse_to_fine: bool
) -> torch.Tensor:
    """Per-offset scatter convolution over the pairs of a down map.

    ``coarse_to_fine``: ``out[in_k] += x[out_k] @ weight[k]`` (inverse convolution, or the
    input gradient of a strided convolution with transposed weights), ``x`` coarse rows,
    ``out`` in the caller's fine order; else ``out[out_k] += x[in_k] @ weight[k]`` with
    ``x`` in fine positions.

    When ``kernel_size == stride`` and ``coarse_to_fine``, every fine row has exactly one
    (coarse row, offset) slot: one GEMM ``x @ [W_0 | W_1 | ...]`` and one row gather.
    """
    c_out = weight.shape[2]
    if coarse_to_fine and kmap.fine_slot is not None:
        wcat = weight.permute(1, 0, 2).reshape(weight.shape[1], -1)
        y = torch.mm(x, wcat).view(-1, c_out)
        return y.index_select(0, kmap.fine_slot_caller)
    out = x.new_zeros((n_out, c_out))
    for k in range(kmap.volume):
        i, o = kmap.group(k)
        if i.numel() == 0:
            continue
        src, dst = (o, i) if coarse_to_fine else (i, o)
        out.index_add_(0, dst, torch.mm(x.index_select(0, src), weight[k]))
    return kmap.to_caller(out) if coarse_to_fine else out


def subm_backward(
    x: torch.Tensor,
    weight: torch.Tensor,
    grad_out: torch.Tensor,
    kmap: SubmanifoldMap,
    need_x: bool,
    need_w: bool,
    chunk: int | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Both gradients of a submanifold convolution from ONE gather per (chunk, offset).

    With ``k'`` the mirror of offset ``k``, rows ``i`` of a chunk and
    ``B = grad_out_pad[nbr[k', i]]`` (the symmetric map):
    ``grad_x[i] += B @ W[k]^T`` and ``grad_W[k] += x[i]^T @ B``.
    """
    vol, n = kmap.nbr.shape
    c_in, c_out = weight.shape[1], weight.shape[2]
    chunk = chunk or chunk_rows(max(c_in, c_out))
    centre = vol // 2
    nbr = kmap.nbr
    wt = weight.transpose(1, 2)
    gx = x.new_empty((n, c_in)) if need_x else None
    gw = x.new_zeros((vol, c_in, c_out)) if need_w else None
    if n == 0:
        return (gx.zero_() if need_x else None), gw
    g_pad = torch.cat([grad_out, grad_out.new_zeros(1, c_out)])
    active = _chunk_counts(nbr, n, chunk, kmap.extra)
    buf = x.new_empty((min(chunk, n), c_out))
    for ci, a in enumerate(range(0, n, chunk)):
        b = min(n, a + chunk)
        xa = x[a:b]
        ga = grad_out[a:b]
        if need_x:
            o = gx[a:b]
            torch.mm(ga, wt[centre], out=o)
        if need_w:
            gw[centre].addmm_(xa.t(), ga)
        g = buf[: b - a]
        for k in range(vol):
            km = vol - 1 - k
            if k == centre or not active[ci][km]:
                continue
            torch.index_select(g_pad, 0, nbr[km, a:b], out=g)
            if need_x:
                o.addmm_(g, wt[k])
            if need_w:
                gw[k].addmm_(xa.t(), g)
    return gx, gw


class _SubMConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, kmap: SubmanifoldMap):
        ctx.kmap = kmap
        xs = kmap.to_positions(x)  # saved in position order: the backward needs no regather
        ctx.save_for_backward(xs, weight)
        centre = kmap.volume // 2
        return kmap.to_caller(gather_conv(xs, kmap.nbr, weight, kmap.extra, identity_offset=centre))

    @staticmethod
    def backward(ctx, grad_out):
        xs, weight = ctx.saved_tensors
        kmap = ctx.kmap
        gx, gw = subm_backward(
            xs,
            weight,
            kmap.to_positions(grad_out.contiguous()),
            kmap,
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
        )
        return (None if gx is None else kmap.to_caller(gx)), gw, None


class _DownConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, kmap: DownMap):
        ctx.kmap = kmap
        xs = kmap.to_positions(x)
        ctx.save_for_backward(xs, weight)
        return gather_conv(xs, kmap.nbr, weight, kmap.extra)

    @staticmethod
    def backward(ctx, grad_out):
        xs, weight = ctx.saved_tensors
        kmap = ctx.kmap
        grad_out = grad_out.contiguous()
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = scatter_conv(grad_out, kmap, weight.transpose(1, 2), kmap.n_in, True)
        if ctx.needs_input_grad[1]:
            gw = gather_weight_grad(xs, kmap.nbr, grad_out, kmap.extra)
        return gx, gw, None


class _InverseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, kmap: DownMap):
        ctx.kmap = kmap
        ctx.save_for_backward(x, weight)
        return scatter_conv(x, kmap, weight, kmap.n_in, True)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        kmap = ctx.kmap
        gs = kmap.to_positions(grad_out.contiguous())
        gx = gw = None
        if ctx.needs_input_grad[0]:
            wt = weight.transpose(1, 2).contiguous()
            gx = gather_conv(gs, kmap.nbr, wt, kmap.extra)
        if ctx.needs_input_grad[1]:
            # dW[k] = sum_o x[o]^T g[nbr[k, o]]
            gw = gather_weight_grad(gs, kmap.nbr, x, kmap.extra).transpose(1, 2)
        return gx, gw, None


def _check_weight(x: torch.Tensor, weight: torch.Tensor, vol: int) -> None:
    if weight.dim() != 3 or weight.shape[0] != vol or weight.shape[1] != x.shape[1]:
        raise ShapeError(f"weight {list(weight.shape)} does not fit [K**3={vol}, C_in={x.shape[1]}, C_out]")


def subm_conv(x: torch.Tensor, weight: torch.Tensor, kmap: SubmanifoldMap) -> torch.Tensor:
    """Submanifold convolution of features ``x`` float [M, C_in] -> float [M, C_out]."""
    _check_weight(x, weight, kmap.volume)
    return _SubMConv.apply(x.contiguous(), weight.contiguous(), kmap)


def down_conv(x: torch.Tensor, weight: torch.Tensor, kmap: DownMap) -> torch.Tensor:
    """Strided convolution: float [M_fine, C_in] -> float [M_coarse, C_out]."""
    _check_weight(x, weight, kmap.volume)
    return _DownConv.apply(x.contiguous(), weight.contiguous(), kmap)


def inverse_conv(x: torch.Tensor, weight: torch.Tensor, kmap: DownMap) -> torch.Tensor:
    """Transposed convolution over a down map: float [M_coarse, C_in] -> [M_fine, C_out]."""
    _check_weight(x, weight, kmap.volume)
    return _InverseConv.apply(x.contiguous(), weight.contiguous(), kmap)


def global_avg_pool_feats(feats: torch.Tensor, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mean of ``feats`` [M, C] per sample (``batch`` int [M]) -> [B, C]; 0 for empty samples."""
    b = batch.long()
    s = feats.new_zeros((batch_size, feats.shape[1])).index_add_(0, b, feats)
    n = torch.bincount(b, minlength=batch_size)[:batch_size].clamp_(min=1).to(feats.dtype)
    return s / n[:, None]


def global_max_pool_feats(feats: torch.Tensor, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Max of ``feats`` [M, C] per sample -> [B, C]; 0 for empty samples."""
    b = batch.long()[:, None].expand_as(feats)
    out = feats.new_zeros((batch_size, feats.shape[1]))
    return out.scatter_reduce(0, b, feats, reduce="amax", include_self=False)
