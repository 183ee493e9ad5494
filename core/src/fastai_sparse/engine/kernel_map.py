"""Kernel maps: which input row feeds which output row through which kernel offset.

Coordinates are linearised into int64 keys ``((b * X + x) * Y + y) * Z + z`` (after
shifting by a padding so that neighbour queries never wrap). Lookups use a dense index grid
when the occupied bounding box is small compared with the number of points, sorted keys
plus ``torch.searchsorted`` otherwise. Everything here is pure PyTorch and runs on the
device of the coordinates.

Row order: the convolutions gather neighbour rows, which is fast only when spatial
neighbours are near each other in memory. Coordinates sorted by their key (the voxelizer's
and ``collate``'s output order) are used as they are. Any other order (a user's own
coordinates, several clouds concatenated) is reordered ONCE per coordinate set, when its
:class:`CoordIndex` is built: the index, and every map built on it, work in the sorted
"position" space, and carry ``perm`` (int64 [M], position -> the caller's row) so that the
convolutions gather the caller's features into sorted order on entry and restore the
caller's order on exit, only on the side the caller sees. Strided convolutions produce
sorted coarse levels, so only a level the caller built pays for this.

Offset order (the weight layout of every backend): for a kernel of size ``K`` the offset
index is ``k = (i * K + j) * K + l`` for offsets ``(i, j, l)`` along ``(x, y, z)``:

* submanifold convolution (odd ``K``): the offset is ``(i, j, l) - K // 2`` so
  ``out[p] += x[p + offset] @ W[k]``, exactly ``torch.nn.functional.conv3d`` with padding
  ``K // 2`` where ``dense_weight[o, c, i, j, l] == W[k, c, o]``;
* strided convolution: ``out[o] += x[o * stride + (i, j, l)] @ W[k]``, exactly ``conv3d``
  without padding;
* inverse (transposed) convolution: ``out[o * stride + (i, j, l)] += x[o] @ W[k]``, exactly
  ``conv_transpose3d`` where ``dense_weight[c, o, i, j, l] == W[k, c, o]``.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import torch

from ..errors import ShapeError

__all__ = [
    "MAX_KEY",
    "PLANE_GROUP_MIN_SAVING",
    "CoordIndex",
    "DownMap",
    "PlaneGroups",
    "SubmanifoldMap",
    "build_down_map",
    "build_plane_groups",
    "build_submanifold_map",
    "inverse_permutation",
]

#: Largest linearised key the engine accepts (keys are int64; keep headroom for offsets).
MAX_KEY = 2**62

#: Use a dense index grid when its size is at most this many cells per active site (plus
#: a fixed allowance); otherwise fall back to sorted keys and binary search.
_GRID_CELLS_PER_SITE = 64
_GRID_MIN_CELLS = 1 << 22
_GRID_MAX_CELLS = 1 << 28


def kernel_offset_list(kernel_size: int, centered: bool) -> list[tuple[int, int, int]]:
    """Offsets of a cubic kernel in weight order as Python ints (no tensor, so nothing is
    built on the default device and read back)."""
    r = range(-(kernel_size // 2), kernel_size - kernel_size // 2) if centered else range(kernel_size)
    return list(itertools.product(r, r, r))


def kernel_offsets(kernel_size: int, centered: bool, device: torch.device):
    """Offsets of a cubic kernel in weight order: int64 [K**3, 3] on ``device``."""
    return torch.tensor(kernel_offset_list(kernel_size, centered), dtype=torch.int64, device=device)


class CoordIndex:
    """Lookup structure over one set of coordinates (one stride level).

    ``level_coords``: int64 [M, 4] (batch, x, y, z) in per-level units (divided by the
    stride). ``pad`` is how far outside the occupied box a query may reach.

    Rows are held in key order: ``perm`` is None when ``level_coords`` already are sorted by
    key, else int64 [M] with ``perm[p]`` the caller's row at sorted position ``p``
    (``reorder=False`` keeps the caller's order). ``keys`` are in position order;
    :meth:`positions` answers in positions, :meth:`lookup` / :meth:`lookup_keys` in the
    caller's rows.
    """

    def __init__(
        self,
        level_coords: torch.Tensor,
        pad: int = 1,
        batch_size: int | None = None,
        reorder: bool = True,
    ):
        c = level_coords
        self.n = int(c.shape[0])
        self.pad = int(pad)
        self.device = c.device
        # the bounding box: 4 integers read back (one sync on a GPU), never a tensor copy
        hi = [0, 0, 0, 0] if self.n == 0 else c.max(dim=0).values.tolist()
        nb = int(hi[0]) + 1 if batch_size is None else max(int(batch_size), int(hi[0]) + 1)
        ext = [int(v) + 1 + 2 * self.pad for v in hi[1:]]
        total = nb * ext[0] * ext[1] * ext[2]
        if total >= MAX_KEY:
            raise ShapeError(
                f"coordinates too large for the int64 linearisation: bounding box "
                f"{ext} x {nb} batches has {total} cells (limit {MAX_KEY})"
            )
        self.extent = ext
        self.num_batches = nb
        self.total = total
        self.strides = (ext[0] * ext[1] * ext[2], ext[1] * ext[2], ext[2], 1)
        keys = self.linearise(c)
        self.perm: torch.Tensor | None = None
        if reorder and self.n > 1 and not bool((keys[1:] >= keys[:-1]).all()):
            keys, self.perm = torch.sort(keys, stable=True)
        self.keys = keys
        self._inv: torch.Tensor | None = None
        self.grid: torch.Tensor | None = None
        self.sorted_keys: torch.Tensor | None = None
        self.sorted_rows: torch.Tensor | None = None
        if total <= max(_GRID_MIN_CELLS, _GRID_CELLS_PER_SITE * self.n) and total <= _GRID_MAX_CELLS:
            # dense grid of rows; an empty cell holds n (the zero padding row of the convs)
            idt = torch.int32 if self.n < 2**31 - 1 else torch.int64
            grid = torch.full((total,), self.n, dtype=idt, device=self.device)
            grid[self.keys] = torch.arange(self.n, dtype=idt, device=self.device)
            self.grid = grid
        elif self.perm is not None:
            self.sorted_keys, self.sorted_rows = self.keys, None  # positions == searchsorted
        else:
            self.sorted_keys, self.sorted_rows = torch.sort(self.keys)
            if bool((self.sorted_rows[1:] > self.sorted_rows[:-1]).all()):
                self.sorted_rows = None  # already in key order: positions are rows

    @property
    def inv(self) -> torch.Tensor | None:
        """int64 [M]: the sorted position of every caller row (None when not reordered)."""
        if self.perm is not None and self._inv is None:
            self._inv = inverse_permutation(self.perm)
        return self._inv

    def linearise(self, c: torch.Tensor) -> torch.Tensor:
        """int64 keys of per-level coords ``c`` [N, 4]; caller guarantees they are in range."""
        s = self.strides
        p = self.pad
        mult = torch.tensor(s, dtype=torch.int64, device=c.device)
        return (c * mult).sum(dim=1) + p * (s[1] + s[2] + s[3])

    def delta(self, offset: tuple[int, int, int]) -> int:
        """Key difference of a spatial offset (valid while ``|offset| <= pad``)."""
        return offset[0] * self.strides[1] + offset[1] * self.strides[2] + offset[2]

    def positions(self, q: torch.Tensor) -> torch.Tensor:
        """Sorted positions of the keys ``q`` (any shape, in range ``[0, total)``); -1 where
        absent. Returns int64 of the shape of ``q``."""
        if self.grid is not None:
            rows = self.grid[q].long()
            return rows.masked_fill_(rows == self.n, -1)
        if self.n == 0:
            return torch.full_like(q, -1)
        flat = q.reshape(-1)
        pos = torch.searchsorted(self.sorted_keys, flat)
        pos.clamp_(max=self.n - 1)
        found = self.sorted_keys[pos] == flat
        if self.sorted_rows is not None:
            pos = self.sorted_rows[pos]
        rows = torch.where(found, pos, torch.full_like(pos, -1))
        return rows.reshape(q.shape)

    def lookup_keys(self, q: torch.Tensor) -> torch.Tensor:
        """The caller's rows of the keys ``q`` (any shape, in range ``[0, total)``); -1 where
        absent. Returns int64 of the shape of ``q``."""
        pos = self.positions(q)
        if self.perm is None:
            return pos
        return torch.where(pos >= 0, self.perm[pos.clamp(min=0)], pos)

    def lookup(self, c: torch.Tensor) -> torch.Tensor:
        """Rows of per-level coords ``c`` [N, 4] (any values); int64 [N], -1 where absent."""
        p = self.pad
        ok = (c[:, 0] >= 0) & (c[:, 0] < self.num_batches)
        for d in range(3):
            ok &= (c[:, d + 1] >= -p) & (c[:, d + 1] < self.extent[d] - p)
        keys = self.linearise(torch.where(ok[:, None], c, torch.zeros_like(c)))
        rows = self.lookup_keys(keys)
        return torch.where(ok, rows, torch.full_like(rows, -1))


def inverse_permutation(perm: torch.Tensor) -> torch.Tensor:
    """int64 ``inv`` with ``inv[perm[p]] == p``."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.shape[0], dtype=perm.dtype, device=perm.device)
    return inv


class _Ordered:
    """Row order of a map's fine side: ``perm`` (position -> caller row) or None."""

    perm: torch.Tensor | None
    extra: dict

    @property
    def inv(self) -> torch.Tensor | None:
        """int64 [M]: the position of every caller row (None when not reordered)."""
        if self.perm is None:
            return None
        inv = self.extra.get("inv")
        if inv is None:
            inv = self.extra["inv"] = inverse_permutation(self.perm)
        return inv

    def to_positions(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of ``x`` (the caller's order) in position order."""
        return x if self.perm is None else x.index_select(0, self.perm)

    def to_caller(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of ``x`` (position order) in the caller's order."""
        return x if self.perm is None else x.index_select(0, self.inv)


@dataclass
class SubmanifoldMap(_Ordered):
    """Neighbour table of a submanifold convolution (output sites == input sites).

    ``nbr_t``: int32 (int64 beyond 2**31 sites) [M, K**3]; ``nbr_t[j, k]`` is the input
    position feeding output position ``j`` through offset ``k``, or ``M`` (a zero padding
    row) when that neighbour is absent (one row per output: a gather of ``nbr_t[a:b]`` is
    the im2col block of outputs ``a:b``). ``nbr`` is the [K**3, M] view. Positions are the
    caller's rows when ``perm`` is None, else ``perm[p]`` is the caller's row at position
    ``p`` (see the module docstring). The map is symmetric: ``nbr[k, j] == i`` iff
    ``nbr[K**3 - 1 - k, i] == j``, so the input gradient reuses it with mirrored,
    transposed weights.
    """

    kernel_size: int
    n: int
    nbr_t: torch.Tensor
    extra: dict = field(default_factory=dict)
    perm: torch.Tensor | None = None

    @property
    def volume(self) -> int:
        return self.kernel_size**3

    @property
    def nbr(self) -> torch.Tensor:
        """[K**3, M] view of the table (offset-major)."""
        return self.nbr_t.t()

    @property
    def counts(self) -> torch.Tensor:
        """int64 [K**3]: active pairs per offset (computed on first use)."""
        c = self.extra.get("counts")
        if c is None:
            c = self.extra["counts"] = (self.nbr_t < self.n).sum(dim=0)
        return c

    @property
    def plane_groups(self) -> PlaneGroups | None:
        """The rows grouped by the kernel faces they have no neighbour in (built on first use,
        see :func:`build_plane_groups`), or None when that would save under
        :data:`PLANE_GROUP_MIN_SAVING` of the multiplications."""
        if "plane_groups" not in self.extra:
            self.extra["plane_groups"] = build_plane_groups(self)
        return self.extra["plane_groups"]


#: Group a submanifold map's rows by absent kernel faces only when the grouped tables hold at
#: most this fraction fewer entries than the full one (below it one wide table is as fast).
PLANE_GROUP_MIN_SAVING = 0.1


@dataclass
class PlaneGroups:
    """The rows of a :class:`SubmanifoldMap` grouped by which faces of the kernel cube (the 6
    planes of offsets at ``+-K//2`` along x, y and z) hold no neighbour at all.

    A face with no neighbour contributes only padding, so a group's table keeps only the
    offsets of its other faces. On surface data (floors and walls a voxel or two thick leave
    whole faces empty) the tables shrink from 1.47x the useful pairs to 1.12x on the
    200k-voxel benchmark room, and from 5.4x to 2.96x on the demo's finest level. Groups are
    the 10 patterns of :func:`_face_groups`.

    ``order``: int64 [M], the positions in group order (stable: each group keeps the
    positions' spatial order). ``groups``: ``(start, end, cols, nbr_t)`` per group, rows
    ``start:end`` of that order, ``cols`` int64 [w] the offsets kept and ``nbr_t`` [rows, w]
    their columns of the map's table. ``caller_index``: int64 [M], the grouped row of every
    caller row (``y.index_select(0, caller_index)`` puts grouped results in the caller's
    order). ``entries``: the grouped tables' total size, against ``M * K**3`` for the full one.
    """

    order: torch.Tensor
    groups: list[tuple[int, int, torch.Tensor, torch.Tensor]]
    caller_index: torch.Tensor
    entries: int


@functools.cache
def _face_groups(
    kernel_size: int,
) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """The offsets (weight order) of each of the 6 faces of the kernel cube (x-, x+, y-, y+,
    z-, z+); for each of the 64 sets of absent faces (bit ``f`` set: face ``f`` absent) the
    group it joins; and the offsets each group keeps.

    The groups are 10 patterns of absent faces: none, one face (6), or a pair of opposite
    faces (3: a surface one voxel thick). A row joins the group that drops the most of its
    absent faces (a pair before a single face, z before y before x), so every group holds
    few or many rows but there are never more than 10 of them: tiny groups would cost more
    in per-call overhead than their padding. Cached: every submanifold map built asks for it.
    """
    r = kernel_size // 2
    offs = kernel_offset_list(kernel_size, centered=True)
    faces = [[k for k, o in enumerate(offs) if o[ax] == s] for ax in range(3) for s in (-r, r)]
    pairs = [0b110000, 0b001100, 0b000011]
    singles = [1 << f for f in (5, 4, 3, 2, 1, 0)]

    def join(code: int) -> int:
        return next((p for p in pairs + singles if code & p == p), 0)

    group_of = [join(code) for code in range(64)]
    kept = []
    for code in range(64):
        gone = {k for f in range(6) if code >> f & 1 for k in faces[f]}
        kept.append([k for k in range(len(offs)) if k not in gone])
    return tuple(map(tuple, faces)), tuple(group_of), tuple(map(tuple, kept))  # cached: read-only


def build_plane_groups(kmap: SubmanifoldMap, min_saving: float | None = None) -> PlaneGroups | None:
    """Group the rows of ``kmap`` by their absent kernel faces (see :class:`PlaneGroups`);
    None for kernels under 3, empty maps, or when the grouped tables would be less than
    ``min_saving`` (default :data:`PLANE_GROUP_MIN_SAVING`) smaller than the full one. Reads
    the 64 group sizes back (one synchronisation on a GPU, once per map)."""
    min_saving = PLANE_GROUP_MIN_SAVING if min_saving is None else min_saving
    n, k = kmap.n, kmap.kernel_size
    if k < 3 or n == 0:
        return None
    dev, table = kmap.nbr_t.device, kmap.nbr_t
    faces, group_of, kept = _face_groups(k)
    # a face is present when any of its offsets has a neighbour: count them with one product
    member = torch.zeros((kmap.volume, 8), dtype=torch.float32, device=dev)
    for f, cols in enumerate(faces):
        member[cols, f] = 1.0
    present = torch.mm((table < n).to(torch.float32), member)[:, :6]  # [M, 6] neighbours per face
    weights = torch.tensor([1 << f for f in range(6)], dtype=torch.float32, device=dev)
    code = torch.mv((present == 0).to(torch.float32), weights).to(torch.int64)
    code = torch.tensor(group_of, dtype=torch.int64, device=dev).index_select(0, code)
    sizes = torch.bincount(code, minlength=64).tolist()
    entries = sum(m * len(kept[c]) for c, m in enumerate(sizes))
    if entries > (1.0 - min_saving) * n * kmap.volume:
        return None
    order = torch.sort(code, stable=True).indices
    grouped = table.index_select(0, order)
    groups, start = [], 0
    for c, m in enumerate(sizes):
        if m == 0:
            continue
        cols = torch.tensor(kept[c], dtype=torch.int64, device=dev)
        rows = grouped[start : start + m]
        sub = rows if len(kept[c]) == kmap.volume else rows.index_select(1, cols)
        groups.append((start, start + m, cols, sub))
        start += m
    at = inverse_permutation(order)  # position -> grouped row
    caller_index = at if kmap.perm is None else at.index_select(0, kmap.inv)
    return PlaneGroups(order=order, groups=groups, caller_index=caller_index, entries=entries)


@dataclass
class DownMap(_Ordered):
    """A strided convolution from a fine level (``n_in`` rows) to a coarse one (``n_out``).

    ``out_coords``: int64 [n_out, 4] coarse coords in original voxel units, sorted by
    (batch, x, y, z). ``nbr_t``: int32/int64 [n_out, K**3], ``nbr_t[o, k]`` is the fine
    position at ``o * stride + offset_k`` or ``n_in`` when absent (``nbr`` is the
    [K**3, n_out] view). ``fine_slot``: int64
    [n_in] equal to ``o * K**3 + k`` of the single (coarse row, offset) of every fine
    position when ``kernel_size == stride`` (None otherwise). Fine positions are the
    caller's fine rows when ``perm`` is None, else ``perm[p]`` is the caller's row at
    position ``p``; coarse rows are always in ``out_coords`` order.
    """

    kernel_size: int
    stride: int
    n_in: int
    n_out: int
    out_coords: torch.Tensor
    nbr_t: torch.Tensor
    fine_slot: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)
    perm: torch.Tensor | None = None

    @property
    def volume(self) -> int:
        return self.kernel_size**3

    @property
    def nbr(self) -> torch.Tensor:
        """[K**3, n_out] view of the table (offset-major)."""
        return self.nbr_t.t()

    @property
    def fine_slot_caller(self) -> torch.Tensor | None:
        """``fine_slot`` indexed by the caller's fine rows (None when there is none)."""
        if self.fine_slot is None or self.perm is None:
            return self.fine_slot
        s = self.extra.get("fine_slot_caller")
        if s is None:
            s = self.extra["fine_slot_caller"] = self.fine_slot.index_select(0, self.inv)
        return s

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """(in_idx, out_idx, starts): int64 (fine position, coarse row) pairs grouped by
        offset, ``starts`` [K**3 + 1]."""
        p = self.extra.get("pairs")
        if p is None:
            valid = self.nbr < self.n_in
            ins, outs, starts = [], [], [0]
            for k in range(self.volume):
                o = valid[k].nonzero().squeeze(1)
                ins.append(self.nbr[k][o].long())
                outs.append(o)
                starts.append(starts[-1] + len(o))
            p = (torch.cat(ins), torch.cat(outs), starts)
            self.extra["pairs"] = p
        return p

    def group(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fine positions and coarse rows of the pairs of offset ``k`` (int64)."""
        i, o, s = self.pairs()
        return i[s[k] : s[k + 1]], o[s[k] : s[k + 1]]


def _index_dtype(n: int) -> torch.dtype:
    return torch.int32 if n < 2**31 - 1 else torch.int64


def build_submanifold_map(index: CoordIndex, kernel_size: int) -> SubmanifoldMap:
    """Neighbour table of a submanifold convolution over the sites of ``index``.

    One vectorised lookup of all ``K**3`` neighbour keys (``keys + delta_k``; the index
    padding keeps them from wrapping).
    """
    if kernel_size % 2 != 1:
        raise ShapeError(f"submanifold convolution needs an odd kernel size, got {kernel_size}")
    r = kernel_size // 2
    if r > index.pad:
        raise ShapeError(f"index padding {index.pad} too small for kernel {kernel_size}")
    n = index.n
    dev = index.device
    offs = kernel_offset_list(kernel_size, centered=True)
    vol = len(offs)
    idt = _index_dtype(n)
    if n == 0:
        return SubmanifoldMap(kernel_size, 0, torch.empty((0, vol), dtype=idt, device=dev))
    # index.keys and the grid are in position order: the table is built in positions
    deltas = [index.delta(o) for o in offs]
    if index.grid is not None:
        # grid cells hold the row, or n when empty: ONE gather of all offsets' keys, no
        # fix-up pass (few large ops also keep multi-threaded runs robust on a busy CPU)
        kdt = torch.int32 if index.total < 2**31 else torch.int64
        q = index.keys.to(kdt)[:, None] + torch.tensor(deltas, dtype=kdt, device=dev)[None, :]
        nbr_t = index.grid.index_select(0, q.view(-1)).view(n, vol).to(idt)
    else:
        nbr = torch.empty((vol, n), dtype=idt, device=dev)
        for k, d in enumerate(deltas):
            rows = index.positions(index.keys + d)
            nbr[k] = rows.masked_fill_(rows < 0, n)
        nbr_t = nbr.t().contiguous()
    return SubmanifoldMap(kernel_size=kernel_size, n=n, nbr_t=nbr_t, perm=index.perm)


def _unique_keys(keys: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique keys and the inverse index (a mark grid when ``total`` is small)."""
    n = keys.shape[0]
    if total <= max(_GRID_MIN_CELLS, _GRID_CELLS_PER_SITE * n) and total <= _GRID_MAX_CELLS:
        mark = torch.zeros(total, dtype=torch.bool, device=keys.device)
        mark[keys] = True
        uniq = mark.nonzero().squeeze(1)
        lut = torch.empty(total, dtype=torch.int64, device=keys.device)
        lut[uniq] = torch.arange(uniq.shape[0], device=keys.device)
        return uniq, lut[keys]
    return torch.unique(keys, sorted=True, return_inverse=True)


def build_down_map(
    index: CoordIndex,
    level_coords: torch.Tensor,
    in_stride: int,
    kernel_size: int,
    stride: int,
) -> DownMap:
    """Map of a strided convolution from the sites of ``index`` (at ``in_stride``).

    ``level_coords``: int64 [n_in, 4] per-level coords in the CALLER's row order; the map's
    fine side is in ``index``'s positions (``perm`` is taken from the index). An output
    site ``o`` (coarse per-level units) is active when some active input lies in its
    receptive field ``o * stride + [0, kernel_size)**3``.
    """
    c = level_coords if index.perm is None else level_coords.index_select(0, index.perm)
    dev = c.device
    n_in = c.shape[0]
    vol = kernel_size**3
    idt = _index_dtype(n_in)
    hi = c[:, 1:].max(dim=0).values if n_in else torch.zeros(3, dtype=torch.int64, device=dev)
    ext = (hi // stride + 1).tolist()
    nb = index.num_batches
    strides = (ext[0] * ext[1] * ext[2], ext[1] * ext[2], ext[2])
    total = nb * strides[0]
    if total >= MAX_KEY:
        raise ShapeError("coordinates too large for the int64 linearisation")
    rows_all = torch.arange(n_in, device=dev)
    if kernel_size == stride:
        # every fine site has exactly one (coarse site, offset)
        q = torch.div(c[:, 1:], stride, rounding_mode="floor")
        rem = c[:, 1:] - q * stride
        kk = (rem[:, 0] * stride + rem[:, 1]) * stride + rem[:, 2]
        keys = c[:, 0] * strides[0] + q[:, 0] * strides[1] + q[:, 1] * strides[2] + q[:, 2]
        in_idx = rows_all
    else:
        offs = kernel_offsets(kernel_size, centered=False, device=dev)
        cand_keys, cand_in, cand_k = [], [], []
        for k in range(vol):
            rel = c[:, 1:] - offs[k]
            ok = ((rel % stride) == 0).all(dim=1) & (rel >= 0).all(dim=1)
            qk = rel[ok] // stride
            b = c[ok, 0]
            cand_keys.append(b * strides[0] + qk[:, 0] * strides[1] + qk[:, 1] * strides[2] + qk[:, 2])
            cand_in.append(rows_all[ok])
            cand_k.append(torch.full_like(cand_in[-1], k))
        keys, in_idx, kk = torch.cat(cand_keys), torch.cat(cand_in), torch.cat(cand_k)
    uniq, out_idx = _unique_keys(keys, total)
    n_out = uniq.shape[0]
    b = uniq // strides[0]
    rem = uniq % strides[0]
    x = rem // strides[1]
    rem = rem % strides[1]
    y = rem // strides[2]
    z = rem % strides[2]
    s_out = in_stride * stride
    out_coords = torch.stack([b, x * s_out, y * s_out, z * s_out], dim=1)
    slot = out_idx * vol + kk
    nbr_t = torch.full((n_out * vol,), n_in, dtype=idt, device=dev)
    nbr_t[out_idx * vol + kk] = in_idx.to(idt)
    return DownMap(
        kernel_size=kernel_size,
        stride=stride,
        n_in=n_in,
        n_out=n_out,
        out_coords=out_coords,
        nbr_t=nbr_t.view(n_out, vol),
        fine_slot=slot if kernel_size == stride else None,
        perm=index.perm,
    )
