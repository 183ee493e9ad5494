"""Transform base classes, composition and seeded random states.

A transform is a callable ``t(cloud, rng=None) -> PointCloud`` that never mutates its input.
Random transforms draw every random number from ``rng`` (a :class:`numpy.random.Generator`),
so a sample is reproducible from ``sample_rng(seed, epoch, index)``; given ``rng=None`` they
draw from a fresh, unseeded generator.

Consecutive affine transforms (:class:`AffineTransform` subclasses) inside a :class:`Compose`
are fused into one point map: each draws its parameters from ``rng`` in order, the matrices
are multiplied, and the cloud is mapped once. The result is the same map (up to float
rounding) as applying them one by one, and costs one pass over the points instead of several.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..geometry import PointCloud

__all__ = [
    "AffineTransform",
    "Compose",
    "RandomApply",
    "Transform",
    "apply_affine",
    "ensure_rng",
    "sample_rng",
]


def sample_rng(seed: int, epoch: int = 0, index: int = 0) -> np.random.Generator:
    """The random state of one sample: a Generator seeded by ``(seed, epoch, index)``.

    The same triple always gives the same stream; different triples give independent streams
    (numpy's SeedSequence mixes the three integers).
    """
    for name, v in (("seed", seed), ("epoch", epoch), ("index", index)):
        if int(v) < 0:
            raise ValueError(f"sample_rng: {name} must be >= 0, got {v}")
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def ensure_rng(rng: np.random.Generator | None) -> np.random.Generator:
    """``rng`` itself, or a fresh unseeded Generator when it is None."""
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, np.ndarray):
        return repr(np.round(v, 6).tolist())
    if isinstance(v, tuple):
        inner = ", ".join(_fmt(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)


class Transform:
    """Base class of the point-cloud transforms.

    Subclasses implement :meth:`apply` and list the constructor arguments shown by ``repr``
    in ``_repr_fields``. ``random`` says whether the transform draws from ``rng``.
    """

    random: bool = False
    _repr_fields: tuple[str, ...] = ()

    def apply(self, cloud: PointCloud, rng: np.random.Generator) -> PointCloud:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, cloud: PointCloud, rng: np.random.Generator | None = None) -> PointCloud:
        if not isinstance(cloud, PointCloud):
            raise TypeError(f"{type(self).__name__} expects a PointCloud, got {type(cloud).__name__}")
        return self.apply(cloud, ensure_rng(rng) if self.random else rng)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_fmt(getattr(self, k))}" for k in self._repr_fields)
        return f"{type(self).__name__}({args})"


def _affine_fn(matrix: np.ndarray, translation: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    m = np.asarray(matrix, np.float64)
    t = np.asarray(translation, np.float64)

    def fn(x: np.ndarray) -> np.ndarray:
        # on [3, N] rows: a [N, 3] @ [3, 3] product or a broadcast over rows of 3 is several
        # times slower in numpy; float32 input is cast and transposed in one pass
        out = m @ np.array(np.asarray(x).T, dtype=np.float64, order="C")
        out += t[:, None]
        return out.T

    return fn


def apply_affine(cloud: PointCloud, matrix: np.ndarray, translation: np.ndarray | None = None) -> PointCloud:
    """Map ``cloud`` by ``x -> matrix @ x + translation`` (normals, boxes, keypoints follow).

    matrix: float [3, 3], must be invertible; translation: float [3] or None.
    """
    m = np.asarray(matrix, np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"affine matrix must have shape (3, 3), got {m.shape}")
    if not np.isfinite(m).all() or abs(np.linalg.det(m)) < 1e-12:
        raise ValueError(f"affine matrix must be finite and invertible, got {m.tolist()}")
    t = np.zeros(3) if translation is None else np.asarray(translation, np.float64).reshape(3)
    if hasattr(cloud.target, "map_points") or any(k in cloud.attrs for k in cloud.vector_attrs):
        return cloud.map_points(_affine_fn(m, t), linear=m)
    # only the points move: map_points' values (the same float64 product and sum, rounded to
    # float32), without its [N, 3] float64 copies
    return cloud.replace(xyz=_affine_points32(cloud.xyz, m, t))


_AFFINE_BLOCK = 8192  # points per block: the float64 [3, block] scratch stays in L2


def _affine_points32(x: np.ndarray, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """float32 [N, 3] (column-major) ``m @ x + t`` of points x float [N, 3]: ``_affine_fn``'s
    float64 product (the same BLAS call on [3, n] rows) and sum rounded to float32, in blocks
    whose float64 scratch stays in the cache (1.5x faster than whole-array passes)."""
    x = np.asarray(x)
    n = len(x)
    block = max(1, min(n, _AFFINE_BLOCK))
    buf, prod = np.empty((3, block)), np.empty((3, block))
    out = np.empty((3, n), np.float32)
    tcol = np.asarray(t, np.float64)[:, None]
    for s in range(0, n, block):
        e = min(n, s + block)
        b, p = buf[:, : e - s], prod[:, : e - s]
        np.copyto(b, x[s:e].T)
        np.matmul(m, b, out=p)
        np.add(p, tcol, out=out[:, s:e], casting="same_kind")
    return out.T


class AffineTransform(Transform):
    """A transform that is an affine map ``x -> A x + t`` whose parameters do not depend on
    the cloud. Subclasses implement :meth:`params`; :class:`Compose` fuses runs of them."""

    def params(self, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        """(A float64 [3, 3], t float64 [3]), drawing from ``rng`` when random."""
        raise NotImplementedError

    def apply(self, cloud: PointCloud, rng: np.random.Generator | None) -> PointCloud:
        a, t = self.params(rng)
        return apply_affine(cloud, a, t)


class Compose(Transform):
    """Apply transforms in order: ``Compose([t1, t2])(cloud, rng) == t2(t1(cloud, rng), rng)``.

    Runs of consecutive :class:`AffineTransform` are fused into one point map (see the module
    docstring). Any callable ``(cloud, rng) -> cloud`` may be an element.
    """

    def __init__(self, transforms: Iterable[Callable] = ()):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    @property
    def random(self) -> bool:  # type: ignore[override]
        return any(getattr(t, "random", True) for t in self.transforms)

    def __call__(self, cloud: PointCloud, rng: np.random.Generator | None = None) -> PointCloud:
        rng = ensure_rng(rng) if self.random else rng
        i, ts = 0, self.transforms
        while i < len(ts):
            if isinstance(ts[i], AffineTransform):
                a, t = np.eye(3), np.zeros(3)
                while i < len(ts) and isinstance(ts[i], AffineTransform):
                    ai, ti = ts[i].params(rng)
                    a, t = ai @ a, ai @ t + ti
                    i += 1
                cloud = apply_affine(cloud, a, t)
            else:
                cloud = ts[i](cloud, rng)
                i += 1
        return cloud

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, i):
        return self.transforms[i]

    def __repr__(self) -> str:
        if not self.transforms:
            return "Compose([])"
        inner = "".join(f"\n  {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class RandomApply(Transform):
    """Apply ``transform`` with probability ``p`` (one draw from ``rng`` per call)."""

    random = True
    _repr_fields = ("transform", "p")

    def __init__(self, transform: Callable, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomApply: p must be in [0, 1], got {p}")
        self.transform, self.p = transform, float(p)

    def apply(self, cloud: PointCloud, rng: np.random.Generator) -> PointCloud:
        return self.transform(cloud, rng) if rng.random() < self.p else cloud


def as_tuple3(v: float | Sequence[float], name: str) -> np.ndarray:
    """A float64 [3] array from a scalar or a 3-sequence."""
    a = np.asarray(v, np.float64)
    if a.ndim == 0:
        a = np.full(3, float(a))
    if a.shape != (3,):
        raise ValueError(f"{name} must be a number or 3 numbers, got {v!r}")
    return a
