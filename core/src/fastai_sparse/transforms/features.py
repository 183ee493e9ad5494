"""Per-point feature transforms: colours, noise, height, normals, constant features.

They change ``cloud.attrs`` only (never the coordinates) and return a new cloud. Colour
transforms expect ``rgb`` as read from files (uint8 or float 0..255) for
:class:`NormalizeColor`, and normalised colours (float32, about [-1, 1]) for the jitters
that follow it; every output is float32.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataFormatError
from ..geometry import PointCloud
from .compose import Transform

__all__ = [
    "AddHeight",
    "AddNormals",
    "BrightnessContrast",
    "ChromaticJitter",
    "ColorShift",
    "FeatureNoise",
    "NormalizeColor",
    "Ones",
]


def _attr(cloud: PointCloud, key: str, who: str) -> np.ndarray:
    if key not in cloud.attrs:
        raise DataFormatError(
            f"{who} needs the per-point attribute {key!r}; the cloud has {sorted(cloud.attrs)}",
            path=cloud.meta.get("path"),
            field=key,
        )
    return cloud.attrs[key]


class NormalizeColor(Transform):
    """``attrs[key] = (attrs[key] - mean) / std`` as float32 (default: rgb 0..255 -> [-1, 1])."""

    _repr_fields = ("mean", "std", "key")

    def __init__(self, mean: float = 127.5, std: float = 127.5, key: str = "rgb"):
        if std == 0:
            raise ValueError("NormalizeColor: std must be non-zero")
        self.mean, self.std, self.key = mean, std, key

    def apply(self, cloud, rng=None):
        c = _attr(cloud, self.key, "NormalizeColor").astype(np.float32)
        c -= np.float32(self.mean) if np.ndim(self.mean) == 0 else np.asarray(self.mean, np.float32)
        c /= np.float32(self.std) if np.ndim(self.std) == 0 else np.asarray(self.std, np.float32)
        return cloud.with_attrs(**{self.key: c})


class ColorShift(Transform):
    """Add one random shift per scene, ``sigma * randn(C)``, to every point's colour."""

    random = True
    _repr_fields = ("sigma", "key")

    def __init__(self, sigma: float = 0.1, key: str = "rgb"):
        self.sigma, self.key = float(sigma), key

    def apply(self, cloud, rng):
        c = _attr(cloud, self.key, "ColorShift")
        shift = (self.sigma * rng.standard_normal(c.shape[1:])).astype(np.float32)
        c = c.astype(np.float32, copy=False)
        out = np.empty_like(c)
        if c.ndim == 2:  # column by column: a broadcast over rows of 3 is 2x slower in numpy
            for k in range(c.shape[1]):
                np.add(c[:, k], shift[k], out=out[:, k])
        else:
            np.add(c, shift, out=out)
        return cloud.with_attrs(**{self.key: out})


class BrightnessContrast(Transform):
    """``c -> (c - mean(c)) * k + mean(c) + b`` with ``k ~ U(1 - contrast, 1 + contrast)`` and
    ``b ~ U(-brightness, brightness)``, one draw per scene (normalised colour units)."""

    random = True
    _repr_fields = ("brightness", "contrast", "key")

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1, key: str = "rgb"):
        self.brightness, self.contrast, self.key = float(brightness), float(contrast), key

    def apply(self, cloud, rng):
        c = _attr(cloud, self.key, "BrightnessContrast").astype(np.float32)
        k = rng.uniform(1 - self.contrast, 1 + self.contrast)
        b = rng.uniform(-self.brightness, self.brightness)
        m = c.mean(0, keepdims=True) if len(c) else 0.0
        return cloud.with_attrs(**{self.key: ((c - m) * k + m + b).astype(np.float32)})


class FeatureNoise(Transform):
    """Add independent Gaussian noise ``sigma * randn`` to every value of ``attrs[key]``."""

    random = True
    _repr_fields = ("key", "sigma")

    def __init__(self, key: str, sigma: float = 0.01):
        self.key, self.sigma = key, float(sigma)

    def apply(self, cloud, rng):
        v = _attr(cloud, self.key, "FeatureNoise").astype(np.float32)
        return cloud.with_attrs(**{self.key: v + self.sigma * rng.standard_normal(v.shape, dtype=np.float32)})


class ChromaticJitter(FeatureNoise):
    """Independent Gaussian noise on every point's colour channels (``FeatureNoise("rgb")``)."""

    _repr_fields = ("sigma", "key")

    def __init__(self, sigma: float = 0.05, key: str = "rgb"):
        super().__init__(key, sigma)


class AddHeight(Transform):
    """``attrs[key]`` = float32 [N, 1]: height above the lowest point along ``axis``."""

    _repr_fields = ("axis", "key")

    def __init__(self, axis: str = "z", key: str = "height"):
        if axis not in ("x", "y", "z"):
            raise ValueError(f"AddHeight: axis must be 'x', 'y' or 'z', got {axis!r}")
        self.axis, self.key = axis, key

    def apply(self, cloud, rng=None):
        h = cloud.xyz[:, "xyz".index(self.axis)].astype(np.float32)
        if len(h):
            h = h - h.min()
        return cloud.with_attrs(**{self.key: h[:, None]})


class Ones(Transform):
    """``attrs[key]`` = float32 [N, 1] of ones (a constant input feature)."""

    _repr_fields = ("key",)

    def __init__(self, key: str = "ones"):
        self.key = key

    def apply(self, cloud, rng=None):
        return cloud.with_attrs(**{self.key: np.ones((len(cloud), 1), np.float32)})


class AddNormals(Transform):
    """Make sure ``attrs["normals"]`` exists.

    Normals already present (from a mesh: see the mesh transforms) are kept. Otherwise, with
    ``estimate=True``, each point's normal is the direction of least variance of its ``k``
    nearest neighbours (PCA, scipy's cKDTree), oriented away from the cloud's centroid
    (outward for closed shapes; the sign is otherwise arbitrary). With ``estimate=False`` a
    missing attribute raises DataFormatError.
    """

    _repr_fields = ("k", "estimate")

    def __init__(self, k: int = 16, estimate: bool = True):
        self.k, self.estimate = int(k), bool(estimate)

    def apply(self, cloud, rng=None):
        if "normals" in cloud.attrs:
            return cloud
        path = cloud.meta.get("path")
        if not self.estimate:
            raise DataFormatError(
                "no 'normals' attribute; compute them from the mesh (vertex normals) or use "
                "AddNormals(estimate=True)",
                path=path,
                field="normals",
            )
        if len(cloud) < 3:
            raise DataFormatError(
                f"cannot estimate normals from {len(cloud)} point(s); need at least 3",
                path=path,
                field="normals",
            )
        from scipy.spatial import cKDTree

        x = cloud.xyz.astype(np.float64)
        k = min(self.k, len(x))
        _, nb = cKDTree(x).query(x, k=k)
        p = x[nb]  # [N, k, 3]
        p -= p.mean(1, keepdims=True)
        cov = np.einsum("nki,nkj->nij", p, p)
        _, vecs = np.linalg.eigh(cov)
        n = vecs[:, :, 0]  # eigenvector of the smallest eigenvalue
        flip = np.einsum("ni,ni->n", n, x - x.mean(0)) < 0
        n[flip] = -n[flip]
        return cloud.with_attrs(normals=n.astype(np.float32))
