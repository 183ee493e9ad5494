"""Voxelization: points -> sparse voxels, and back from voxels to every point.

:class:`Voxelizer` turns a :class:`~fastai_sparse.geometry.PointCloud` into a
:class:`~fastai_sparse.batch.SparseSample`: integer voxel coordinates, per-voxel features and
the point -> voxel index (``inverse``) so per-voxel predictions map back to every input point
exactly (:func:`unvoxelize`). Everything is vectorised: one sort of the linearised voxel keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DataFormatError
from .geometry import PointCloud

__all__ = ["PointFeatureVoxelizer", "Voxelizer", "gather_features", "unvoxelize"]

_MODES = ("mean", "first", "random")
_CHUNK = 32768  # points whose keys are built together: [3, chunk] scratch stays in L2


def gather_features(cloud: PointCloud, names: Sequence[str]) -> np.ndarray:
    """float32 [N, C]: the per-point attributes ``names`` concatenated along columns.

    A 1-D attribute contributes one column. Special names: ``"ones"`` (a column of ones, unless
    the cloud has an attribute of that name) and ``"height"`` (the attribute if present,
    else z minus the lowest z). Missing names raise DataFormatError listing what exists.
    """
    n = len(cloud)
    cols = []
    for name in names:
        if name in cloud.attrs:
            a = np.asarray(cloud.attrs[name])
            cols.append((a.reshape(n, -1) if a.ndim != 2 else a).astype(np.float32, copy=False))
        elif name == "ones":
            cols.append(np.ones((n, 1), np.float32))
        elif name == "height":
            z = cloud.xyz[:, 2].astype(np.float32)
            cols.append((z - (z.min() if n else 0))[:, None])
        else:
            raise DataFormatError(
                f"feature {name!r} requested but the cloud has attributes {sorted(cloud.attrs)} "
                "(special names: 'ones', 'height', 'xyz')",
                path=cloud.meta.get("path"),
                field=name,
            )
    if not cols:
        return np.zeros((n, 0), np.float32)
    return np.concatenate(cols, axis=1) if len(cols) > 1 else np.ascontiguousarray(cols[0])


def unvoxelize(voxel_values, inverse):
    """Per-point values from per-voxel values: ``voxel_values[inverse]``.

    voxel_values: [M, ...] numpy array or torch tensor; inverse: int [N] (row of each point's
    voxel). Returns [N, ...] of the same kind, one row per input point.
    """
    if hasattr(voxel_values, "index_select"):  # torch tensor
        import torch

        inv = torch.as_tensor(np.asarray(inverse) if not hasattr(inverse, "device") else inverse)
        return voxel_values.index_select(0, inv.to(voxel_values.device, torch.long))
    inv = np.asarray(inverse)
    if len(inv) and (inv.min() < 0 or inv.max() >= len(voxel_values)):
        raise IndexError(
            f"inverse holds rows {inv.min()}..{inv.max()} but there are {len(voxel_values)} voxels"
        )
    return np.asarray(voxel_values)[inv]


_ARANGE = np.arange(0, dtype=np.int64)


def _arange(n: int) -> np.ndarray:
    """Read-only int64 ``arange(n)``, a view of one array kept for the process (grown as needed):
    the voxelizer needs it for every sample."""
    global _ARANGE
    a = _ARANGE
    if len(a) < n:
        a = np.arange(max(n, 2 * len(a)), dtype=np.int64)
        a.flags.writeable = False
        _ARANGE = a
    return a[:n]


def _sort_keys(keys: np.ndarray, key_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, sorted keys) of int64 voxel keys below ``2**key_bits``, ties (points of one
    voxel) in increasing point index. ``keys`` is reused.

    When key and point index fit in 63 bits together (``full_scale = 4096``: 36 key bits leave
    27, 134M points), one ``np.sort`` of ``key << bits | index`` does it: numpy's vectorised
    integer sort is 2-3x faster than ``argsort`` of the keys, and the index in the low bits
    makes the order within a voxel defined (``argsort``'s unstable order depended on the numpy
    build). Otherwise a stable ``argsort`` gives the same order, more slowly.
    """
    n = len(keys)
    bits = max(1, (n - 1).bit_length())
    if key_bits + bits <= 63:
        keys <<= bits
        keys |= _arange(n)
        keys.sort()
        order = keys & ((1 << bits) - 1)
        keys >>= bits
        return order, keys
    order = np.argsort(keys, kind="stable")
    return order, keys.take(order)


