"""Analytic surface primitives for the procedural synthetic datasets.

A :class:`Part` is one analytic surface (box faces, frustum/cylinder/cone, sphere or
hemisphere, torus or torus arc, flat triangles) placed by an affine map ``x -> A @ x + t``.
:func:`sample_parts` draws points uniformly per unit of *world* surface area over a list of
parts, with exact unit normals (the inverse-transpose of ``A`` applied to the analytic local
normal). When ``A`` is not a similarity (anisotropic scale), the local area element is
distorted by ``|det A| * |A^-T n|``; sampling corrects for it by rejection, so the density
stays uniform in world space.

Everything here is numpy only and deterministic given the ``numpy.random.Generator``.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "SPLITS",
    "Part",
    "SyntheticDataset",
    "confusion_miou",
    "place",
    "rot_x",
    "rot_y",
    "rot_z",
    "sample_parts",
]

_BOX_FACES = "xXyYzZ"  # lower case: the face at -size/2 on that axis, upper case: +size/2


def rot_x(a: float) -> np.ndarray:
    """float64 [3, 3] rotation by ``a`` radians about +x."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rot_y(a: float) -> np.ndarray:
    """float64 [3, 3] rotation by ``a`` radians about +y."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def rot_z(a: float) -> np.ndarray:
    """float64 [3, 3] rotation by ``a`` radians about +z."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


