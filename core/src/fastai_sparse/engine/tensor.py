"""`SparseTensor`: integer coordinates, features, a stride and a shared kernel-map cache.

Coordinates are kept in the ORIGINAL voxel units at every level (as in MinkowskiEngine): a
tensor at stride 4 has coordinates that are multiples of 4. Every tensor derived from one
input in a forward pass (by convolutions, batch norm, activations, ...) shares one
:class:`KernelMapCache`, so each kernel map is built once per forward pass.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import DataFormatError, ShapeError
from .kernel_map import (
    MAX_KEY,
    CoordIndex,
    DownMap,
    SubmanifoldMap,
    build_down_map,
    build_submanifold_map,
)

__all__ = ["KernelMapCache", "SparseTensor"]


class KernelMapCache:
    """Kernel maps and coordinate indexes of one input, keyed by stride / kind / kernel.

    Keys: ``("coords", stride)`` -> int [M, 4] coords at that stride (original units);
    ``("index", stride)`` -> :class:`CoordIndex`; ``("subm", stride, K)`` ->
    :class:`SubmanifoldMap`; ``("down", in_stride, K, s)`` -> :class:`DownMap`. Backends
    may store their own objects under keys whose first item is their name.
    """

    def __init__(self, batch_size: int | None = None):
        self.batch_size = batch_size
        self.store: dict[tuple, Any] = {}

    def __repr__(self) -> str:
        return f"KernelMapCache({sorted(map(str, self.store))})"

    def get(self, key: tuple, default: Any = None) -> Any:
        return self.store.get(key, default)

    def set(self, key: tuple, value: Any) -> Any:
        self.store[key] = value
        return value

    def register_coords(self, stride: int, coords: torch.Tensor) -> torch.Tensor:
        """Remember the coords of a level; returns the canonical tensor for that stride."""
        have = self.store.get(("coords", stride))
        if have is None:
            self.store[("coords", stride)] = coords
            return coords
        return have

    def level_coords(self, stride: int) -> torch.Tensor:
        """int64 [M, 4] coords at ``stride`` divided by it (per-level units)."""
        key = ("level", stride)
        lc = self.store.get(key)
        if lc is None:
            c = self.store[("coords", stride)]
            lc = c.long() if c.dtype != torch.int64 else c.clone()
            if stride != 1:
                lc[:, 1:] = torch.div(lc[:, 1:], stride, rounding_mode="floor")
            self.store[key] = lc
        return lc

    def index(self, stride: int, pad: int = 1) -> CoordIndex:
        key = ("index", stride)
        idx = self.store.get(key)
        if idx is None or idx.pad < pad:
            idx = CoordIndex(self.level_coords(stride), pad=pad, batch_size=self.batch_size)
            self.store[key] = idx
            # maps built on an older index stay valid (same positions: a stable sort)
        return idx

    def subm_map(self, stride: int, kernel_size: int) -> SubmanifoldMap:
        key = ("subm", stride, kernel_size)
        m = self.store.get(key)
        if m is None:
            m = build_submanifold_map(self.index(stride, pad=kernel_size // 2), kernel_size)
            self.store[key] = m
        return m

    def down_map(self, stride: int, kernel_size: int, conv_stride: int) -> DownMap:
        key = ("down", stride, kernel_size, conv_stride)
        m = self.store.get(key)
        if m is None:
            m = build_down_map(
                self.index(stride), self.level_coords(stride), stride, kernel_size, conv_stride
            )
            out = self.register_coords(stride * conv_stride, m.out_coords)
            if out is not m.out_coords:
                if out.shape != m.out_coords.shape or not torch.equal(out.long(), m.out_coords):
                    raise ShapeError(
                        f"stride {stride * conv_stride} already has different coordinates in "
                        f"this cache (kernel {kernel_size}, stride {conv_stride} down map)"
                    )
                m.out_coords = out
            self.store[key] = m
        return m


def _check_coords(coords: torch.Tensor, feats: torch.Tensor, stride: int) -> None:
    if not isinstance(coords, torch.Tensor) or not isinstance(feats, torch.Tensor):
        raise DataFormatError(
            f"coords and feats must be torch tensors, got {type(coords).__name__} and {type(feats).__name__}"
        )
    if coords.dtype.is_floating_point or coords.dtype.is_complex or coords.dtype == torch.bool:
        raise DataFormatError(
            f"coords must be an integer tensor (int32 or int64), got {coords.dtype}",
            field="coords",
        )
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ShapeError(f"coords must have shape [M, 4] (batch, x, y, z), got {list(coords.shape)}")
    if feats.dim() != 2:
        raise ShapeError(f"feats must have shape [M, C], got {list(feats.shape)}")
    if feats.shape[0] != coords.shape[0]:
        raise ShapeError(
            f"coords and feats disagree on the number of sites M: coords has "
            f"{coords.shape[0]} rows, feats has {feats.shape[0]}"
        )
    if coords.device != feats.device:
        raise ShapeError(f"coords on {coords.device} but feats on {feats.device}")
    if not isinstance(stride, int) or stride < 1:
        raise ShapeError(f"stride must be a positive int, got {stride!r}")
    if coords.shape[0] == 0:
        return
    lo = coords.min(dim=0).values.tolist()
    hi = coords.max(dim=0).values.tolist()
    if min(lo) < 0:
        axis = ["batch", "x", "y", "z"][min(range(4), key=lambda i: lo[i])]
        raise DataFormatError(
            f"coords must be >= 0; found {axis} = {min(lo)} (shift the voxel grid so the "
            f"minimum corner is 0)",
            field="coords",
        )
    cells = hi[0] + 1
    for v in hi[1:]:
        cells *= v // stride + 3
    if cells >= MAX_KEY:
        raise DataFormatError(
            f"coords too large for the int64 linearisation: max (batch, x, y, z) = {hi} "
            f"spans {cells} cells (limit {MAX_KEY}); use a coarser voxel size or crop",
            field="coords",
        )
    if stride > 1 and bool((coords[:, 1:] % stride != 0).any()):
        raise DataFormatError(
            f"coords of a stride-{stride} tensor must be multiples of {stride}", field="coords"
        )


class SparseTensor:
    """Sparse 3D feature map.

    Args:
        coords: int32/int64 [M, 4] (batch, x, y, z), >= 0, in original voxel units
            (multiples of ``stride``).
        feats: float [M, C] features, row ``i`` belongs to ``coords[i]``.
        stride: the tensor stride (1 for the input level).
        spatial_cache: a :class:`KernelMapCache` to share; a new one is made when None.
        batch_size: number of samples B (default: ``coords[:, 0].max() + 1``); pass it when
            trailing samples may be empty.
        validate: check coords (done for user input; internal tensors skip it).
    """

    __slots__ = ("_batch_size", "cache", "coords", "feats", "stride")

    def __init__(
        self,
        coords: torch.Tensor,
        feats: torch.Tensor,
        stride: int = 1,
        spatial_cache: KernelMapCache | None = None,
        batch_size: int | None = None,
        validate: bool = True,
    ):
        if validate:
            _check_coords(coords, feats, stride)
        if spatial_cache is None:
            spatial_cache = KernelMapCache(batch_size)
        elif batch_size is not None and spatial_cache.batch_size is None:
            spatial_cache.batch_size = batch_size
        self.coords = spatial_cache.register_coords(stride, coords)
        if (
            validate
            and self.coords is not coords
            and (self.coords.shape != coords.shape or not torch.equal(self.coords, coords))
        ):
            raise ShapeError(f"the cache already holds different coordinates for stride {stride}")
        self.feats = feats
        self.stride = stride
        self.cache = spatial_cache
        self._batch_size = batch_size if batch_size is not None else spatial_cache.batch_size

    # ----------------------------------------------------------------- properties
    @property
    def batch_size(self) -> int:
        """Number of samples B (int)."""
        if self._batch_size is None:
            n = int(self.coords[:, 0].max()) + 1 if self.coords.shape[0] else 0
            self._batch_size = n
            if self.cache.batch_size is None:
                self.cache.batch_size = n
        return self._batch_size

    @property
    def spatial_cache(self) -> KernelMapCache:
        return self.cache

    @property
    def num_sites(self) -> int:
        return int(self.coords.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.feats.shape[1])

    @property
    def device(self) -> torch.device:
        return self.feats.device

    @property
    def dtype(self) -> torch.dtype:
        return self.feats.dtype

    def __len__(self) -> int:
        return self.num_sites

    def __repr__(self) -> str:
        return (
            f"SparseTensor(M={self.num_sites}, C={self.num_channels}, stride={self.stride}, "
            f"dtype={self.feats.dtype}, device={self.feats.device})"
        )

    # ----------------------------------------------------------------- derivation
    def replace(self, feats: torch.Tensor) -> SparseTensor:
        """Same coords, stride and cache with new features ``feats`` [M, C']."""
        if feats.dim() != 2 or feats.shape[0] != self.coords.shape[0]:
            raise ShapeError(
                f"replace(feats=...) needs [{self.coords.shape[0]}, C] features, got {list(feats.shape)}"
            )
        return SparseTensor(self.coords, feats, self.stride, self.cache, self._batch_size, validate=False)

    def derive(self, coords: torch.Tensor, feats: torch.Tensor, stride: int) -> SparseTensor:
        """A tensor at another level of the same cache (used by strided convolutions)."""
        return SparseTensor(coords, feats, stride, self.cache, self._batch_size, validate=False)

    def to(self, *args, **kwargs) -> SparseTensor:
        """Move features (and coords, for a device change) like ``Tensor.to``."""
        feats = self.feats.to(*args, **kwargs)
        if feats.device == self.coords.device:
            return self.replace(feats)
        return SparseTensor(self.coords.to(feats.device), feats, self.stride, None, self._batch_size)

    def dense(self, shape: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Dense [B, C, X, Y, Z] grid in per-level units (for tests and small inputs)."""
        c = self.coords.long().clone()
        c[:, 1:] //= self.stride
        if shape is None:
            shape = tuple((c[:, 1:].max(dim=0).values + 1).tolist()) if len(c) else (1, 1, 1)
        out = self.feats.new_zeros((self.batch_size, self.num_channels, *shape))
        out[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]] = self.feats
        return out
