"""Functional sparse ops of the built-in torch backend (gather-GEMM-scatter with autograd).

Weight layout everywhere: ``weight`` float [K**3, C_in, C_out] in the offset order of
:mod:`fastai_sparse.engine.kernel_map`.

Two compute kernels do all the work:

* :func:`gather_mm` (output-stationary im2col): ``out[j] = sum_k x[nbr_t[j, k]] @ W[k]``
  over a neighbour table with a zero padding row for absent neighbours. Outputs are
  processed in blocks small enough for L2: one ``index_select`` gathers a block's whole
  im2col matrix [rows, K**3 * C_in] and ONE ``mm`` with the stacked weights
  [K**3 * C_in, C_out] writes the block's outputs, so each block costs two torch calls
  whatever the kernel volume (27 offsets used to cost 54 calls), nothing is scattered and no
  [pairs, C] intermediate is ever materialised. :func:`gather_mm_wgrad` is the weight
  gradient over the same gathered blocks, and :func:`subm_backward` computes both gradients
  of a submanifold convolution from one gather per block.
* :func:`scatter_conv` (input-stationary): used for the input gradient of strided
  convolutions and the forward of inverse convolutions, where every fine row belongs to
  exactly one (coarse row, offset) pair: one GEMM ``x @ [W_0 | W_1 | ...]`` and one row
  gather.

Absent neighbours: the padding row is gathered (a cached zero row, nearly free) and
multiplied. Over a full table that is K**3 / active-pairs, 1.5x the useful FLOPs on the
200k-voxel benchmark room and 2-5x on sparse scans and the demo's rooms. Submanifold
convolutions therefore use the map's :class:`~fastai_sparse.engine.kernel_map.PlaneGroups`
when they save 10% or more: rows grouped by the faces of the kernel cube in which they have
no neighbour at all (a floor one voxel thick has none above or below), each group's table
keeping only the other offsets, so every group is still one wide GEMM per block. That cuts
the multiplications to 1.12x the useful ones on the benchmark room (2.96x from 5.4x on the
demo's finest level) for one extra row gather of the output (and two in the backward).
Packing every active pair instead was measured slower in pure PyTorch: a packed block needs a
scatter (``index_add_``, 3x the cost of a gather per row) or a gather-sum plus a row
reorder; grouping rows by their full neighbour pattern (1.1x the useful FLOPs) gave dozens
of small GEMMs of varying widths whose call overhead ate the saving, and dropping the
offsets absent from a whole block kept 97% of them (surfaces two voxels thick fill every
offset somewhere in a block). What is left is spread thin: within a group a kept offset has a
neighbour in 89% of the rows on average and in under half of them for 1 of the 270 (group,
offset) pairs of the two benchmark rooms (135 each), so leaving an offset out of the wide GEMM and
multiplying its active rows in a per-offset GEMM of its own trades a pass at the im2col speed
for one at the slower per-offset speed plus a gather and a scatter: on the benchmark room the
best such split (8 offsets kept by under 70% of their group's rows) would cut the im2col
entries from 1.12x to 1.0x of the useful pairs but move 8% of them to per-offset GEMMs, an
estimated saving under 3% before those gathers and scatters (not built); sorting each
group's rows by their full pattern and keeping only the offsets present in a block brings
1.12x down to 1.06-1.10x, at the price of blocks scattered over space. Skipping the rest
would need a fused gather-GEMM kernel that masks single (row, offset) pairs, which torch does
not offer. The benchmark reports useful FLOP/s: the
grouped convolution, padding included, runs at 0.9-1.1x the time of per-offset GEMMs over
exactly the useful pairs.

Reduced precision (``torch.autocast`` with bfloat16 or float16, see
:mod:`fastai_sparse.precision`): the convolutions compute in the autocast dtype when autocast
is on for the input's device (:func:`compute_dtype`), else in the input's dtype. Gathers and
index tables are exact in any dtype; every GEMM accumulates its dot products in float32
(oneDNN and cuBLAS do for bfloat16 and float16 inputs); sums ACROSS blocks or offsets (the
weight gradients, the scatter-adds of :func:`scatter_conv`, the global average pool) go into a
float32 accumulator, each block's product rounded once to the reduced dtype. Weight gradients
come back in the weight's own dtype (float32 master weights stay float32).

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
from .kernel_map import DownMap, PlaneGroups, SubmanifoldMap

__all__ = [
    "compute_dtype",
    "down_conv",
    "gather_mm",
    "gather_mm_backward",
    "gather_mm_wgrad",
    "global_avg_pool_feats",
    "global_max_pool_feats",
    "grouped_subm_backward",
    "grouped_subm_conv",
    "inverse_conv",
    "positions_padded",
    "scatter_conv",
    "subm_backward",
    "subm_conv",
]

#: Bytes of one gathered im2col block per intra-op thread: the block and its GEMM's
#: operands stay in L2 (256 rows of a 3x3x3 kernel over 32 channels).
IM2COL_BYTES_PER_THREAD = 1 << 20


_REDUCED = (torch.bfloat16, torch.float16)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` computes in: the autocast dtype when autocast is on for
    ``x``'s device type, else ``x``'s own dtype."""
    dev = x.device.type
    if x.is_floating_point() and torch.amp.is_autocast_available(dev) and torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return x.dtype


def accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for the reduced dtypes (bfloat16, float16), else ``dtype`` itself."""
    return torch.float32 if dtype in _REDUCED else dtype


def _addmm_(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``acc += a @ b``; a float32 ``acc`` takes a reduced-precision product rounded once."""
    if acc.dtype == a.dtype:
        acc.addmm_(a, b)
    else:
        acc.add_(torch.mm(a, b))


def block_rows(row_bytes: int) -> int:
    """Output rows per im2col block whose gathered rows take ``row_bytes`` each."""
    per_thread = max(16, IM2COL_BYTES_PER_THREAD // max(1, row_bytes))
    return per_thread * max(1, torch.get_num_threads())


def _padded(x: torch.Tensor) -> torch.Tensor:
    """``x`` with one zero row appended (the row absent neighbours point at)."""
    return torch.cat([x, x.new_zeros(1, x.shape[1])])


def positions_padded(kmap: SubmanifoldMap | DownMap, x: torch.Tensor) -> torch.Tensor:
    """The caller's fine-side rows ``x`` [N, C] in the map's positions, plus a zero row:
    [N + 1, C] in one pass (a gather when the map reorders, else a copy)."""
    n, c = x.shape
    out = x.new_empty((n + 1, c))
    if kmap.perm is None:
        out[:n].copy_(x)
    else:
        torch.index_select(x, 0, kmap.perm, out=out[:n])
    out[n].zero_()
    return out


def gather_mm(
    src: torch.Tensor,
    nbr_t: torch.Tensor,
    weight: torch.Tensor,
    chunk: int | None = None,
    padded: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Output-stationary sparse convolution (im2col blocks).

    Args:
        src: float [N_in, C_in] input features (in the table's positions).
        nbr_t: int [N_out, K] neighbour table, ``N_in`` marks an absent neighbour.
        weight: float [K, C_in, C_out].
        chunk: output rows per block (default :func:`block_rows`).
        padded: ``src`` already ends with the zero row (then [N_in + 1, C_in]).
        out: float [N_out, C_out] to write into (default: a new tensor).

    Returns:
        float [N_out, C_out] with ``out[j] = sum_k src[nbr_t[j, k]] @ weight[k]``.
    """
    n_out, vol = nbr_t.shape
    c_in, c_out = src.shape[1], weight.shape[2]
    out = src.new_empty((n_out, c_out)) if out is None else out
    if n_out == 0:
        return out
    w = weight.reshape(vol * c_in, c_out)
    src_pad = src if padded else _padded(src)
    chunk = chunk or block_rows(vol * c_in * src.element_size())
    buf = src.new_empty((min(chunk, n_out) * vol, c_in))
    for a in range(0, n_out, chunk):
        b = min(n_out, a + chunk)
        g = buf[: (b - a) * vol]
        torch.index_select(src_pad, 0, nbr_t[a:b].reshape(-1), out=g)
        torch.mm(g.view(b - a, vol * c_in), w, out=out[a:b])
    return out


def gather_mm_wgrad(
    src: torch.Tensor,
    nbr_t: torch.Tensor,
    other: torch.Tensor,
    chunk: int | None = None,
    padded: bool = False,
) -> torch.Tensor:
    """``dW[k] = sum_j src[nbr_t[j, k]]^T other[j]``: float [K, C_src, C_other]
    (``padded`` as in :func:`gather_mm`)."""
    n_out, vol = nbr_t.shape
    c_src, c_other = src.shape[1], other.shape[1]
    acc = src.new_zeros((vol * c_src, c_other), dtype=accumulator_dtype(src.dtype))
    if n_out == 0:
        return acc.view(vol, c_src, c_other)
    src_pad = src if padded else _padded(src)
    chunk = chunk or block_rows(vol * c_src * src.element_size())
    buf = src.new_empty((min(chunk, n_out) * vol, c_src))
    for a in range(0, n_out, chunk):
        b = min(n_out, a + chunk)
        g = buf[: (b - a) * vol]
        torch.index_select(src_pad, 0, nbr_t[a:b].reshape(-1), out=g)
        _addmm_(acc, g.view(b - a, vol * c_src).t(), other[a:b])
    return acc.view(vol, c_src, c_other)


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
    out = x.new_zeros((n_out, c_out), dtype=accumulator_dtype(x.dtype))
    for k in range(kmap.volume):
        i, o = kmap.group(k)
        if i.numel() == 0:
            continue
        src, dst = (o, i) if coarse_to_fine else (i, o)
        out.index_add_(0, dst, torch.mm(x.index_select(0, src), weight[k]).to(out.dtype))
    out = out.to(x.dtype)
    return kmap.to_caller(out) if coarse_to_fine else out


def gather_mm_backward(
    src: torch.Tensor,
    nbr_t: torch.Tensor,
    weight: torch.Tensor,
    other: torch.Tensor,
    need_out: bool,
    need_w: bool,
    chunk: int | None = None,
    padded: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """:func:`gather_mm` and :func:`gather_mm_wgrad` from ONE gather per block:
    ``(gather_mm(src, nbr_t, weight), gather_mm_wgrad(src, nbr_t, other))``, either None
    when not needed (the input and weight gradients of an inverse convolution)."""
    n_out, vol = nbr_t.shape
    c_src = src.shape[1]
    out = src.new_empty((n_out, weight.shape[2])) if need_out else None
    acc = src.new_zeros((vol * c_src, other.shape[1]), dtype=accumulator_dtype(src.dtype)) if need_w else None
    if n_out > 0 and (need_out or need_w):
        w = weight.reshape(vol * c_src, -1) if need_out else None
        src_pad = src if padded else _padded(src)
        chunk = chunk or block_rows(vol * c_src * src.element_size())
        buf = src.new_empty((min(chunk, n_out) * vol, c_src))
        for a in range(0, n_out, chunk):
            b = min(n_out, a + chunk)
            g = buf[: (b - a) * vol]
            torch.index_select(src_pad, 0, nbr_t[a:b].reshape(-1), out=g)
            g = g.view(b - a, vol * c_src)
            if need_out:
                torch.mm(g, w, out=out[a:b])
            if need_w:
                _addmm_(acc, g.t(), other[a:b])
    return out, (acc.view(vol, c_src, -1) if need_w else None)


def subm_backward(
    x: torch.Tensor,
    weight: torch.Tensor,
    grad_out: torch.Tensor,
    kmap: SubmanifoldMap,
    need_x: bool,
    need_w: bool,
    chunk: int | None = None,
    padded: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Both gradients of a submanifold convolution from ONE gather per block.

    ``x`` and ``grad_out`` in the map's positions (``padded``: ``grad_out`` already ends
    with a zero row; ``x`` may have one too, only its first N rows are read). Column ``k`` of the gathered block of
    rows ``i`` holds ``grad_out[nbr[k, i]]``; by the map's symmetry it pairs with the
    mirrored offset ``k' = K**3 - 1 - k``: ``grad_x[i] += grad_out[nbr[k, i]] @ W[k']^T``
    and ``grad_W[k'] += x[i]^T grad_out[nbr[k, i]]``.
    """
    nbr_t = kmap.nbr_t
    n, vol = nbr_t.shape
    c_in, c_out = weight.shape[1], weight.shape[2]
    gx = x.new_empty((n, c_in)) if need_x else None
    acc = x.new_zeros((c_in, vol * c_out), dtype=accumulator_dtype(x.dtype)) if need_w else None
    if n > 0 and (need_x or need_w):
        g_pad = grad_out if padded else _padded(grad_out)
        _subm_backward_blocks(x, g_pad, nbr_t, _mirrored(weight) if need_x else None, gx, acc, chunk)
    return gx, (_mirrored_wgrad(acc, vol) if need_w else None)


def _mirrored(weight: torch.Tensor) -> torch.Tensor:
    """[K**3, C_out, C_in] whose block ``k`` is ``W[K**3 - 1 - k]^T`` (the input gradient's
    weight for column ``k`` of a submanifold table)."""
    return weight.flip(0).transpose(1, 2)


def _mirrored_wgrad(acc: torch.Tensor, vol: int) -> torch.Tensor:
    """The weight gradient [K**3, C_in, C_out] from the accumulator [C_in, K**3 * C_out] of
    table columns (column ``k`` belongs to offset ``K**3 - 1 - k``)."""
    c_in = acc.shape[0]
    return acc.view(c_in, vol, -1).permute(1, 0, 2).flip(0).contiguous()


def _subm_backward_blocks(
    x: torch.Tensor,
    g_pad: torch.Tensor,
    nbr_t: torch.Tensor,
    wm: torch.Tensor | None,
    gx: torch.Tensor | None,
    acc: torch.Tensor | None,
    chunk: int | None = None,
) -> None:
    """For every row ``j`` of the table ``nbr_t`` [n, w] (``x`` rows aligned with it):
    ``gx[j] = gather(g_pad, nbr_t[j]) @ wm`` (``wm`` [w, C_out, C_in], the mirrored weights
    of the table's columns) and ``acc += x[j]^T gather(g_pad, nbr_t[j])`` (``acc``
    [C_in, w * C_out]); either skipped when None."""
    n, w = nbr_t.shape
    c_out = g_pad.shape[1]
    wm = None if wm is None else wm.reshape(w * c_out, -1)
    chunk = chunk or block_rows(w * c_out * g_pad.element_size())
    buf = g_pad.new_empty((min(chunk, n) * w, c_out))
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        g = buf[: (b - a) * w]
        torch.index_select(g_pad, 0, nbr_t[a:b].reshape(-1), out=g)
        g = g.view(b - a, w * c_out)
        if gx is not None:
            torch.mm(g, wm, out=gx[a:b])
        if acc is not None:
            _addmm_(acc, x[a:b].t(), g)


def grouped_subm_conv(xs: torch.Tensor, weight: torch.Tensor, groups: PlaneGroups) -> torch.Tensor:
    """Submanifold convolution over a map's :class:`~fastai_sparse.engine.kernel_map.PlaneGroups`:
    ``xs`` [M + 1, C_in] in positions with the zero row; returns [M, C_out] in the caller's
    order. Each group multiplies only the offsets of its non-empty kernel faces."""
    y = xs.new_empty((groups.order.shape[0], weight.shape[2]))
    # as many rows per block as the full table would take: a block stays a compact piece of
    # space whose gathered rows are mostly in cache (a block sized by its narrower rows spans
    # more space and gathers slower)
    chunk = block_rows(weight.shape[0] * weight.shape[1] * xs.element_size())
    for start, end, cols, nbr_t in groups.groups:
        w = weight if cols.shape[0] == weight.shape[0] else weight.index_select(0, cols)
        gather_mm(xs, nbr_t, w, chunk=chunk, padded=True, out=y[start:end])
    return y.index_select(0, groups.caller_index)


def grouped_subm_backward(
    xs: torch.Tensor,
    weight: torch.Tensor,
    g_pad: torch.Tensor,
    groups: PlaneGroups,
    need_x: bool,
    need_w: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """:func:`subm_backward` over the map's plane groups: ``xs`` and ``g_pad`` in positions
    (``g_pad`` with the zero row); the input gradient comes back in the caller's order."""
    vol, c_in, c_out = weight.shape
    n = groups.order.shape[0]
    gx = xs.new_empty((n, c_in)) if need_x else None
    acc = xs.new_zeros((c_in, vol, c_out), dtype=accumulator_dtype(xs.dtype)) if need_w else None
    xg = xs.index_select(0, groups.order) if need_w else None  # x rows in group order
    wm = _mirrored(weight) if need_x else None
    chunk = block_rows(vol * c_out * xs.element_size())  # as in grouped_subm_conv
    for start, end, cols, nbr_t in groups.groups:
        full = cols.shape[0] == vol
        wm_g = None if wm is None else (wm if full else wm.index_select(0, cols))
        acc_g = None
        if acc is not None:
            acc_g = acc.view(c_in, vol * c_out) if full else acc.new_zeros((c_in, cols.shape[0] * c_out))
        _subm_backward_blocks(
            None if xg is None else xg[start:end],
            g_pad,
            nbr_t,
            wm_g,
            None if gx is None else gx[start:end],
            acc_g,
            chunk,
        )
        if acc is not None and not full:
            acc.index_add_(1, cols, acc_g.view(c_in, -1, c_out))
    gx = None if gx is None else gx.index_select(0, groups.caller_index)
    return gx, (_mirrored_wgrad(acc.view(c_in, -1), vol) if need_w else None)


def _operands(ctx, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ``weight`` in the compute dtype (:func:`compute_dtype`); the caller's dtypes are
    kept in ``ctx`` so the gradients go back in them."""
    ctx.dtypes = (x.dtype, weight.dtype)
    dt = compute_dtype(x)
    return x.to(dt), weight.to(dt)


def _grads(ctx, gx: torch.Tensor | None, gw: torch.Tensor | None) -> tuple:
    """Gradients in the dtypes of the forward's inputs (see :func:`_operands`)."""
    x_dtype, w_dtype = ctx.dtypes
    return (None if gx is None else gx.to(x_dtype)), (None if gw is None else gw.to(w_dtype))


class _SubMConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, kmap: SubmanifoldMap):
        ctx.kmap = kmap
        x, weight = _operands(ctx, x, weight)
        xs = positions_padded(kmap, x)  # saved as it is: the backward needs no regather
        ctx.save_for_backward(xs, weight)
        groups = kmap.plane_groups
        if groups is not None:
            return grouped_subm_conv(xs, weight, groups)
        return kmap.to_caller(gather_mm(xs, kmap.nbr_t, weight, padded=True))

    @staticmethod
    def backward(ctx, grad_out):
        xs, weight = ctx.saved_tensors
        kmap = ctx.kmap
        g_pad = positions_padded(kmap, grad_out.to(xs.dtype))
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        groups = kmap.plane_groups
        if groups is not None:
            gx, gw = grouped_subm_backward(xs, weight, g_pad, groups, need_x, need_w)
        else:
            gx, gw = subm_backward(xs, weight, g_pad, kmap, need_x, need_w, padded=True)
            gx = None if gx is None else kmap.to_caller(gx)
        gx, gw = _grads(ctx, gx, gw)
        return gx, gw, None


class _DownConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, kmap: DownMap):
        ctx.kmap = kmap
        x, weight = _operands(ctx, x, weight)
        xs = positions_padded(kmap, x)
        ctx.save_for_backward(xs, weight)
        return gather_mm(xs, kmap.nbr_t, weight, padded=True)

    @staticmethod
    def backward(ctx, grad_out):
        xs, weight = ctx.saved_tensors
        kmap = ctx.kmap
        grad_out = grad_out.to(xs.dtype).contiguous()
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = scatter_conv(grad_out, kmap, weight.transpose(1, 2), kmap.n_in, True)
        if ctx.needs_input_grad[1]:
            gw = gather_mm_wgrad(xs, kmap.nbr_t, grad_out, padded=True)
        return (*_grads(ctx, gx, gw), None)


class _InverseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, kmap: DownMap):
        ctx.kmap = kmap
        x, weight = _operands(ctx, x, weight)
        ctx.save_for_backward(x, weight)
        return scatter_conv(x, kmap, weight, kmap.n_in, True)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        kmap = ctx.kmap
        gs = positions_padded(kmap, grad_out.to(x.dtype))
        # gx[o] = sum_k g[nbr[k, o]] @ W[k]^T and dW[k]^T = sum_o g[nbr[k, o]]^T x[o]
        gx, gwt = gather_mm_backward(
            gs,
            kmap.nbr_t,
            weight.transpose(1, 2),
            x,
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
            padded=True,
        )
        return (*_grads(ctx, gx, None if gwt is None else gwt.transpose(1, 2)), None)


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
    """Mean of ``feats`` [M, C] per sample (``batch`` int [M]) -> [B, C]; 0 for empty samples
    (float32 for bfloat16 or float16 features: the sums are accumulated in float32)."""
    b = batch.long()
    acc = accumulator_dtype(feats.dtype)  # float32 sums for reduced-precision features
    s = feats.new_zeros((batch_size, feats.shape[1]), dtype=acc).index_add_(0, b, feats.to(acc))
    n = torch.bincount(b, minlength=batch_size)[:batch_size].clamp_(min=1).to(acc)
    return s / n[:, None]


def global_max_pool_feats(feats: torch.Tensor, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Max of ``feats`` [M, C] per sample -> [B, C]; 0 for empty samples."""
    b = batch.long()[:, None].expand_as(feats)
    out = feats.new_zeros((batch_size, feats.shape[1]))
    return out.scatter_reduce(0, b, feats, reduce="amax", include_self=False)
