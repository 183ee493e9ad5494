"""Point-level spatial transforms.

Every transform that moves points goes through :meth:`PointCloud.map_points`, so normals
(inverse-transpose of the linear part or local Jacobian), boxes and keypoints (with their
axes) follow the same map. Exceptions, documented on the class: :class:`Jitter` (per-point
noise is not a function of position, so normals and spatial targets are left unchanged) and
the crops (:class:`RandomCrop`, :class:`FitToGrid`, :class:`PointDropout`) which select points.

Crops and spatial targets: a box whose centre leaves the crop is dropped (the number dropped
is recorded in ``meta["boxes_dropped"]``); keypoints are always kept, so every sample keeps
the same K, and ``meta["keypoints_in_crop"]`` (bool [K]) says which ones are inside the crop.
The number of points removed is recorded in ``meta["points_cropped"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataFormatError
from ..geometry import Boxes, Keypoints, PointCloud
from .compose import AffineTransform, Transform, apply_affine, as_tuple3

__all__ = [
    "Affine",
    "Center",
    "ElasticDistortion",
    "FitToGrid",
    "Jitter",
    "PointDropout",
    "RandomAffineNoise",
    "RandomCrop",
    "RandomFlip",
    "RandomRotate",
    "RandomScale",
    "Scale",
    "Translate",
    "bounds",
    "crop",
    "inside_box",
    "random_rotation",
    "rotation_matrix",
    "voxel_floor",
]

_AXES = {"x": 0, "y": 1, "z": 2}


def _axis_index(axis: str | int) -> int:
    if isinstance(axis, str) and axis.lower() in _AXES:
        return _AXES[axis.lower()]
    if isinstance(axis, (int, np.integer)) and 0 <= int(axis) < 3:
        return int(axis)
    raise ValueError(f"unknown axis {axis!r}; expected 'x', 'y', 'z' or 0, 1, 2")


def rotation_matrix(axis: str | int | Sequence[float], angle: float) -> np.ndarray:
    """float64 [3, 3] rotation by ``angle`` radians (right-handed) about ``axis``
    ('x', 'y', 'z', 0-2, or a 3-vector)."""
    if isinstance(axis, (str, int, np.integer)):
        u = np.eye(3)[_axis_index(axis)]
    else:
        u = np.asarray(axis, np.float64).reshape(3)
        n = np.linalg.norm(u)
        if not np.isfinite(n) or n == 0:
            raise ValueError(f"rotation axis must be a non-zero finite vector, got {axis!r}")
        u = u / n
    c, s = np.cos(angle), np.sin(angle)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return c * np.eye(3) + s * k + (1 - c) * np.outer(u, u)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed rotation matrix (float64 [3, 3], det +1), by QR of a Gaussian."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def bounds(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis (min, max) of points x [N, 3] as float64 [3] arrays (one column at a time:
    ten times faster than ``x.min(0)`` on a [N, 3] array)."""
    return (
        np.array([x[:, k].min() for k in range(3)], np.float64),
        np.array([x[:, k].max() for k in range(3)], np.float64),
    )