@dataclass
class Part:
    """One analytic surface placed by ``x -> A @ x + t``.

    kind / params (local frame):
      - ``"box"``: ``size`` (3,), centred at the origin; ``faces`` a subset of ``"xXyYzZ"``
        (lower case = face at -size/2, upper case = face at +size/2).
      - ``"frustum"``: radii ``r0`` (at z=0) and ``r1`` (at z=h), height ``h``; side surface,
        plus caps listed in ``caps`` (``"b"`` bottom, ``"t"`` top). ``r1=0`` is a cone.
      - ``"sphere"``: radius ``r``, centred at the origin; ``hemi`` +1 / -1 keeps z >= 0 / z <= 0.
      - ``"torus"``: major radius ``R``, minor radius ``r``, axis z, ``arc`` = (a0, a1) range
        of the angle about z (a full torus by default).
      - ``"tris"``: flat triangles ``tris`` float [T, 3, 3] (normals from the vertex order).
    label / instance / part / rgb: what the sampled points of this part carry.
    """

    kind: str
    params: dict[str, Any]
    A: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    label: int = 0
    instance: int = 0
    part: int = 0
    rgb: np.ndarray | None = None

    def moved(self, A: np.ndarray, t: np.ndarray) -> Part:
        """This part after the extra map ``x -> A @ x + t`` (applied after its own)."""
        A = np.asarray(A, np.float64)
        return Part(
            self.kind,
            self.params,
            A @ self.A,
            A @ self.t + np.asarray(t, np.float64),
            self.label,
            self.instance,
            self.part,
            self.rgb,
        )

    # ---- local geometry -------------------------------------------------------------------
    def local_area(self) -> float:
        p = self.params
        if self.kind == "box":
            sx, sy, sz = p["size"]
            per = {"x": sy * sz, "y": sx * sz, "z": sx * sy}
            return float(sum(per[f.lower()] for f in p.get("faces", _BOX_FACES)))
        if self.kind == "frustum":
            r0, r1, h = p["r0"], p["r1"], p["h"]
            area = np.pi * (r0 + r1) * np.hypot(h, r0 - r1)
            caps = p.get("caps", "")
            area += np.pi * r0**2 * ("b" in caps) + np.pi * r1**2 * ("t" in caps)
            return float(area)
        if self.kind == "sphere":
            return float(4 * np.pi * p["r"] ** 2 / (2 if p.get("hemi", 0) else 1))
        if self.kind == "torus":
            a0, a1 = p.get("arc", (0.0, 2 * np.pi))
            return float((a1 - a0) * p["R"] * 2 * np.pi * p["r"])
        if self.kind == "tris":
            tri = np.asarray(p["tris"], np.float64)
            return float(
                0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
            )
        raise ValueError(f"unknown primitive kind {self.kind!r}")

    def local_bounds(self) -> np.ndarray:
        """float64 [2, 3]: min and max corner of a local box containing the surface."""
        p = self.params
        if self.kind == "box":
            s = np.asarray(p["size"], np.float64) / 2
            return np.stack([-s, s])
        if self.kind == "frustum":
            r = max(p["r0"], p["r1"])
            return np.array([[-r, -r, 0.0], [r, r, p["h"]]])
        if self.kind == "sphere":
            r, hemi = p["r"], p.get("hemi", 0)
            return np.array([[-r, -r, -r if hemi <= 0 else 0.0], [r, r, r if hemi >= 0 else 0.0]])
        if self.kind == "torus":
            o, r = p["R"] + p["r"], p["r"]
            return np.array([[-o, -o, -r], [o, o, r]])
        if self.kind == "tris":
            tri = np.asarray(p["tris"], np.float64).reshape(-1, 3)
            return np.stack([tri.min(0), tri.max(0)])
        raise ValueError(f"unknown primitive kind {self.kind!r}")

    def bounds(self) -> np.ndarray:
        """float64 [2, 3]: axis-aligned bounds (in the placed frame) of the local bounding box."""
        lo, hi = self.local_bounds()
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        w = corners @ self.A.T + self.t
        return np.stack([w.min(0), w.max(0)])

    def sample_local(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points uniform over the local surface and their unit normals, float64 [n, 3] each."""
        p = self.params
        if n == 0:
            return np.zeros((0, 3)), np.zeros((0, 3))
        if self.kind == "box":
            return _sample_box(rng, n, np.asarray(p["size"], np.float64), p.get("faces", _BOX_FACES))
        if self.kind == "frustum":
            return _sample_frustum(rng, n, p["r0"], p["r1"], p["h"], p.get("caps", ""))
        if self.kind == "sphere":
            v = rng.normal(size=(n, 3))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            if p.get("hemi", 0):
                v[:, 2] = np.abs(v[:, 2]) * np.sign(p["hemi"])
            return v * p["r"], v
        if self.kind == "torus":
            return _sample_torus(rng, n, p["R"], p["r"], p.get("arc", (0.0, 2 * np.pi)))
        if self.kind == "tris":
            return _sample_tris(rng, n, np.asarray(p["tris"], np.float64))
        raise ValueError(f"unknown primitive kind {self.kind!r}")

    # ---- placed geometry ------------------------------------------------------------------
    def _stretch(self) -> tuple[float, float, bool]:
        """(|det A|, max area factor, whether A is a similarity)."""
        det = abs(float(np.linalg.det(self.A)))
        sv = np.linalg.svd(self.A, compute_uv=False)
        similar = bool(sv.max() - sv.min() <= 1e-9 * sv.max())
        return det, det / sv.min(), similar

    def area(self, rng: np.random.Generator) -> float:
        """World surface area (estimated from 256 local samples when A is not a similarity)."""
        det, _, similar = self._stretch()
        if similar:
            return self.local_area() * det ** (2 / 3)
        _, nrm = self.sample_local(rng, 256)
        return self.local_area() * float(self._area_factor(nrm).mean())

    def _area_factor(self, local_normals: np.ndarray) -> np.ndarray:
        inv_t = np.linalg.inv(self.A).T
        return abs(np.linalg.det(self.A)) * np.linalg.norm(local_normals @ inv_t.T, axis=1)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points uniform per unit of world area and unit normals, float64 [n, 3] each."""
        _, fmax, similar = self._stretch()
        if similar or n == 0:
            pts, nrm = self.sample_local(rng, n)
        else:  # rejection: accept with probability (world area factor) / (its upper bound)
            got_p, got_n, have = [], [], 0
            while have < n:
                pts, nrm = self.sample_local(rng, 2 * (n - have) + 16)
                keep = rng.random(len(pts)) * fmax <= self._area_factor(nrm)
                got_p.append(pts[keep])
                got_n.append(nrm[keep])
                have += int(keep.sum())
            pts, nrm = np.concatenate(got_p)[:n], np.concatenate(got_n)[:n]
        world = pts @ self.A.T + self.t
        wn = nrm @ np.linalg.inv(self.A)  # rows: (A^-T n)^T
        wn /= np.maximum(np.linalg.norm(wn, axis=1, keepdims=True), 1e-12)
        return world, wn


def _sample_box(rng, n, size, faces):
    faces = [f for f in _BOX_FACES if f in faces]
    per = {"x": size[1] * size[2], "y": size[0] * size[2], "z": size[0] * size[1]}
    areas = np.array([per[f.lower()] for f in faces])
    which = rng.choice(len(faces), size=n, p=areas / areas.sum())
    pts = (rng.random((n, 3)) - 0.5) * size
    nrm = np.zeros((n, 3))
    for k, f in enumerate(faces):
        m = which == k
        ax = "xyz".index(f.lower())
        sign = 1.0 if f.isupper() else -1.0
        pts[m, ax] = sign * size[ax] / 2
        nrm[m, ax] = sign
    return pts, nrm


def _sample_frustum(rng, n, r0, r1, h, caps):
    side = np.pi * (r0 + r1) * np.hypot(h, r0 - r1)
    areas = np.array([side, np.pi * r0**2 * ("b" in caps), np.pi * r1**2 * ("t" in caps)])
    which = rng.choice(3, size=n, p=areas / areas.sum())
    theta = rng.uniform(0, 2 * np.pi, n)
    c, s = np.cos(theta), np.sin(theta)
    pts, nrm = np.zeros((n, 3)), np.zeros((n, 3))
    m = which == 0
    u = rng.random(int(m.sum()))
    if abs(r1 - r0) < 1e-12:
        f = u
    else:  # density along the height proportional to the radius r0 + (r1 - r0) f
        a, b = (r1 - r0) / 2, r0
        f = (-b + np.sqrt(b * b + 4 * a * u * (a + b))) / (2 * a)
    r = r0 + (r1 - r0) * f
    pts[m] = np.stack([r * c[m], r * s[m], f * h], 1)
    nn = np.stack([h * c[m], h * s[m], np.full(m.sum(), r0 - r1)], 1)
    nrm[m] = nn / np.linalg.norm(nn, axis=1, keepdims=True)
    for k, (rad, z, nz) in ((1, (r0, 0.0, -1.0)), (2, (r1, h, 1.0))):
        m = which == k
        rr = rad * np.sqrt(rng.random(int(m.sum())))
        pts[m] = np.stack([rr * c[m], rr * s[m], np.full(m.sum(), z)], 1)
        nrm[m, 2] = nz
    return pts, nrm


def _sample_torus(rng, n, R, r, arc):
    phi_all, th_all, have = [], [], 0
    while have < n:  # tube angle theta has density proportional to R + r cos(theta)
        k = 2 * (n - have) + 16
        th = rng.uniform(0, 2 * np.pi, k)
        keep = rng.random(k) * (R + r) <= R + r * np.cos(th)
        th_all.append(th[keep])
        phi_all.append(rng.uniform(arc[0], arc[1], k)[keep])
        have += int(keep.sum())
    th, phi = np.concatenate(th_all)[:n], np.concatenate(phi_all)[:n]
    nrm = np.stack([np.cos(th) * np.cos(phi), np.cos(th) * np.sin(phi), np.sin(th)], 1)
    centre = np.stack([R * np.cos(phi), R * np.sin(phi), np.zeros(n)], 1)
    return centre + r * nrm, nrm


def _sample_tris(rng, n, tris):
    e1, e2 = tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    cr = np.cross(e1, e2)
    area = np.linalg.norm(cr, axis=1)
    which = rng.choice(len(tris), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    pts = tris[which, 0] + u[:, None] * e1[which] + v[:, None] * e2[which]
    return pts, cr[which] / area[which, None]


def sample_parts(parts: list[Part], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sample ``n`` points over ``parts``, uniformly per unit of world surface area.

    Returns a dict with ``xyz`` float64 [n, 3], ``normals`` float64 [n, 3] (unit),
    ``part_index`` int64 [n] (index into ``parts``), ``label``, ``instance``, ``part`` int64 [n].
    Points are grouped by part (callers shuffle if they want).
    """
    areas = np.array([p.area(rng) for p in parts])
    counts = rng.multinomial(n, areas / areas.sum())
    xyz, nrm = [], []
    for p, c in zip(parts, counts):
        a, b = p.sample(rng, int(c))
        xyz.append(a)
        nrm.append(b)
    idx = np.repeat(np.arange(len(parts)), counts)
    return {
        "xyz": np.concatenate(xyz),
        "normals": np.concatenate(nrm),
        "part_index": idx.astype(np.int64),
        "label": np.array([p.label for p in parts], np.int64)[idx],
        "instance": np.array([p.instance for p in parts], np.int64)[idx],
        "part": np.array([p.part for p in parts], np.int64)[idx],
    }


def place(parts: list[Part], A: np.ndarray, t: np.ndarray, **set_fields: Any) -> list[Part]:
    """``parts`` moved by ``x -> A @ x + t``, with fields (label, instance, rgb, ...) set."""
    out = []
    for p in parts:
        q = p.moved(A, t)
        for k, v in set_fields.items():
            setattr(q, k, v)
        out.append(q)
    return out


# ---- shared dataset machinery ---------------------------------------------------------------

SPLITS: dict[str, int] = {"train": 0, "valid": 1, "test": 2}


def uniform(rng: np.random.Generator, lo_hi: tuple[float, float] | float) -> float:
    """A float drawn uniformly from ``lo_hi`` (a (lo, hi) pair), or ``lo_hi`` itself if a number."""
    if np.ndim(lo_hi) == 0:
        return float(lo_hi)
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi))


def confusion_miou(pred: np.ndarray, true: np.ndarray, num_classes: int) -> float:
    """Mean IoU over classes present in ``true`` or ``pred`` (int arrays [N], one confusion matrix)."""
    cm = np.bincount(true * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else 1.0


def _array_bytes(obj: Any) -> int:
    """Bytes of the numpy arrays held by ``obj`` (its fields, dicts, lists and tuples)."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_array_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(_array_bytes(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    return 0


class SyntheticDataset(Sequence):
    """Base of the procedural datasets: a lazy, deterministic sequence of PointClouds.

    Item ``i`` of split ``split`` is generated from ``numpy.random.default_rng([seed, split
    code, stream, i])`` (split codes: train 0, valid 1, test 2; ``stream`` differs per dataset
    class), so it is identical on every call and independent of the other items and splits.

    Generated items are kept in memory, up to :attr:`cache_bytes` of array data per dataset
    (least recently used first out): generating a room takes about 9 ms, more than the
    augmentation and voxelization of it, and a training run asks for every item once per
    epoch. Every access returns a deep copy, so changing a returned item never changes the
    next one, and changing the dataset's settings (``ds.points = 4000``) empties the cache.
    The cache is not pickled; a DataLoader worker process keeps what it generates for as long
    as it lives (one epoch unless the workers are persistent).
    """

    name = "synthetic"
    _stream = 0
    #: Bytes of generated items kept per dataset (0: none); an 8000-point room takes 344 kB.
    cache_bytes: int = 256 << 20

    def __init__(self, n: int, split: str, seed: int):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{type(self).__name__}: n must be an integer >= 0, got {n!r}")
        if split not in SPLITS:
            raise ValueError(f"{type(self).__name__}: split must be one of {list(SPLITS)}, got {split!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"{type(self).__name__}: seed must be an integer >= 0, got {seed!r}")
        self.n, self.split, self.seed = int(n), split, int(seed)
        self._init_cache()

    def _init_cache(self) -> None:
        self._cache: OrderedDict[int, tuple[Any, int]] = OrderedDict()
        self._cache_used = 0
        self._cache_lock = threading.Lock()
        self._cache_settings: str | None = None

    def _settings(self) -> str:
        """The generator's settings (every attribute but the cache's), as a comparable string."""
        return repr(sorted((k, v) for k, v in vars(self).items() if not k.startswith("_cache")))

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_cache")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_cache()

    def __len__(self) -> int:
        return self.n

    def rng(self, i: int) -> np.random.Generator:
        """The random generator of item ``i`` (fresh on every call)."""
        return np.random.default_rng([self.seed, SPLITS[self.split], self._stream, int(i)])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not isinstance(i, (int, np.integer)):
            raise TypeError(
                f"{type(self).__name__} indices must be integers or slices, got {type(i).__name__}"
            )
        j = int(i) + self.n if i < 0 else int(i)
        if not 0 <= j < self.n:
            raise IndexError(f"{type(self).__name__} index {i} out of range for {self.n} items")
        settings = self._settings()
        with self._cache_lock:
            if settings != self._cache_settings:  # new, or the settings changed
                self._cache.clear()
                self._cache_used, self._cache_settings = 0, settings
            hit = self._cache.get(j)
            if hit is not None:
                self._cache.move_to_end(j)
        if hit is not None:
            return copy.deepcopy(hit[0])
        cloud = self._build(j)
        cloud.meta.update(id=f"{self.name}/{self.split}/{j}", index=j, split=self.split, seed=self.seed)
        return copy.deepcopy(cloud) if self._keep(j, cloud, settings) else cloud

    def _keep(self, j: int, cloud: Any, settings: str) -> bool:
        """Cache item ``j`` (built with ``settings``) unless it alone exceeds
        :attr:`cache_bytes`, evicting the least recently used items beyond it (never ``j``
        itself: it fits); whether it was kept."""
        size = _array_bytes(cloud)
        with self._cache_lock:
            if size > self.cache_bytes or settings != self._cache_settings or j in self._cache:
                return False
            self._cache[j] = (cloud, size)
            self._cache_used += size
            while self._cache_used > self.cache_bytes:
                _, (_, dropped) = self._cache.popitem(last=False)
                self._cache_used -= dropped
            return True

    def __iter__(self):
        for j in range(self.n):
            yield self[j]

    def _build(self, i: int):  # pragma: no cover - abstract
        """Generate item ``i`` (a PointCloud) from ``self.rng(i)``."""
        raise NotImplementedError

    def _repr_args(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self._repr_args()
        return (
            f"{type(self).__name__}(n={self.n}, split={self.split!r}, seed={self.seed}"
            + (", " + extra if extra else "")
            + ")"
        )
