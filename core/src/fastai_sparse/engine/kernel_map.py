"""Kernel maps: which input row feeds which output row through which kernel offset.

Coordinates are linearised into int64 keys ``((b * X + x) * Y + y) * Z + z`` (after
shifting by a padding so that neighbour queries never wrap). Lookups use a dense index grid
when the occupied bounding box is small compared with the number of points, sorted keys
plus ``torch.searchsorted`` otherwise. Everything here is pure PyTorch and runs on the
device of the coordinates.

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

from dataclasses import dataclass, field

import torch

from ..errors import ShapeError

__all__ = [
    "MAX_KEY",
    "CoordIndex",
    "DownMap",
    "SubmanifoldMap",
    "build_down_map",
    "build_submanifold_map",
]

#: Largest linearised key the engine accepts (keys are int64; keep headroom for offsets).
MAX_KEY = 2**62

#: Use a dense index grid when its size is at most this many cells per active site (plus
#: a fixed allowance); otherwise fall back to sorted keys and binary search.
_GRID_CELLS_PER_SITE = 64
_GRID_MIN_CELLS = 1 << 22
_GRID_MAX_CELLS = 1 << 28


def kernel_offsets(kernel_size: int, centered: bool, device: torch.device | None = None):
    """Offsets of a cubic kernel in weight order: int64 [K**3, 3]."""
    r = torch.arange(kernel_size, device=device)
    if centered:
        r = r - kernel_size // 2
    g = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), dim=-1)
    return g.reshape(-1, 3)


class CoordIndex:
    """Lookup structure over one set of coordinates (one stride level).

    ``level_coords``: int64 [M, 4] (batch, x, y, z) in per-level units (divided by the
    stride). ``pad`` is how far outside the occupied box a query may reach.
    """

    def __init__(self, level_coords: torch.Tensor, pad: int = 1, batch_size: int | None = None):
        c = level_coords
        self.n = int(c.shape[0])
        self.pad = int(pad)
        self.device = c.device
        if self.n == 0:
            hi = torch.zeros(4, dtype=torch.int64)
        else:
            hi = c.max(dim=0).values.cpu()
        nb = int(hi[0]) + 1 if batch_size is None else max(int(batch_size), int(hi[0]) + 1)
        ext = [int(v) + 1 + 2 * self.pad for v in hi[1:].tolist()]
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
        self.keys = self.linearise(c)
        self.grid: torch.Tensor | None = None
        self.sorted_keys: torch.Tensor | None = None
        self.sorted_rows: torch.Tensor | None = None
        if (
            total <= max(_GRID_MIN_CELLS, _GRID_CELLS_PER_SITE * self.n)
            and total <= _GRID_MAX_CELLS
        ):
            grid = torch.full((total,), -1, dtype=torch.int32, device=self.device)
            grid[self.keys] = torch.arange(self.n, dtype=torch.int32, device=self.device)
            self.grid = grid
        else:
            self.sorted_keys, self.sorted_rows = torch.sort(self.keys)

    def linearise(self, c: torch.Tensor) -> torch.Tensor:
        """int64 keys of per-level coords ``c`` [N, 4]; caller guarantees they are in range."""
        s = self.strides
        p = self.pad
        return c[:, 0] * s[0] + (c[:, 1] + p) * s[1] + (c[:, 2] + p) * s[2] + (c[:, 3] + p)

    def delta(self, offset: tuple[int, int, int]) -> int:
        """Key difference of a spatial offset (valid while ``|offset| <= pad``)."""
        return offset[0] * self.strides[1] + offset[1] * self.strides[2] + offset[2]

    def lookup_keys(self, q: torch.Tensor) -> torch.Tensor:
        """Rows of the keys ``q`` (any shape, in range ``[0, total)``); -1 where absent.

        Returns int64 of the shape of ``q``.
        """
        if self.grid is not None:
            return self.grid[q].long()
        if self.n == 0:
            return torch.full_like(q, -1)
        flat = q.reshape(-1)
        pos = torch.searchsorted(self.sorted_keys, flat)
        pos.clamp_(max=self.n - 1)
        found = self.sorted_keys[pos] == flat
        rows = torch.where(found, self.sorted_rows[pos], torch.full_like(pos, -1))
        return rows.reshape(q.shape)

    def lookup(self, c: torch.Tensor) -> torch.Tensor:
        """Rows of per-level coords ``c`` [N, 4] (any values); int64 [N], -1 where absent."""
        p = self.pad
        ok = (c[:, 0] >= 0) & (c[:, 0] < self.num_batches)
        for d in range(3):
            ok &= (c[:, d + 1] >= -p) & (c[:, d + 1] < self.extent[d] - p)
        keys = self.linearise(torch.where(ok[:, None], c, torch.zeros_like(c)))
        rows = self.lookup_keys(keys)
        return torch.where(ok, rows, torch.full_like(rows, -1))


@dataclass
class SubmanifoldMap:
    """Neighbour table of a submanifold convolution (output sites == input sites).

    ``nbr``: int64 [K**3, M], ``nbr[k, j]`` is the input row feeding output row ``j``
    through offset ``k``, or ``M`` (a zero padding row) when that neighbour is absent.
    ``counts``: int64 [K**3] active pairs per offset. The map is symmetric:
    ``nbr[k, j] == i`` iff ``nbr[K**3 - 1 - k, i] == j``, so the input gradient reuses it
    with mirrored, transposed weights.
    """

    kernel_size: int
    n: int
    nbr: torch.Tensor
    counts: torch.Tensor
    extra: dict = field(default_factory=dict)

    @property
    def volume(self) -> int:
        return self.kernel_size**3


@dataclass
class DownMap:
    """Pairs of a strided convolution from a fine level to a coarse level.

    ``out_coords``: int [M_out, 4] coarse coords in original voxel units;
    ``in_idx``/``out_idx``: int64 [P] rows of the fine / coarse tensor, grouped by offset;
    ``offsets``: int64 [K**3 + 1] start of each offset's group in the pair arrays.
    """

    kernel_size: int
    stride: int
    n_in: int
    n_out: int
    out_coords: torch.Tensor
    in_idx: torch.Tensor
    out_idx: torch.Tensor
    offsets: list[int]
    extra: dict = field(default_factory=dict)

    @property
    def volume(self) -> int:
        return self.kernel_size**3

    def group(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.offsets[k], self.offsets[k + 1]
        return self.in_idx[a:b], self.out_idx[a:b]


def build_submanifold_map(index: CoordIndex, kernel_size: int) -> SubmanifoldMap:
    """Neighbour table of a submanifold convolution over the sites of ``index``."""
    if kernel_size % 2 != 1:
        raise ShapeError(f"submanifold convolution needs an odd kernel size, got {kernel_size}")
    r = kernel_size // 2
    if r > index.pad:
        raise ShapeError(f"index padding {index.pad} too small for kernel {kernel_size}")
    n = index.n
    offs = kernel_offsets(kernel_size, centered=True).tolist()
    deltas = torch.tensor([index.delta(o) for o in offs], dtype=torch.int64, device=index.device)
    vol = len(offs)
    nbr = torch.empty((vol, n), dtype=torch.int64, device=index.device)
    centre = vol // 2
    for k in range(vol):
        if k == centre:
            nbr[k] = torch.arange(n, device=index.device)
            continue
        rows = index.lookup_keys(index.keys + deltas[k])
        nbr[k] = torch.where(rows < 0, torch.full_like(rows, n), rows)
    counts = (nbr < n).sum(dim=1)
    return SubmanifoldMap(kernel_size=kernel_size, n=n, nbr=nbr, counts=counts)


def build_down_map(
    index: CoordIndex,
    level_coords: torch.Tensor,
    in_stride: int,
    kernel_size: int,
    stride: int,
) -> DownMap:
    """Pairs of a strided convolution from the sites of ``index`` (at ``in_stride``).

    An output site ``o`` (coarse per-level units) is active when some active input lies in
    its receptive field ``o * stride + [0, kernel_size)**3``.
    """
    c = level_coords
    dev = c.device
    n_in = c.shape[0]
    offs = kernel_offsets(kernel_size, centered=False).tolist()
    cand_keys, cand_in, cand_k = [], [], []
    # Coarse index space: keys of the coarse coords with a padding of 0.
    hi = c[:, 1:].max(dim=0).values if n_in else torch.zeros(3, dtype=torch.int64, device=dev)
    ext = (hi // stride + 1).tolist()
    nb = index.num_batches
    strides = (ext[0] * ext[1] * ext[2], ext[1] * ext[2], ext[2])
    if nb * strides[0] >= MAX_KEY:
        raise ShapeError("coordinates too large for the int64 linearisation")
    rows_all = torch.arange(n_in, device=dev)
    for k, o in enumerate(offs):
        d = torch.tensor(o, dtype=torch.int64, device=dev)
        rel = c[:, 1:] - d
        if kernel_size == stride:
            # each input has exactly one (output, offset): select by remainder
            sel = ((c[:, 1:] % stride) == d).all(dim=1)
            rel = rel[sel]
            rows = rows_all[sel]
            b = c[sel, 0]
        else:
            ok = ((rel % stride) == 0).all(dim=1) & (rel >= 0).all(dim=1)
            rel = rel[ok]
            rows = rows_all[ok]
            b = c[ok, 0]
        q = rel // stride
        key = b * strides[0] + q[:, 0] * strides[1] + q[:, 1] * strides[2] + q[:, 2]
        cand_keys.append(key)
        cand_in.append(rows)
        cand_k.append(torch.full_like(rows, k))
    keys = torch.cat(cand_keys)
    in_idx = torch.cat(cand_in)
    kk = torch.cat(cand_k)
    uniq, out_idx = torch.unique(keys, sorted=True, return_inverse=True)
    n_out = uniq.shape[0]
    b = uniq // strides[0]
    rem = uniq % strides[0]
    x = rem // strides[1]
    rem = rem % strides[1]
    y = rem // strides[2]
    z = rem % strides[2]
    s_out = in_stride * stride
    out_coords = torch.stack([b, x * s_out, y * s_out, z * s_out], dim=1)
    counts = torch.bincount(kk, minlength=len(offs)).tolist()
    starts = [0]
    for v in counts:
        starts.append(starts[-1] + v)
    # candidates were produced offset by offset, so pairs are already grouped by offset
    return DownMap(
        kernel_size=kernel_size,
        stride=stride,
        n_in=n_in,
        n_out=n_out,
        out_coords=out_coords,
        in_idx=in_idx,
        out_idx=out_idx,
        offsets=starts,
    )