def inside_box(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """bool [N]: points x [N, 3] with lo <= x < hi on every axis."""
    keep = (x[:, 0] >= lo[0]) & (x[:, 0] < hi[0])
    for k in (1, 2):
        keep &= x[:, k] >= lo[k]
        keep &= x[:, k] < hi[k]
    return keep


def _range(v: float | Sequence[float], name: str) -> tuple[float, float]:
    if np.ndim(v) == 0:
        return float(v), float(v)
    lo, hi = (float(x) for x in v)
    if hi < lo:
        raise ValueError(f"{name}: range must be (low, high) with low <= high, got {v!r}")
    return lo, hi


class Affine(AffineTransform):
    """The fixed affine map ``x -> matrix @ x + translation``; ``inverse()`` undoes it."""

    _repr_fields = ("matrix", "translation")

    def __init__(self, matrix: np.ndarray, translation: Sequence[float] | None = None):
        m = np.asarray(matrix, np.float64)
        if m.shape != (3, 3) or not np.isfinite(m).all() or abs(np.linalg.det(m)) < 1e-12:
            raise ValueError(
                f"Affine: matrix must be a finite invertible 3x3 matrix, got {np.asarray(matrix).tolist()}"
            )
        self.matrix = m
        self.translation = np.zeros(3) if translation is None else as_tuple3(translation, "translation")

    def params(self, rng=None):
        return self.matrix, self.translation

    def inverse(self) -> Affine:
        inv = np.linalg.inv(self.matrix)
        return Affine(inv, -inv @ self.translation)


class Scale(AffineTransform):
    """Multiply coordinates by ``s`` (a number, or 3 numbers for an anisotropic scale)."""

    _repr_fields = ("s",)

    def __init__(self, s: float | Sequence[float]):
        self.s = s
        self._d = as_tuple3(s, "Scale: s")
        if (self._d == 0).any() or not np.isfinite(self._d).all():
            raise ValueError(f"Scale: factors must be finite and non-zero, got {s!r}")

    def params(self, rng=None):
        return np.diag(self._d), np.zeros(3)


class Translate(AffineTransform):
    """Add ``t`` (3 numbers) to every coordinate."""

    _repr_fields = ("t",)

    def __init__(self, t: Sequence[float]):
        self.t = as_tuple3(t, "Translate: t")

    def params(self, rng=None):
        return np.eye(3), self.t


class RandomAffineNoise(AffineTransform):
    """The linear map ``M = I + sigma * randn(3, 3)`` (SparseConvNet's ScanNet recipe)."""

    random = True
    _repr_fields = ("sigma",)

    def __init__(self, sigma: float = 0.1):
        self.sigma = float(sigma)

    def params(self, rng):
        m = np.eye(3) + self.sigma * rng.standard_normal((3, 3))
        if abs(np.linalg.det(m)) < 1e-6:  # vanishingly rare; keep the map invertible
            m = np.eye(3)
        return m, np.zeros(3)


class RandomRotate(AffineTransform):
    """Rotate by a random angle drawn uniformly from ``angle`` (radians; a number means a
    fixed angle) about ``axis`` ('x', 'y', 'z' or a 3-vector), or by a uniformly random
    rotation when ``axis="so3"``."""

    random = True
    _repr_fields = ("axis", "angle")

    def __init__(self, axis: str | Sequence[float] = "z", angle: float | Sequence[float] = (0.0, 2 * np.pi)):
        self.axis = axis
        self.angle = _range(angle, "RandomRotate: angle") if np.ndim(angle) else float(angle)
        if not (isinstance(axis, str) and axis == "so3"):
            rotation_matrix(axis, 0.0)  # validate the axis now

    def params(self, rng):
        if isinstance(self.axis, str) and self.axis == "so3":
            return random_rotation(rng), np.zeros(3)
        lo, hi = _range(self.angle, "angle")
        return rotation_matrix(self.axis, rng.uniform(lo, hi)), np.zeros(3)


class RandomFlip(AffineTransform):
    """Mirror each listed axis independently with probability ``p``."""

    random = True
    _repr_fields = ("axes", "p")

    def __init__(self, axes: Sequence[str] = ("x",), p: float = 0.5):
        self.axes = tuple(axes) if not isinstance(axes, str) else (axes,)
        self._idx = [_axis_index(a) for a in self.axes]
        self.p = float(p)

    def params(self, rng):
        d = np.ones(3)
        flips = rng.random(len(self._idx)) < self.p
        for i, f in zip(self._idx, flips):
            if f:
                d[i] = -d[i]
        return np.diag(d), np.zeros(3)


class RandomScale(AffineTransform):
    """Scale by a factor drawn uniformly from ``scale``; one factor per axis when
    ``anisotropic``."""

    random = True
    _repr_fields = ("scale", "anisotropic")

    def __init__(self, scale: Sequence[float] = (0.9, 1.1), anisotropic: bool = False):
        self.scale = _range(scale, "RandomScale: scale")
        if self.scale[0] <= 0:
            raise ValueError(f"RandomScale: factors must be > 0, got {scale!r}")
        self.anisotropic = bool(anisotropic)

    def params(self, rng):
        s = rng.uniform(*self.scale, size=3 if self.anisotropic else 1)
        return np.diag(np.broadcast_to(s, 3)).astype(np.float64), np.zeros(3)


class Center(Transform):
    """Translate so the centre of the bounding box (``mode="bbox"``) or the mean of the
    points (``mode="mean"``) is at the origin."""

    _repr_fields = ("mode",)

    def __init__(self, mode: str = "bbox"):
        if mode not in ("bbox", "mean"):
            raise ValueError(f"Center: mode must be 'bbox' or 'mean', got {mode!r}")
        self.mode = mode

    def apply(self, cloud, rng=None):
        if len(cloud) == 0:
            return cloud
        if self.mode == "bbox":
            lo, hi = bounds(cloud.xyz)
            c = (lo + hi) / 2
        else:
            c = cloud.xyz.astype(np.float64).mean(0)
        return apply_affine(cloud, np.eye(3), -c)


class Jitter(Transform):
    """Add independent Gaussian noise (std ``sigma``, clipped to ``[-clip, clip]``) to every
    point.

    Per-point noise is not a function of position, so it does not go through ``map_points``:
    normals, boxes and keypoints are left unchanged (the noise is small by design).
    """

    random = True
    _repr_fields = ("sigma", "clip")

    def __init__(self, sigma: float = 0.01, clip: float | None = 0.05):
        self.sigma, self.clip = float(sigma), None if clip is None else float(clip)

    def apply(self, cloud, rng):
        noise = self.sigma * rng.standard_normal(cloud.xyz.shape, dtype=np.float32)
        if self.clip is not None:
            np.clip(noise, -self.clip, self.clip, out=noise)
        return cloud.replace(xyz=cloud.xyz + noise)


class _ElasticField:
    """A smooth random displacement field sampled on a regular grid, evaluated by trilinear
    interpolation (constant extension beyond the grid). Callable as a point map.

    lo: float64 [3] position of node (0, 0, 0); spacing: node distance; grid: float32
    [nx, ny, nz, 3] displacement at the nodes.

    Evaluation is written with numpy rather than ``scipy.ndimage.map_coordinates`` (one call
    per channel, each recomputing the weights: 3x slower), ``RegularGridInterpolator``
    (several times slower again) or ``torch.nn.functional.grid_sample`` (1.2-1.3x slower on
    one thread). The points go in blocks of a few thousand, so the gathered corner values and
    the 7 lerps of every channel stay in the CPU cache; the lerps run in float32 on one
    contiguous row per (corner, channel). The corner values of a small grid come from a cell
    table (per cell one row of 24 values: per channel the 4 (dx, dy) corners at dz = 0 and the
    differences to their dz = 1 neighbours, so the z lerp's subtraction is done once per cell,
    not per point), gathered one row per point by torch's ``index_select`` (a vectorised row
    copy, ~2.5x faster than numpy's ``take`` of 96-byte rows) and transposed to rows per value;
    a large grid (the recipe's first level: ~75k cells, a cell table of 7 MB that is slow to
    build and misses the cache) is gathered from its channel-first node table (1 MB; the z
    differences beside it would double it out of the L2 cache, which measured slower), 24
    values per point, by torch's ``index_select`` along its rows (~1.25x numpy's ``take``). The positions go through each step as one [3, K] array (one numpy pass
    for all three axes), and the flat cell index is one float32 dot product (exact: integral
    values below 2**24). Positions inside a cell are float32 (resolved to ~1e-5 of a cell).
    """

    _BLOCK = 8192  # points per block: gathered rows + their transpose (1.5 MB) stay in L2
    _MAX_CELLS = 16384  # cell table (96 bytes a cell) up to 1.5 MB
    _CHUNK = 4 * _BLOCK  # points whose cells are found together: float64 [3, chunk] (0.8 MB) in L2

    def __init__(self, lo: np.ndarray, spacing: float, grid: np.ndarray):
        self.lo = np.asarray(lo, np.float64)
        self.inv = 1.0 / float(spacing)
        self.shape = tuple(int(s) for s in grid.shape[:3])
        if min(self.shape) < 1:
            raise ValueError(f"elastic field: the grid needs at least one node per axis, got {self.shape}")
        # channel-last node values [nodes, 3] (the grid as given)
        self.table = np.ascontiguousarray(grid, dtype=np.float32).reshape(-1, 3)
        g = self.table.reshape(*self.shape, 3)
        for ax, n in enumerate(self.shape):
            if n == 1:  # one node: constant along this axis (two equal nodes)
                g = np.repeat(g, 2, axis=ax)
        self._nodes = g  # [nx, ny, nz, 3], every axis >= 2 nodes
        self._cell_shape = tuple(s - 1 for s in g.shape[:3])
        self._cells: np.ndarray | None = None
        self._channels: np.ndarray | None = None

    def _cell_table(self) -> np.ndarray:
        """float32 [cells, 24]: per grid cell (x-major) 24 values ordered (channel, a/d, dx, dy):
        ``a`` the corner (dx, dy, 0), ``d`` the corner (dx, dy, 1) minus it (the z lerp's
        difference, the float32 subtraction done once per cell instead of once per point).
        Built on first use."""
        if self._cells is None:
            cx, cy, cz = self._cell_shape
            gc = np.ascontiguousarray(np.moveaxis(self._nodes, -1, 0))
            cells = np.empty((3, 2, 2, 2, cx, cy, cz), np.float32)
            for dx in (0, 1):
                for dy in (0, 1):
                    a = gc[:, dx : dx + cx, dy : dy + cy]
                    cells[:, 0, dx, dy] = a[..., :cz]
                    np.subtract(a[..., 1:], a[..., :cz], out=cells[:, 1, dx, dy])
            self._cells = np.ascontiguousarray(cells.reshape(24, -1).T)
        return self._cells

    def _channel_table(self) -> np.ndarray:
        """float32 [3, nodes]: the node values, one contiguous row per channel (a table of
        differences next to them, as in the cell table, would double it out of the L2 cache)."""
        if self._channels is None:
            self._channels = np.ascontiguousarray(np.moveaxis(self._nodes, -1, 0)).reshape(3, -1)
        return self._channels

    def displacement(self, x: np.ndarray, moved: bool = False) -> np.ndarray:
        """float32 [K, 3] displacement at the points x float [K, 3]; with ``moved``, float32 x
        plus it (the float32 sum ``x + displacement(x)``, added block by block in the cache)."""
        import torch

        x = np.asarray(x)
        if moved and x.dtype != np.float32:
            raise ValueError(f"elastic field: moved=True needs float32 points, got {x.dtype}")
        cshape = self._cell_shape
        use_cells = int(np.prod(cshape)) <= self._MAX_CELLS
        # strides of the cell index: in the cell table, or of the corner node in the node table
        dims = cshape if use_cells else tuple(s + 1 for s in cshape)
        strides = np.array([dims[1] * dims[2], dims[2], 1], np.float32)
        exact32 = int(np.prod(dims)) < 2**24  # integral float32 values: the dot product is exact
        top = (np.array(cshape, np.float32) - np.float32(1e-3))[:, None]
        lo = self.lo[:, None]
        k_points = len(x)
        out = np.empty((3, k_points), np.float32)  # returned as its [K, 3] transpose
        block = self._BLOCK
        chunk = max(1, min(k_points, self._CHUNK))
        # per chunk of points, the three axes as one [3, chunk] array (one pass per step; the
        # scratch is reused, in the cache): positions in nodes, the float64 (x - lo) / spacing
        # rounded to float32 (the weights are float32), clipped to the grid, split into the
        # cell (floor) and the fraction in [0, 1); the flat cell (corner node) index
        pos64 = np.empty((3, chunk), np.float64)
        frac = np.empty((3, chunk), np.float32)
        cell = np.empty((3, chunk), np.float32)
        flat = np.empty(chunk, np.float32 if exact32 else np.float64)
        base = np.empty(chunk, np.intp)
        if use_cells:
            cells = torch.from_numpy(self._cell_table())
            tbase = torch.from_numpy(base)
            rows = np.empty((block, 24), np.float32)
            trows = torch.from_numpy(rows)
            cols = np.empty((24, block), np.float32)
        else:
            chans = torch.from_numpy(self._channel_table())
            # the (dx, dy) corners along z, then their neighbours along z
            sx, sy = int(strides[0]), int(strides[1])
            corner = np.array([dx * sx + dy * sy + dz for dz in (0, 1) for dx in (0, 1) for dy in (0, 1)])
            idx = np.empty(8 * block, np.intp)
            tidx = torch.from_numpy(idx)
            cols = np.empty(24 * block, np.float32)
            tcols = torch.from_numpy(cols)
        for c0 in range(0, k_points, chunk):
            m = min(k_points, c0 + chunk) - c0
            u, f = frac[:, :m], cell[:, :m]
            w = np.subtract(x[c0 : c0 + m].T, lo, out=pos64[:, :m])
            np.multiply(w, self.inv, out=u, casting="same_kind")
            np.clip(u, np.float32(0), top, out=u)
            np.floor(u, out=f)
            u -= f
            if exact32:
                np.matmul(strides, f, out=flat[:m])
            else:
                np.matmul(strides.astype(np.float64), f.astype(np.float64), out=flat[:m])
            np.copyto(base[:m], flat[:m], casting="unsafe")
            fx, fy, fz = u
            for s in range(0, m, block):
                e = min(m, s + block)
                n = e - s
                if use_cells:
                    # a torch row gather: one vectorised copy per row, ~3x numpy's take of rows
                    torch.index_select(cells, 0, tbase[s:e], out=trows[:n])
                    v = cols[:, :n]
                    np.copyto(v, rows[:n].T)  # [24, n]: one contiguous row per value
                else:
                    np.add(base[s:e], corner[:, None], out=idx[: 8 * n].reshape(8, n))
                    # torch's gather along the rows of the channel table: ~1.25x numpy's take
                    torch.index_select(chans, 1, tidx[: 8 * n], out=tcols[: 24 * n].view(3, 8 * n))
                    v = cols[: 24 * n].reshape(3, 2, 4, n)  # channel, dz, (dx dy)
                    v[:, 1] -= v[:, 0]  # b - a: now as the cell table's (a, d)
                v = v.reshape(3, 2, 4, n)  # channel, a/d, (dx dy)
                a, b = v[:, 0], v[:, 1]
                b *= fz[s:e]  # along z: a + (b - a) * fz
                b += a
                b = b.reshape(3, 2, 2, n)  # channel, dx, dy
                a, b = b[:, :, 0], b[:, :, 1]
                b -= a  # along y
                b *= fy[s:e]
                b += a
                a, b = b[:, 0], b[:, 1]
                b -= a  # along x
                b *= fx[s:e]
                o = out[:, c0 + s : c0 + e]
                np.add(a, b, out=o)
                if moved:
                    o += x[c0 + s : c0 + e].T
        # column-major [K, 3]: per-axis work on the moved points (bounds, the next field's
        # positions, the voxel keys) reads contiguous columns
        return out.T

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) + self.displacement(x)