class Voxelizer:
    """Points -> voxels.

    scale: voxels per cloud unit (20 = 5 cm voxels for metres). Voxel of a point:
        ``floor(xyz * scale)``, computed in float64.
    features: per-point attributes concatenated as voxel features (see
        :func:`gather_features`); ``"xyz"`` adds the point's position inside its voxel, in
        [0, 1) per axis.
    full_scale: grid size; every coordinate must end in ``[0, full_scale)`` or
        DataFormatError says which axis, the extent found and the limit.
    mode: how points sharing a voxel give its features: ``"mean"`` (average), ``"first"``
        (the point that comes first in the cloud) or ``"random"`` (one point drawn from
        ``rng``: the k-th of the voxel's points in cloud order, k uniform; the same ``rng``
        state picks the same points on every numpy build).
    origin: ``"min"`` shifts coordinates so the smallest is 0 on each axis; ``"none"`` keeps
        them (use after :class:`~fastai_sparse.transforms.points.FitToGrid`).

    Call: ``voxelizer(cloud, rng=None) -> SparseSample`` with coords int32 [M, 3] sorted
    lexicographically (x, y, z), feats float32 [M, C], inverse int64 [N].
    """

    def __init__(
        self,
        scale: float = 20.0,
        features: Sequence[str] = ("rgb",),
        full_scale: int = 4096,
        mode: str = "mean",
        origin: str = "min",
    ):
        if not scale > 0:
            raise ValueError(f"Voxelizer: scale must be > 0, got {scale}")
        if mode not in _MODES:
            raise ValueError(f"Voxelizer: mode must be one of {_MODES}, got {mode!r}")
        if origin not in ("min", "none"):
            raise ValueError(f"Voxelizer: origin must be 'min' or 'none', got {origin!r}")
        if not 0 < full_scale <= 2**20:
            raise ValueError(f"Voxelizer: full_scale must be in 1..2**20, got {full_scale}")
        if isinstance(features, str):
            features = (features,)
        self.scale, self.features, self.full_scale = float(scale), tuple(features), int(full_scale)
        self.mode, self.origin = mode, origin

    def __repr__(self) -> str:
        return (
            f"Voxelizer(scale={self.scale:g}, features={self.features}, full_scale={self.full_scale}, "
            f"mode={self.mode!r}, origin={self.origin!r})"
        )

    @property
    def num_features(self) -> int | None:
        """Number of feature columns when known without data (3 per 'rgb'/'xyz'/'normals',
        1 per 'ones'/'height'), else None."""
        widths = {"rgb": 3, "xyz": 3, "normals": 3, "ones": 1, "height": 1}
        return sum(widths[f] for f in self.features) if all(f in widths for f in self.features) else None

    def _origin(self, cloud: PointCloud) -> np.ndarray:
        """int64 [3]: the voxel coordinate that becomes 0 on each axis (the smallest with
        ``origin="min"``, else 0), once every shifted coordinate is checked to be in
        ``[0, full_scale)``. The extremes are ``floor(min(x) * scale)`` and
        ``floor(max(x) * scale)`` (the float64 product and floor are monotone), from six
        reductions of the float32 columns."""
        x = cloud.xyz
        lo = np.array([x[:, k].min() for k in range(3)], np.float64)
        hi = np.array([x[:, k].max() for k in range(3)], np.float64)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):  # min and max propagate NaN
            cloud.check_finite()  # raises, naming the first bad point
        lo, hi = np.floor(lo * self.scale), np.floor(hi * self.scale)
        shift = lo if self.origin == "min" else np.zeros(3)
        lo, hi = lo - shift, hi - shift
        for k in range(3):
            if lo[k] < 0 or hi[k] >= self.full_scale:
                raise DataFormatError(
                    f"voxel coordinates along {'xyz'[k]} span {int(lo[k])}..{int(hi[k])} at scale "
                    f"{self.scale:g} (extent {(hi[k] - lo[k] + 1) / self.scale:g} cloud units), beyond "
                    f"the grid [0, {self.full_scale}); lower the scale, raise full_scale, or crop (FitToGrid)",
                    path=cloud.meta.get("path"),
                    field="xyz",
                )
        return shift.astype(np.int64)

    def _floor(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``floor(x * scale)`` of points x float32 [m, 3] into out [3, m] (integral values):
        the product in float64 (out float64), or at ``scale == 1`` in float32 (out float32:
        ``floor`` of a float32 is the float64 floor of the same value). The three axes go as
        rows: numpy is several times faster on long contiguous rows than on [m, 3] arrays
        (contiguous reads when x is column-major, the transforms' output)."""
        if self.scale == 1.0:
            return np.floor(x.T, out=out)
        np.multiply(x.T, self.scale, out=out, dtype=np.float64)
        return np.floor(out, out=out)

    def _scratch(self, m: int) -> np.ndarray:
        return np.empty((3, m), np.float32 if self.scale == 1.0 else np.float64)

    def _check(self, cloud: PointCloud) -> None:
        if len(cloud) == 0:
            raise DataFormatError(
                "cannot voxelize an empty point cloud (0 points)", path=cloud.meta.get("path"), field="xyz"
            )
        # non-finite coordinates: found by the column extremes of _origin (before any key)

    def voxel_coords(self, cloud: PointCloud) -> np.ndarray:
        """int64 [N, 3] voxel coordinates of every point, shifted and bounds-checked."""
        self._check(cloud)
        shift = self._origin(cloud)
        c = self._floor(cloud.xyz, self._scratch(len(cloud))).astype(np.int64)
        c -= shift[:, None]
        return c.T

    def __call__(self, cloud: PointCloud, rng: np.random.Generator | None = None):
        from .batch import SparseSample

        self._check(cloud)
        n = len(cloud)
        axis_bits = (self.full_scale - 1).bit_length()
        # key (x << 2b) | (y << b) | z, b bits per axis: sorts like (x, y, z); per chunk of
        # points through scratch rows that stay in the cache
        shift = self._origin(cloud)[:, None]
        keys = np.empty(n, np.int64)
        chunk = max(1, min(n, _CHUNK))
        fl, iv = self._scratch(chunk), np.empty((3, chunk), np.int64)
        for c0 in range(0, n, chunk):
            m = min(n, c0 + chunk) - c0
            v = iv[:, :m]
            np.copyto(v, self._floor(cloud.xyz[c0 : c0 + m], fl[:, :m]), casting="unsafe")
            if self.origin == "min":
                v -= shift
            k = np.left_shift(v[0], 2 * axis_bits, out=keys[c0 : c0 + m])
            v[1] <<= axis_bits
            k |= v[1]
            k |= v[2]
        tmp = np.empty(n, np.float64)  # a scratch column, reused below
        order, sk = _sort_keys(keys, 3 * axis_bits)
        new = np.empty(n, bool)
        new[0] = True
        np.not_equal(sk[1:], sk[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        m = len(starts)
        vid = np.cumsum(new, dtype=np.int64, out=tmp.view(np.int64))
        vid -= 1  # voxel row of each sorted point
        inverse = np.empty(n, np.int64)
        inverse[order] = vid
        uk = sk.take(starts)
        mask = (1 << axis_bits) - 1
        coords = np.empty((m, 3), np.int32)
        for k in (2, 1, 0):
            np.bitwise_and(uk, mask, out=coords[:, k], casting="unsafe")
            uk >>= axis_bits

        cols = []
        for f in self.features:  # in the requested column order
            if f == "xyz" and "xyz" not in cloud.attrs:
                x = cloud.xyz.astype(np.float64) * self.scale
                cols.append((x - np.floor(x)).astype(np.float32))
            else:
                cols.append(gather_features(cloud, [f]))
        pf = (
            np.concatenate(cols, axis=1)
            if len(cols) > 1
            else (cols[0] if cols else np.zeros((n, 0), np.float32))
        )

        if self.mode == "mean":
            counts = np.empty(m, np.float64)
            np.subtract(starts[1:], starts[:-1], out=counts[:-1])
            counts[-1] = n - starts[-1]
            feats = np.empty((m, pf.shape[1]), np.float32)
            for c in range(pf.shape[1]):
                np.copyto(tmp, pf[:, c])  # float64 weights in the scratch column
                sums = np.bincount(inverse, weights=tmp, minlength=m)
                np.divide(sums, counts, out=feats[:, c], casting="same_kind")
        else:
            if self.mode == "first":
                pick = order.take(starts)  # points of a voxel are sorted by index
            else:
                rng = np.random.default_rng() if rng is None else rng
                counts = np.diff(starts, append=n)
                pick = order.take(starts + (rng.random(m) * counts).astype(np.int64))
            feats = np.ascontiguousarray(pf.take(pick, axis=0), dtype=np.float32)
        return SparseSample(coords=coords, feats=feats, inverse=inverse, cloud=cloud)


class PointFeatureVoxelizer(Voxelizer):
    """A :class:`~fastai_sparse.voxelize.Voxelizer` that also keeps the per-point features
    (``SparseSample.point_feats`` float32 [N, C], the same columns as the voxel features, which
    are their per-voxel means with ``mode="mean"``), the input of a VoxelNet-style
    :class:`~fastai_sparse.models.VFE` input stage (``Task(input_stage="vfe")``).
    ``"xyz"`` is the point's position inside its voxel, in [0, 1) per axis."""

    def __call__(self, cloud, rng=None):
        sample = super().__call__(cloud, rng)
        cols = []
        for f in self.features:
            if f == "xyz" and "xyz" not in cloud.attrs:
                v = cloud.xyz.astype(np.float64) * self.scale
                cols.append((v - np.floor(v)).astype(np.float32))
            else:
                cols.append(gather_features(cloud, [f]))
        sample.point_feats = np.concatenate(cols, 1).astype(np.float32) if cols else None
        return sample
