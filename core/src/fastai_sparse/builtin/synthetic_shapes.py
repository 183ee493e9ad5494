"""Procedural object datasets: shape classification, ShapeNet-like part segmentation, keypoints.

Every object is a union of analytic surfaces (:mod:`.synthetic_primitives`) sampled uniformly
per unit area, with exact unit normals. See :class:`SyntheticShapes`, :class:`SyntheticParts`
and :class:`SyntheticKeypoints`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..geometry import Keypoints, PointCloud
from .synthetic_primitives import (
    Part,
    SyntheticDataset,
    place,
    rot_x,
    rot_y,
    rot_z,
    sample_parts,
    uniform,
)

__all__ = ["PART_CATEGORIES", "SHAPE_BUILDERS", "SyntheticKeypoints", "SyntheticParts", "SyntheticShapes"]

Builder = Callable[[np.random.Generator], list[Part]]


def _box(size, center, faces="xXyYzZ", part=0) -> Part:
    return Part(
        "box", {"size": tuple(float(s) for s in size), "faces": faces}, t=np.asarray(center, float), part=part
    )


def _leg(x, y, w, h, part=0) -> Part:
    """A vertical square leg from z=0 to z=h (side faces only)."""
    return _box((w, w, h), (x, y, h / 2), "xXyY", part)


def _centered(parts: list[Part]) -> list[Part]:
    """Parts shifted so the centre of their joint bounding box is the origin."""
    b = np.array([p.bounds() for p in parts])
    c = (b[:, 0].min(0) + b[:, 1].max(0)) / 2
    return place(parts, np.eye(3), -c)


# ---- composite objects (local part index in Part.part) ----------------------------------------


def build_table(rng: np.random.Generator) -> list[Part]:
    """Parts: 0 top, 1 leg. Rectangular top on four legs, or a round top on a pedestal."""
    h, th = uniform(rng, (0.55, 0.75)), 0.05
    if rng.random() < 0.7:
        L, W = uniform(rng, (1.2, 1.8)), uniform(rng, (0.6, 0.95))
        lw, ins = uniform(rng, (0.05, 0.09)), uniform(rng, (0.02, 0.1))
        parts = [_box((L, W, th), (0, 0, h - th / 2), part=0)]
        parts += [
            _leg(sx * (L / 2 - ins - lw / 2), sy * (W / 2 - ins - lw / 2), lw, h - th, part=1)
            for sx in (-1, 1)
            for sy in (-1, 1)
        ]
    else:
        r = uniform(rng, (0.45, 0.7))
        parts = [
            Part("frustum", {"r0": r, "r1": r, "h": th, "caps": "bt"}, t=np.array([0, 0, h - th]), part=0),
            Part("frustum", {"r0": 0.05, "r1": 0.05, "h": h - th}, part=1),
            Part("frustum", {"r0": 0.3 * r + 0.1, "r1": 0.3 * r + 0.1, "h": 0.03, "caps": "t"}, part=1),
        ]
    return _centered(parts)


def build_chair(rng: np.random.Generator, arms: bool | None = None) -> list[Part]:
    """Parts: 0 back, 1 seat, 2 leg, 3 arm (arms on about half the chairs)."""
    s, sh, th = uniform(rng, (0.5, 0.65)), uniform(rng, (0.42, 0.52)), 0.05
    bh, lw = uniform(rng, (0.45, 0.65)), uniform(rng, (0.04, 0.06))
    parts = [
        _box((s, th, bh), (0, -s / 2 + th / 2, sh + bh / 2), part=0),
        _box((s, s, th), (0, 0, sh - th / 2), part=1),
    ]
    parts += [
        _leg(sx * (s / 2 - lw / 2), sy * (s / 2 - lw / 2), lw, sh - th, part=2)
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]
    if arms if arms is not None else rng.random() < 0.5:
        ah, aw = uniform(rng, (0.18, 0.25)), 0.05
        parts += [
            _box((aw, s * 0.8, aw), (sx * (s / 2 - aw / 2), 0.1 * s, sh + ah), part=3) for sx in (-1, 1)
        ]
        parts += [
            _box((aw, aw, ah), (sx * (s / 2 - aw / 2), 0.45 * s, sh + ah / 2), "xXyY", part=3)
            for sx in (-1, 1)
        ]
    return _centered(parts)


def build_lamp(rng: np.random.Generator) -> list[Part]:
    """Parts: 0 base, 1 pole, 2 shade (a truncated cone open at both ends)."""
    br, ph = uniform(rng, (0.18, 0.3)), uniform(rng, (1.0, 1.5))
    sr0, sr1, sh = uniform(rng, (0.25, 0.4)), uniform(rng, (0.1, 0.2)), uniform(rng, (0.25, 0.4))
    return _centered(
        [
            Part("frustum", {"r0": br, "r1": br * 0.8, "h": 0.06, "caps": "t"}, part=0),
            Part("frustum", {"r0": 0.03, "r1": 0.03, "h": ph}, t=np.array([0, 0, 0.06]), part=1),
            Part(
                "frustum", {"r0": sr0, "r1": sr1, "h": sh}, t=np.array([0, 0, 0.06 + ph - 0.6 * sh]), part=2
            ),
        ]
    )


def build_mug(rng: np.random.Generator) -> list[Part]:
    """Parts: 0 body (open-top tapered cylinder with a bottom), 1 handle (half torus)."""
    r, h = uniform(rng, (0.3, 0.4)), uniform(rng, (0.7, 1.0))
    rt = r * uniform(rng, (1.0, 1.15))
    hr, ht = uniform(rng, (0.18, 0.26)) * h / 0.85, uniform(rng, (0.035, 0.055))
    body = Part("frustum", {"r0": r, "r1": rt, "h": h, "caps": "b"}, part=0)
    handle = Part(
        "torus",
        {"R": hr, "r": ht, "arc": (-np.pi / 2, np.pi / 2)},
        A=rot_x(np.pi / 2),
        t=np.array([(r + rt) / 2, 0, h / 2]),
        part=1,
    )
    return _centered([body, handle])


def build_airplane(rng: np.random.Generator, engines: int | None = None) -> list[Part]:
    """Parts: 0 body (fuselage), 1 wing, 2 tail (fin + stabiliser), 3 engine (0, 2 or 4)."""
    L, fr = uniform(rng, (1.6, 2.0)), uniform(rng, (0.1, 0.14))
    span, chord = uniform(rng, (1.5, 2.0)), uniform(rng, (0.25, 0.35))
    wx = uniform(rng, (-0.1, 0.15))
    parts = [
        Part("sphere", {"r": 1.0}, A=np.diag([L / 2, fr, fr]), part=0),
        _box((chord, span, 0.03), (wx, 0, -0.02), part=1),
        _box((0.22, 0.025, uniform(rng, (0.25, 0.35))), (-L / 2 + 0.15, 0, fr + 0.12), part=2),
        _box((0.16, uniform(rng, (0.45, 0.65)), 0.025), (-L / 2 + 0.12, 0, 0.04), part=2),
    ]
    if engines is None:
        engines = int(rng.choice([0, 2, 4], p=[0.3, 0.5, 0.2]))
    ys = {0: [], 2: [0.35], 4: [0.3, 0.6]}[engines]
    for y in ys:
        for sy in (-1, 1):
            parts.append(
                Part(
                    "frustum",
                    {"r0": 0.06, "r1": 0.06, "h": 0.3, "caps": "bt"},
                    A=rot_y(np.pi / 2),
                    t=np.array([wx - 0.1, sy * y * span / 2, -0.1]),
                    part=3,
                )
            )
    return _centered(parts)


def _extrude(poly: np.ndarray, thickness: float) -> np.ndarray:
    """Triangles float [T, 3, 3] of a simple polygon [P, 2] (counter-clockwise, star-shaped from
    its vertex 0) extruded from z=0 to z=thickness; outward winding."""
    poly = np.asarray(poly, np.float64)
    P = len(poly)
    lo = np.c_[poly, np.zeros(P)]
    hi = np.c_[poly, np.full(P, thickness)]
    tris = []
    for k in range(1, P - 1):
        tris.append([hi[0], hi[k], hi[k + 1]])
        tris.append([lo[0], lo[k + 1], lo[k]])
    for k in range(P):
        a, b = k, (k + 1) % P
        tris.append([lo[a], lo[b], hi[b]])
        tris.append([lo[a], hi[b], hi[a]])
    return np.array(tris)


def _pyramid(a: float, h: float) -> np.ndarray:
    b = np.array([[-a, -a, 0], [a, -a, 0], [a, a, 0], [-a, a, 0]]) / 2
    apex = np.array([0, 0, h])
    tris = [[b[0], b[2], b[1]], [b[0], b[3], b[2]]]
    tris += [[b[k], b[(k + 1) % 4], apex] for k in range(4)]
    return np.array(tris)


def _prim(kind, params, **kw) -> Callable[[np.random.Generator], list[Part]]:
    return lambda rng: _centered([Part(kind, dict(params), **kw)])


SHAPE_BUILDERS: dict[str, Builder] = {
    "cube": _prim("box", {"size": (1.0, 1.0, 1.0)}),
    "sphere": _prim("sphere", {"r": 0.5}),
    "cylinder": _prim("frustum", {"r0": 0.4, "r1": 0.4, "h": 1.0, "caps": "bt"}),
    "cone": _prim("frustum", {"r0": 0.5, "r1": 0.0, "h": 1.0, "caps": "b"}),
    "torus": _prim("torus", {"R": 0.4, "r": 0.14}),
    "pyramid": _prim("tris", {"tris": _pyramid(1.0, 0.8)}),
    "capsule": lambda rng: _centered(
        [
            Part("frustum", {"r0": 0.25, "r1": 0.25, "h": 0.6}),
            Part("sphere", {"r": 0.25, "hemi": 1}, t=np.array([0, 0, 0.6])),
            Part("sphere", {"r": 0.25, "hemi": -1}),
        ]
    ),
    "table": build_table,
    "chair": build_chair,
    "lamp": build_lamp,
    "mug": build_mug,
    "airplane": build_airplane,
}

#: category -> (builder, part names); global part ids follow this order.
PART_CATEGORIES: dict[str, tuple[Builder, tuple[str, ...]]] = {
    "airplane": (build_airplane, ("body", "wing", "tail", "engine")),
    "chair": (build_chair, ("back", "seat", "leg", "arm")),
    "lamp": (build_lamp, ("base", "pole", "shade")),
    "mug": (build_mug, ("body", "handle")),
    "table": (build_table, ("top", "leg")),
}


def _pose(rng: np.random.Generator, max_tilt: float) -> np.ndarray:
    """float64 [3, 3]: a tilt about a random horizontal axis (angle <= max_tilt) then a yaw."""
    axis_angle = rng.uniform(0, 2 * np.pi)
    tilt = rng.uniform(0, max_tilt)
    T = rot_z(axis_angle) @ rot_x(tilt) @ rot_z(-axis_angle)
    return rot_z(rng.uniform(0, 2 * np.pi)) @ T


def _cloud(sampled: dict, rng: np.random.Generator, attrs: dict | None = None, **kw) -> PointCloud:
    order = rng.permutation(len(sampled["xyz"]))
    a = {"normals": sampled["normals"][order].astype(np.float32)}
    for k, v in (attrs or {}).items():
        a[k] = v[order]
    return PointCloud(sampled["xyz"][order].astype(np.float32), a, **kw)


class SyntheticShapes(SyntheticDataset):
    """Shape classification: one primitive or composite object per sample.

    Each sample: ``xyz`` float32 [points, 3] roughly within the unit ball (sizes about 1),
    ``attrs["normals"]`` float32 [points, 3] unit normals of the analytic surface, target =
    ``int`` index into ``classes``; ``meta["pose"]`` = ``{"rotation": float [3, 3], "scale":
    float [3]}`` (world = rotation @ diag(scale) @ local). Pose: yaw uniform, tilt up to
    ``max_tilt`` radians about a random horizontal axis, anisotropic scale per axis in
    ``scale``. Class ``i % K`` for item ``i`` (balanced). Available classes:
    ``SHAPE_BUILDERS`` (cube, sphere, cylinder, cone, torus, pyramid, capsule, table, chair,
    lamp, mug, airplane).

    Chance level: accuracy 1/K (12.5 % for the 8 default classes); every sample has the same
    number of points and a similar extent, so only the shape tells the classes apart.
    """

    name = "synthetic-shapes"
    _stream = 2
    default_classes = ("cube", "sphere", "cylinder", "cone", "torus", "pyramid", "capsule", "table")

    def __init__(
        self,
        n: int = 512,
        split: str = "train",
        seed: int = 0,
        points: int = 2048,
        classes: Sequence[str] = default_classes,
        max_tilt: float = np.radians(15),
        scale: tuple[float, float] = (0.75, 1.25),
    ):
        super().__init__(n, split, seed)
        bad = [c for c in classes if c not in SHAPE_BUILDERS]
        if bad or not classes:
            raise ValueError(f"SyntheticShapes: unknown classes {bad}; available: {sorted(SHAPE_BUILDERS)}")
        self.classes, self.points, self.max_tilt, self.scale = tuple(classes), int(points), max_tilt, scale

    def _repr_args(self) -> str:
        return f"points={self.points}, classes={list(self.classes)}"

    def _build(self, i: int) -> PointCloud:
        rng = self.rng(i)
        k = i % len(self.classes)
        parts = SHAPE_BUILDERS[self.classes[k]](rng)
        R = _pose(rng, self.max_tilt)
        s = np.array([uniform(rng, self.scale) for _ in range(3)])
        parts = place(parts, R @ np.diag(s), np.zeros(3))
        cloud = _cloud(
            sample_parts(parts, self.points, rng),
            rng,
            target=k,
            meta={"category": self.classes[k], "pose": {"rotation": R, "scale": s}},
        )
        return cloud

    def describe(self) -> str:
        """Classes, points per sample and the chance level."""
        return (
            f"{self!r}\n  task: classification of {len(self.classes)} classes "
            f"({', '.join(self.classes)}); {self.points} points with normals per sample\n"
            f"  chance: accuracy {1 / len(self.classes):.3f} (constant or random prediction)"
        )


class SyntheticParts(SyntheticDataset):
    """ShapeNet-like part segmentation with normals.

    Categories and parts (global part ids are contiguous per category, in this order):
    airplane (body, wing, tail, engine), chair (back, seat, leg, arm), lamp (base, pole,
    shade), mug (body, handle), table (top, leg). Some parts are optional (engines, arms),
    so, as in ShapeNet, a part may be absent from a shape.

    Each sample: ``xyz`` float32 [points, 3] centred, about unit size, canonical orientation
    (z up) unless ``rotate``; ``attrs["normals"]`` float32 [points, 3]; ``attrs["labels"]``
    int64 [points] global part ids; ``meta["category"]`` (name), ``meta["category_index"]``.
    Item ``i`` has category ``i % len(categories)``.

    Chance level (per-shape instance mIoU, ShapeNet rule: argmax over the category's parts,
    a part absent from both truth and prediction counts 1): predicting the category's
    majority part everywhere scores about 0.28 with the default settings (measured on 50
    shapes; :meth:`describe` measures it on the first samples).
    """

    name = "synthetic-parts"
    _stream = 3

    def __init__(
        self,
        n: int = 512,
        split: str = "train",
        seed: int = 0,
        points: int = 2048,
        categories: Sequence[str] = tuple(PART_CATEGORIES),
        rotate: bool = False,
        scale: tuple[float, float] = (0.85, 1.15),
    ):
        super().__init__(n, split, seed)
        bad = [c for c in categories if c not in PART_CATEGORIES]
        if bad or not categories:
            raise ValueError(f"SyntheticParts: unknown categories {bad}; available: {list(PART_CATEGORIES)}")
        self.categories, self.points, self.rotate, self.scale = tuple(categories), int(points), rotate, scale
        self.parts_of: dict[str, list[int]] = {}
        names: list[str] = []
        for c in self.categories:
            local = PART_CATEGORIES[c][1]
            self.parts_of[c] = list(range(len(names), len(names) + len(local)))
            names += [f"{c}/{p}" for p in local]
        self.part_names: tuple[str, ...] = tuple(names)

    @property
    def classes(self) -> tuple[str, ...]:
        """The segmentation classes: global part names ``"category/part"``."""
        return self.part_names

    def _repr_args(self) -> str:
        return f"points={self.points}, categories={list(self.categories)}, parts={len(self.part_names)}"

    def _build(self, i: int) -> PointCloud:
        rng = self.rng(i)
        ci = i % len(self.categories)
        cat = self.categories[ci]
        parts = PART_CATEGORIES[cat][0](rng)
        R = _pose(rng, np.pi) if self.rotate else np.eye(3)
        s = np.array([uniform(rng, self.scale) for _ in range(3)])
        parts = place(parts, R @ np.diag(s), np.zeros(3))
        smp = sample_parts(parts, self.points, rng)
        labels = np.asarray(self.parts_of[cat], np.int64)[smp["part"]]
        return _cloud(smp, rng, {"labels": labels}, meta={"category": cat, "category_index": ci})

    def majority_baseline(self, samples: int = 20) -> float:
        """Instance mIoU of predicting each category's most frequent part everywhere, measured
        on the first ``samples`` items (part frequencies counted on the same items)."""
        clouds = [self[j] for j in range(min(samples, self.n))]
        counts = np.zeros(len(self.part_names))
        for c in clouds:
            counts += np.bincount(c.attrs["labels"], minlength=len(counts))
        scores = []
        for c in clouds:
            ids = self.parts_of[c.meta["category"]]
            maj = ids[int(np.argmax(counts[ids]))]
            scores.append(instance_iou(np.full(len(c), maj), c.attrs["labels"], ids))
        return float(np.mean(scores)) if scores else float("nan")

    def describe(self) -> str:
        """Categories, parts, points per sample and the measured chance level."""
        cats = "; ".join(f"{c}: {', '.join(PART_CATEGORIES[c][1])}" for c in self.categories)
        base = self.majority_baseline(min(self.n, 2 * len(self.categories)))
        return (
            f"{self!r}\n  task: part segmentation, {len(self.part_names)} global parts ({cats}); "
            f"{self.points} points with normals per shape\n"
            f"  chance: instance mIoU {base:.3f} for the majority part of each category "
            f"(measured on the first samples)"
        )


def instance_iou(pred: np.ndarray, true: np.ndarray, part_ids: Sequence[int]) -> float:
    """ShapeNet per-shape mIoU over ``part_ids``; a part absent from both counts 1."""
    ious = []
    for p in part_ids:
        a, b = pred == p, true == p
        union = (a | b).sum()
        ious.append(1.0 if union == 0 else (a & b).sum() / union)
    return float(np.mean(ious))


# ---- keypoints --------------------------------------------------------------------------------


def _arrow(rng: np.random.Generator):
    r, L = uniform(rng, (0.04, 0.06)), uniform(rng, (0.6, 1.0))
    hr, hh = uniform(rng, (0.1, 0.14)), uniform(rng, (0.2, 0.3))
    parts = [
        Part("frustum", {"r0": r, "r1": r, "h": L, "caps": "b"}),
        Part("frustum", {"r0": hr, "r1": 0.0, "h": hh, "caps": "b"}, t=np.array([0, 0, L])),
    ]
    kp = np.array([[0, 0, L + hh], [0, 0, 0]], np.float64)
    axes = np.array([[0, 0, 1.0], [0, 0, 1.0]])
    A = rot_y(np.pi / 2)  # lay along +x
    return place(parts, A, np.zeros(3)), kp @ A.T, axes @ A.T


def _lshape(rng: np.random.Generator):
    La, Lb = uniform(rng, (0.8, 1.2)), uniform(rng, (0.4, 0.65))
    w, t = uniform(rng, (0.1, 0.16)), uniform(rng, (0.06, 0.12))
    poly = np.array([[0, 0], [La, 0], [La, w], [w, w], [w, Lb], [0, Lb]])
    parts = [Part("tris", {"tris": _extrude(poly, t)})]
    kp = np.array([[0, 0, t / 2], [La, w / 2, t / 2], [w / 2, Lb, t / 2]])
    axes = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    return parts, kp, axes


KEYPOINT_KINDS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "arrow": (_arrow, ("tip", "tail")),
    "lshape": (_lshape, ("corner", "long_end", "short_end")),
}


class SyntheticKeypoints(SyntheticDataset):
    """Objects with annotated keypoints and axes, in a random pose.

    ``kind="arrow"``: a shaft and a conical head; keypoints ``tip`` (cone apex) and ``tail``
    (centre of the shaft's end cap), both with axis = unit tail-to-tip direction.
    ``kind="lshape"``: an L-shaped plate; keypoints ``corner`` (middle of the outer corner
    edge, axis along the long arm), ``long_end`` and ``short_end`` (centres of the arms' end
    faces, axes along their arm, pointing outwards).

    Each sample: ``xyz`` float32 [points, 3], ``attrs["normals"]`` float32 [points, 3],
    target = ``geometry.Keypoints(points [K, 3], axes [K, 3] unit, labels = arange(K))`` with
    ``K = len(keypoint_names)``. Pose: yaw uniform, tilt up to ``max_tilt`` about a random
    horizontal axis, isotropic scale in ``scale``, translation up to ``shift`` per axis.

    Chance level: predicting every keypoint at the dataset's mean keypoint position (no
    learning) has a mean distance error of about 0.57 units for both kinds (objects are about
    1 unit long; measured on 50 samples, :meth:`describe` measures it); PCK@0.1 of that
    predictor is near 0.
    """

    name = "synthetic-keypoints"
    _stream = 4

    def __init__(
        self,
        n: int = 512,
        split: str = "train",
        seed: int = 0,
        points: int = 2048,
        kind: str = "arrow",
        max_tilt: float = np.radians(45),
        scale: tuple[float, float] = (0.8, 1.2),
        shift: float = 0.2,
    ):
        super().__init__(n, split, seed)
        if kind not in KEYPOINT_KINDS:
            raise ValueError(f"SyntheticKeypoints: unknown kind {kind!r}; available: {list(KEYPOINT_KINDS)}")
        self.kind, self.points, self.max_tilt, self.scale, self.shift = (
            kind,
            int(points),
            max_tilt,
            scale,
            shift,
        )
        self.keypoint_names: tuple[str, ...] = KEYPOINT_KINDS[kind][1]

    @property
    def classes(self) -> tuple[str, ...]:
        """The keypoint names (label ``k`` of the target is ``keypoint_names[k]``)."""
        return self.keypoint_names

    def _repr_args(self) -> str:
        return f"points={self.points}, kind={self.kind!r}, keypoints={list(self.keypoint_names)}"

    def _build(self, i: int) -> PointCloud:
        rng = self.rng(i)
        parts, kp, axes = KEYPOINT_KINDS[self.kind][0](rng)
        b = np.array([p.bounds() for p in parts])
        c = (b[:, 0].min(0) + b[:, 1].max(0)) / 2
        R = _pose(rng, self.max_tilt)
        A = uniform(rng, self.scale) * R
        t = rng.uniform(-self.shift, self.shift, 3) - A @ c
        parts = place(parts, A, t)
        target = Keypoints((kp @ A.T) + t, axes @ R.T, np.arange(len(kp)))
        return _cloud(sample_parts(parts, self.points, rng), rng, target=target, meta={"category": self.kind})

    def mean_baseline(self, samples: int = 20) -> float:
        """Mean keypoint distance error of predicting each keypoint at its mean position over the
        first ``samples`` items (fitted on the same items)."""
        kps = np.stack([self[j].target.points for j in range(min(samples, self.n))])
        return float(np.linalg.norm(kps - kps.mean(0), axis=2).mean())

    def describe(self) -> str:
        """Keypoints, points per sample and the measured no-learning baseline."""
        return (
            f"{self!r}\n  task: {len(self.keypoint_names)} keypoints with axes "
            f"({', '.join(self.keypoint_names)}) on one {self.kind} per sample, {self.points} points\n"
            f"  chance: mean distance {self.mean_baseline():.3f} units for the mean-position predictor"
        )