def _box_blur_twice(grid: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """``gain`` times the 3-tap box blur ``(a + b + c) / 3`` with zero padding, applied twice
    along each spatial axis of a channel-last grid float32 [nx, ny, nz, C] (the smoothing of
    SparseConvNet's elastic distortion). Returns a new float32 grid.

    Two passes of the 3-tap box per axis, not one of its 5-tap square: with zero padding they
    differ at the edges (the second pass sees zeros, not blurred values, beyond the grid), as
    in the recipe. Written as shifted sums on the flat array: a spatial neighbour is ``step``
    values away, so every pass is two sums of shifted slices plus the two end nodes of every
    row (2.5x faster than ``scipy.ndimage.correlate1d`` on the recipe's first grid, 55 x 57 x 31
    x 3, measured interleaved; short rows along z cost numpy an inner loop each); the sums are in
    float32 and scaled once at the end (equal to the filter's result to float32 rounding).
    """
    g = np.asarray(grid, np.float32)
    if g.ndim != 4:
        raise ValueError(f"box blur: expected a grid [nx, ny, nz, C], got shape {g.shape}")
    nx, ny, nz, ch = g.shape
    a, b = g, np.empty_like(g)  # the first pass reads the input (not written)
    for rows, n, step in ((1, nx, ny * nz * ch), (nx, ny, nz * ch), (nx * ny, nz, ch)):
        for _ in range(2):
            src, dst = a.reshape(-1), b.reshape(-1)
            # (x + left) + right on the whole array: long contiguous operations ...
            dst[:step] = src[:step]
            np.add(src[step:], src[:-step], out=dst[step:])
            dst[:-step] += src[step:]
            # ... then the first and last node of every row, whose outside neighbour is zero
            s3, d3 = a.reshape(rows, n, step), b.reshape(rows, n, step)
            if n == 1:
                d3[:] = s3
            else:
                np.add(s3[:, 0], s3[:, 1], out=d3[:, 0])
                np.add(s3[:, -1], s3[:, -2], out=d3[:, -1])
            a, b = b, (np.empty_like(g) if a is g else a)
    a *= np.float32(gain / 3.0**6)
    return a


class ElasticDistortion(Transform):
    """Smooth random displacement of space: ``elastic(x, granularity, magnitude)`` of the
    SparseConvNet ScanNet recipe.

    Unit-variance noise (3 channels) on a grid of nodes :attr:`spacing` ``= 2 * granularity``
    apart, centred on the cloud's mean ``c`` with ``max|x - c| // granularity + 3`` nodes per
    axis (so it covers the cloud with half a node to a node of margin), smoothed along each axis
    by the 3-tap box blur applied twice (zero padding outside the grid), multiplied by
    ``magnitude`` and
    evaluated at every point by trilinear interpolation (constant beyond the grid).
    ``granularity`` and ``magnitude`` are in the cloud's current units (voxel units when applied
    after a ``Scale`` to voxels).

    The node spacing is twice the granularity because that is the recipe's geometry: its grid
    has ``n = max|x| // granularity + 3`` nodes per axis spanning ``[-(n-1), n-1] * granularity``
    about the (centred) scene's origin.
    The recipe's parameters therefore give the recipe's field (a grid at spacing
    ``granularity`` stretches nearby point pairs about twice as hard; the test suite compares
    the stretch statistics with an independent implementation of the recipe).

    ``noise="uniform"`` (default) draws centred uniform noise scaled to unit variance: five
    times faster to draw than Gaussian noise, and after the 125-node blur the field is Gaussian
    to within 4% in excess kurtosis. ``noise="normal"`` draws standard normal noise.

    The field is one point map, so normals (through its Jacobian), box centres and keypoints
    move through the same displacement as the points.
    """

    random = True
    _repr_fields = ("granularity", "magnitude", "noise")

    def __init__(self, granularity: float, magnitude: float, noise: str = "uniform"):
        if not granularity > 0:
            raise ValueError(f"ElasticDistortion: granularity must be > 0, got {granularity}")
        if noise not in ("uniform", "normal"):
            raise ValueError(f"ElasticDistortion: noise must be 'uniform' or 'normal', got {noise!r}")
        self.granularity, self.magnitude, self.noise = float(granularity), float(magnitude), noise

    @classmethod
    def sparseconvnet_recipe(cls, scale: float, noise: str = "uniform") -> list[ElasticDistortion]:
        """The two distortions of SparseConvNet's ScanNet recipe, in metres, for ``scale`` voxels
        per metre: (granularity, magnitude) ``(6 s // 50, 40 s / 50)`` then
        ``(20 s // 50, 160 s / 50)`` voxels (the recipe rounds granularities down to whole voxels,
        at least one): (0.1, 0.8) and (0.4, 3.2) m at s = 20, (0.12, 0.8) and (0.4, 3.2) m at 50.
        Apply them before the scale to voxels."""
        if not scale > 0:
            raise ValueError(f"ElasticDistortion.sparseconvnet_recipe: scale must be > 0, got {scale}")
        return [cls(max(1, (g * scale) // 50) / scale, m / 50, noise=noise) for g, m in ((6, 40), (20, 160))]

    @property
    def spacing(self) -> float:
        """Distance between the noise grid's nodes: ``2 * granularity`` (the recipe's grid)."""
        return 2.0 * self.granularity

    def field(self, cloud: PointCloud, rng: np.random.Generator) -> _ElasticField:
        """Draw the displacement field for ``cloud``: a point map float [K, 3] -> [K, 3]."""
        if len(cloud) == 0:
            raise DataFormatError(
                "cannot distort an empty point cloud", path=cloud.meta.get("path"), field="xyz"
            )
        # the recipe's grid: centred on the cloud (its mean), max|x - c| // granularity + 3
        # nodes per axis, spanning +-(nodes - 1) * granularity, so nodes 2 * granularity apart
        x = cloud.xyz
        c = np.array([x[:, k].mean(dtype=np.float64) for k in range(3)])
        lo, hi = bounds(x)
        reach = np.maximum(hi - c, c - lo)
        shape = np.floor(reach / self.granularity).astype(np.int64) + 3
        lo = c - (shape - 1) * self.granularity
        if self.noise == "uniform":
            grid = rng.random((*shape, 3), dtype=np.float32)
            grid -= np.float32(0.5)
            gain = np.sqrt(12.0) * self.magnitude
        else:
            grid = rng.standard_normal((*shape, 3), dtype=np.float32)
            gain = self.magnitude
        return _ElasticField(lo, self.spacing, _box_blur_twice(grid, gain))

    def apply(self, cloud, rng):
        field = self.field(cloud, rng)
        if hasattr(cloud.target, "map_points") or any(k in cloud.attrs for k in cloud.vector_attrs):
            return cloud.map_points(field, linear=None)
        # only the points move: their float32 sum is map_points' float64 sum rounded to
        # float32 (the sum of two float32 is exact in float64), without two [N, 3] conversions
        return cloud.replace(xyz=field.displacement(cloud.xyz, moved=True))


def voxel_floor(xyz: np.ndarray, scale: float) -> np.ndarray:
    """int64 [N, 3] voxel indices ``floor(xyz * scale)`` (computed in float64): the one
    formula shared by the crops and :class:`fastai_sparse.voxelize.Voxelizer`."""
    return np.floor(np.asarray(xyz, np.float64) * float(scale)).astype(np.int64)


def crop(cloud: PointCloud, keep: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> PointCloud:
    """Keep the points ``keep`` (bool [N]); move spatial targets to the crop ``[lo, hi)``.

    Boxes whose centre is outside ``[lo, hi)`` are dropped; keypoints are kept and flagged in
    ``meta["keypoints_in_crop"]``. ``meta["points_cropped"]`` counts removed points.
    """
    out = cloud.select(keep) if not keep.all() else cloud.replace()
    meta = dict(out.meta)
    meta["points_cropped"] = int(meta.get("points_cropped", 0)) + int(len(keep) - keep.sum())
    target = out.target
    if isinstance(target, Boxes) and len(target):
        inside = ((target.centers >= lo) & (target.centers < hi)).all(1)
        if not inside.all():
            meta["boxes_dropped"] = int(meta.get("boxes_dropped", 0)) + int((~inside).sum())
            target = target.select(np.flatnonzero(inside))
    elif isinstance(target, Keypoints):
        inside = ((target.points >= lo) & (target.points < hi)).all(1)
        prev = meta.get("keypoints_in_crop")
        meta["keypoints_in_crop"] = inside if prev is None else (np.asarray(prev) & inside)
    return out.replace(target=target, meta=meta)


class RandomCrop(Transform):
    """Keep the points inside an axis-aligned box of size ``extent`` (cloud units; a number or
    3 numbers) centred on a randomly chosen point of the cloud (so the crop is never empty).
    Coordinates are not moved. See the module docstring for boxes and keypoints."""

    random = True
    _repr_fields = ("extent",)

    def __init__(self, extent: float | Sequence[float]):
        self.extent = extent
        self._e = as_tuple3(extent, "RandomCrop: extent")
        if (self._e <= 0).any():
            raise ValueError(f"RandomCrop: extent must be > 0, got {extent!r}")

    def apply(self, cloud, rng):
        if len(cloud) == 0:
            return cloud
        c = cloud.xyz[rng.integers(len(cloud))].astype(np.float64)
        lo, hi = c - self._e / 2, c + self._e / 2
        return crop(cloud, inside_box(cloud.xyz, lo, hi), lo, hi)


class FitToGrid(Transform):
    """Place the cloud inside the voxel grid ``[0, full_scale)^3`` and crop what is outside.

    ``scale`` is voxels per cloud unit (1 when the cloud is already in voxel units). Along
    each axis where the cloud (times ``scale``) is shorter than ``full_scale`` it is placed at
    a uniformly random position fully inside the grid (centred when ``random_offset`` is
    False); where it is longer, a random window (the central one) of ``full_scale`` voxels is
    kept. Points whose voxel ``floor(x * scale)`` falls outside the grid are removed, so the
    result always voxelizes with ``Voxelizer(scale, full_scale=full_scale, origin="none")``.
    """

    _repr_fields = ("full_scale", "scale", "random_offset")

    def __init__(self, full_scale: int = 4096, scale: float = 1.0, random_offset: bool = True):
        if full_scale <= 0 or scale <= 0:
            raise ValueError(f"FitToGrid: full_scale and scale must be > 0, got {full_scale}, {scale}")
        self.full_scale, self.scale, self.random_offset = int(full_scale), float(scale), bool(random_offset)

    @property
    def random(self) -> bool:  # type: ignore[override]
        return self.random_offset

    def apply(self, cloud, rng):
        if len(cloud) == 0:
            return cloud
        lo, hi = bounds(cloud.xyz)
        m, big = lo * self.scale, hi * self.scale
        slack = self.full_scale - (big - m) - 1e-3  # > 0: room to move; < 0: must crop
        u = rng.random(3) if self.random_offset else np.full(3, 0.5)
        offset = -m + slack * u
        t = offset / self.scale
        if hasattr(cloud.target, "map_points") or any(k in cloud.attrs for k in cloud.vector_attrs):
            out = apply_affine(cloud, np.eye(3), t)
        else:
            # only the points move: x + t in float64 rounded to float32, the values
            # apply_affine gives (its identity matrix product is exact), column by column
            xyz = np.empty_like(cloud.xyz)
            for k in range(3):
                np.add(cloud.xyz[:, k], t[k], out=xyz[:, k], casting="same_kind")
            out = cloud.replace(xyz=xyz)
        # floor(x * scale) in [0, full_scale)  <=>  0 <= x * scale < full_scale (same float64
        # product; at scale 1 the float32 values compare the same, the limit being exact)
        exact32 = self.scale == 1.0 and self.full_scale <= 2**24
        keep = np.ones(len(out), bool)
        # x + t rounded to float32 and the product are monotone in x: the moved extremes are
        # the moved points' extremes, so a cloud inside the grid needs no test per point
        ends = np.stack([lo + t, hi + t]).astype(np.float32)
        ends = ends if exact32 else ends.astype(np.float64) * self.scale
        if (ends >= 0).all() and (ends < self.full_scale).all():
            return crop(out, keep, np.zeros(3), np.full(3, self.full_scale / self.scale))
        for k in range(3):
            v = out.xyz[:, k] if exact32 else out.xyz[:, k].astype(np.float64) * self.scale
            keep &= v >= 0
            keep &= v < self.full_scale
        return crop(out, keep, np.zeros(3), np.full(3, self.full_scale / self.scale))


class PointDropout(Transform):
    """Remove each point independently with probability ``p`` (at least one point is kept)."""

    random = True
    _repr_fields = ("p",)

    def __init__(self, p: float = 0.1):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"PointDropout: p must be in [0, 1), got {p}")
        self.p = float(p)

    def apply(self, cloud, rng):
        if len(cloud) == 0:
            return cloud
        keep = rng.random(len(cloud)) >= self.p
        if not keep.any():
            keep[rng.integers(len(cloud))] = True
        out = cloud.select(keep)
        meta = dict(out.meta)
        meta["points_dropped"] = int(meta.get("points_dropped", 0)) + int(len(keep) - keep.sum())
        return out.replace(meta=meta)
