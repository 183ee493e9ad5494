"""Embedded synthetic datasets: procedural, seeded, generated lazily, no downloads.

- :class:`SyntheticRooms`: indoor rooms for semantic segmentation (with colours).
- :class:`SyntheticDetectionRooms`: rooms with oriented boxes (``geometry.Boxes``) as target.
- :class:`SyntheticShapes`: primitive and composite shapes for classification.
- :class:`SyntheticParts`: ShapeNet-like multi-part objects for part segmentation.
- :class:`SyntheticKeypoints`: objects with annotated keypoints and axes.

Every dataset is a ``collections.abc.Sequence`` of :class:`~fastai_sparse.geometry.PointCloud`;
item ``i`` is a pure function of ``(seed, split, i)``; each has ``classes``, a ``describe()``
string with its chance levels, and a ``split`` of "train", "valid" or "test" (independent
random streams). :func:`make_scene` builds one sample of any kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..geometry import Boxes, PointCloud
from .synthetic_primitives import (
    SPLITS,
    Part,
    SyntheticDataset,
    confusion_miou,
    place,
    rot_z,
    sample_parts,
    uniform,
)
from .synthetic_shapes import (
    SHAPE_BUILDERS,
    SyntheticKeypoints,
    SyntheticParts,
    SyntheticShapes,
    build_chair,
    instance_iou,
)

__all__ = [
    "SHAPE_BUILDERS",
    "SPLITS",
    "SyntheticDataset",
    "SyntheticDetectionRooms",
    "SyntheticKeypoints",
    "SyntheticParts",
    "SyntheticRooms",
    "SyntheticShapes",
    "colour_nearest_mean_miou",
    "confusion_miou",
    "instance_iou",
    "make_scene",
]

# ---- colours: overlapping palettes, so colour alone cannot tell the classes apart -------------

_COLOURS = {
    "white": (232, 232, 226),
    "light_grey": (185, 185, 185),
    "dark_grey": (95, 95, 100),
    "black": (45, 45, 48),
    "beige": (212, 198, 168),
    "wood_light": (190, 150, 102),
    "wood_dark": (118, 80, 52),
    "red": (168, 52, 46),
    "blue": (62, 84, 150),
    "green": (86, 128, 84),
    "cardboard": (176, 136, 92),
    "brass": (180, 150, 72),
}
_PALETTES = {
    "floor": ("wood_light", "wood_dark", "light_grey", "beige", "dark_grey", "cardboard"),
    "wall": ("white", "beige", "light_grey", "green", "blue", "wood_light"),
    "table": ("wood_light", "wood_dark", "white", "black", "dark_grey", "light_grey"),
    "chair": ("black", "wood_dark", "red", "blue", "white", "light_grey", "beige"),
    "cabinet": ("white", "wood_light", "wood_dark", "light_grey", "beige", "dark_grey"),
    "lamp": ("white", "black", "brass", "beige", "red", "light_grey"),
    "box": ("cardboard", "white", "dark_grey", "beige", "wood_light", "green"),
}


def _object_colour(rng: np.random.Generator, cls: str, jitter: float = 18.0) -> np.ndarray:
    name = _PALETTES[cls][int(rng.integers(len(_PALETTES[cls])))]
    return np.clip(np.asarray(_COLOURS[name], np.float64) + rng.normal(0, jitter, 3), 0, 255)


# ---- room objects, in an object frame: origin on the floor at the footprint centre -------------


def _table(rng):
    L, W, h, th = uniform(rng, (0.9, 1.6)), uniform(rng, (0.6, 1.0)), uniform(rng, (0.7, 0.78)), 0.04
    lw, ins = 0.05, uniform(rng, (0.03, 0.08))
    parts = [Part("box", {"size": (L, W, th)}, t=np.array([0, 0, h - th / 2]))]
    parts += [
        Part(
            "box",
            {"size": (lw, lw, h - th), "faces": "xXyY"},
            t=np.array([sx * (L / 2 - ins - lw / 2), sy * (W / 2 - ins - lw / 2), (h - th) / 2]),
        )
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]
    return parts


def _chair(rng):
    parts = build_chair(rng, arms=bool(rng.random() < 0.25))
    lo = np.array([p.bounds()[0] for p in parts]).min(0)
    return place(parts, np.eye(3), np.array([0, 0, -lo[2]]))  # stand on the floor


def _cabinet(rng):
    w, d, h = uniform(rng, (0.5, 1.2)), uniform(rng, (0.35, 0.6)), uniform(rng, (0.85, 2.0))
    return [Part("box", {"size": (w, d, h), "faces": "xXyYZ"}, t=np.array([0, 0, h / 2]))]


def _lamp(rng):
    br, ph = uniform(rng, (0.13, 0.2)), uniform(rng, (1.3, 1.7))
    sr0, sh = uniform(rng, (0.2, 0.28)), uniform(rng, (0.25, 0.35))
    return [
        Part("frustum", {"r0": br, "r1": br, "h": 0.03, "caps": "t"}),
        Part("frustum", {"r0": 0.02, "r1": 0.02, "h": ph}, t=np.array([0, 0, 0.03])),
        Part(
            "frustum", {"r0": sr0, "r1": sr0 * 0.6, "h": sh, "caps": "t"}, t=np.array([0, 0, ph - sh * 0.5])
        ),
    ]


def _box(rng):
    a, b, c = uniform(rng, (0.25, 0.55)), uniform(rng, (0.25, 0.55)), uniform(rng, (0.2, 0.5))
    return [Part("box", {"size": (a, b, c), "faces": "xXyYZ"}, t=np.array([0, 0, c / 2]))]


ROOM_OBJECTS = {"table": _table, "chair": _chair, "cabinet": _cabinet, "lamp": _lamp, "box": _box}
_OBJECT_WEIGHTS = {"table": 0.2, "chair": 0.28, "cabinet": 0.18, "lamp": 0.16, "box": 0.18}


def _local_bounds(parts: list[Part]) -> np.ndarray:
    b = np.array([p.bounds() for p in parts])
    return np.stack([b[:, 0].min(0), b[:, 1].max(0)])


def _build_room(rng, *, size, size_jitter, wall_height, walls, objects, kinds, free_yaw, colour_noise):
    """Sampled parts and object records of one room (before point sampling)."""
    Lx, Ly = (s * uniform(rng, (1 - size_jitter, 1 + size_jitter)) for s in size)
    H = uniform(rng, wall_height)
    floor_rgb = _object_colour(rng, "floor")
    parts = [
        Part(
            "box",
            {"size": (Lx, Ly, 0.0), "faces": "Z"},
            t=np.array([Lx / 2, Ly / 2, 0.0]),
            label=0,
            instance=0,
            rgb=floor_rgb,
        )
    ]
    # walls on 1..4 sides: (box size, face, centre)
    sides = [
        ((Lx, 0.0, H), "Y", (Lx / 2, 0, H / 2)),
        ((Lx, 0.0, H), "y", (Lx / 2, Ly, H / 2)),
        ((0.0, Ly, H), "X", (0, Ly / 2, H / 2)),
        ((0.0, Ly, H), "x", (Lx, Ly / 2, H / 2)),
    ]
    n_walls = int(rng.integers(walls[0], walls[1] + 1))
    chosen = sorted(rng.choice(4, size=n_walls, replace=False).tolist())
    wall_rgb = _object_colour(rng, "wall")
    for k, s in enumerate(chosen):
        sz, face, c = sides[s]
        rgb = wall_rgb if rng.random() < 0.7 else _object_colour(rng, "wall")
        parts.append(
            Part("box", {"size": sz, "faces": face}, t=np.array(c, float), label=1, instance=1 + k, rgb=rgb)
        )
    # wall side s: yaw putting the object's -y (back) against it, and its placement
    wall_yaw = {0: 0.0, 1: np.pi, 2: -np.pi / 2, 3: np.pi / 2}
    records, placed = [], []  # placed: (x, y, radius)
    n_obj = int(rng.integers(objects[0], objects[1] + 1))
    w = np.array([_OBJECT_WEIGHTS[k] for k in kinds])
    instance = 1 + n_walls
    for _ in range(n_obj):
        kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
        local = ROOM_OBJECTS[kind](rng)
        lb = _local_bounds(local)
        half = np.maximum(np.abs(lb[0, :2]), np.abs(lb[1, :2]))
        rad = float(np.hypot(*half))
        against_wall = kind == "cabinet" and chosen and not free_yaw and rng.random() < 0.85
        if against_wall:  # its back (-y face) touches the wall: a scanner never sees it
            local = [
                dataclasses.replace(q, params={**q.params, "faces": q.params["faces"].replace("y", "")})
                for q in local
            ]
        for _try in range(30):
            if against_wall:
                s = int(rng.choice(chosen))
                yaw = wall_yaw[s]
                gap = -lb[0, 1] + 0.01  # back face 1 cm off the wall
                along = Lx if s < 2 else Ly
                u = rng.uniform(half[0], max(half[0], along - half[0]))
                pos = {0: (u, gap), 1: (u, Ly - gap), 2: (gap, u), 3: (Lx - gap, u)}[s]
            else:
                yaw = (
                    rng.uniform(0, 2 * np.pi)
                    if free_yaw or kind != "cabinet"
                    else rng.integers(4) * np.pi / 2
                )
                if 2 * (rad + 0.05) >= min(Lx, Ly):
                    break
                pos = (rng.uniform(rad + 0.05, Lx - rad - 0.05), rng.uniform(rad + 0.05, Ly - rad - 0.05))
            if all(np.hypot(pos[0] - x, pos[1] - y) > rad + r + 0.05 for x, y, r in placed):
                break
        else:
            continue
        if 2 * (rad + 0.05) >= min(Lx, Ly) and not against_wall:
            continue
        placed.append((pos[0], pos[1], rad))
        R = rot_z(yaw)
        t = np.array([pos[0], pos[1], 0.0])
        rgb = _object_colour(rng, kind)
        second = _object_colour(rng, kind) if rng.random() < 0.3 else rgb  # e.g. legs of another colour
        moved = place(local, R, t, label=2 + list(ROOM_OBJECTS).index(kind), instance=instance)
        for k, p in enumerate(moved):
            p.rgb = rgb if k == 0 else second
        parts += moved
        centre_local = (lb[0] + lb[1]) / 2
        records.append(
            {
                "kind": kind,
                "instance": instance,
                "center": R @ centre_local + t,
                "size": lb[1] - lb[0],
                "yaw": float(np.arctan2(np.sin(yaw), np.cos(yaw))),
            }
        )
        instance += 1
    return parts, records, (Lx, Ly, H)


def _room_cloud(parts, n, rng, colour_noise):
    smp = sample_parts(parts, n, rng)
    rgb_part = np.array([p.rgb for p in parts])[smp["part_index"]]
    rgb = np.clip(np.rint(rgb_part + rng.normal(0, colour_noise, rgb_part.shape)), 0, 255).astype(np.uint8)
    order = rng.permutation(n)
    return smp, rgb, order


class SyntheticRooms(SyntheticDataset):
    """Indoor rooms for semantic segmentation, with colours.

    A rectangular floor (``size`` metres, each side jittered by ``size_jitter``), 1 to 4
    walls of height ``wall_height`` on the room's sides, and ``objects`` furniture items:
    tables (top + 4 legs, top at 0.70-0.78 m), chairs (seat at 0.42-0.52 m + back + legs,
    sometimes arms), cabinets (0.5-1.2 x 0.35-0.6 x 0.85-2.0 m boxes, mostly against a wall),
    floor lamps (base + thin pole + shade at 1.3-1.7 m) and boxes (0.2-0.55 m). Objects
    stand on the floor at random positions and yaws without overlapping. Points are sampled
    uniformly per unit area over all visible surfaces (no object bottoms).

    Each sample: ``xyz`` float32 [points, 3], metres, z up, the floor from (0, 0, 0);
    ``attrs["rgb"]`` uint8 [points, 3]; ``attrs["normals"]`` float32 [points, 3];
    ``attrs["labels"]`` int64 [points] indices into ``classes``; ``attrs["instance"]`` int64
    [points] (0 floor, then walls, then objects); ``meta["objects"]`` one record per object
    (kind, instance, center, size, yaw of its oriented box).

    Colours are drawn per object from overlapping palettes (every named colour serves at least
    two classes) with per-object jitter and per-point noise, so colour alone cannot solve
    the task: geometry (height, size, shape) is needed.

    Chance levels with the defaults (measured by :meth:`describe` on the first samples): the
    constant majority-class (wall) predictor has mIoU about 0.056; a colour-only
    nearest-class-mean predictor (fitted on the evaluation samples themselves) 0.06 to 0.11
    (measured on 16 rooms of each split).
    """

    name = "synthetic-rooms"
    _stream = 0
    classes: tuple[str, ...] = ("floor", "wall", *ROOM_OBJECTS)

    def __init__(
        self,
        n: int = 64,
        split: str = "train",
        seed: int = 0,
        points: int = 8000,
        size: tuple[float, float] = (4.0, 4.0),
        size_jitter: float = 0.15,
        wall_height: tuple[float, float] = (2.0, 2.6),
        walls: tuple[int, int] = (1, 4),
        objects: tuple[int, int] = (4, 9),
        colour_noise: float = 10.0,
    ):
        super().__init__(n, split, seed)
        if not (1 <= walls[0] <= walls[1] <= 4):
            raise ValueError(f"{type(self).__name__}: walls must be a range within 1..4, got {walls!r}")
        if points < 1:
            raise ValueError(f"{type(self).__name__}: points must be >= 1, got {points!r}")
        self.points, self.size, self.size_jitter = int(points), tuple(size), size_jitter
        self.wall_height, self.walls, self.objects, self.colour_noise = (
            wall_height,
            walls,
            objects,
            colour_noise,
        )

    def _repr_args(self) -> str:
        return f"points={self.points}, size={self.size}, classes={list(self.classes)}"

    _kinds = tuple(ROOM_OBJECTS)
    _free_yaw = False

    def _room(self, i: int):
        rng = self.rng(i)
        parts, records, dims = _build_room(
            rng,
            size=self.size,
            size_jitter=self.size_jitter,
            wall_height=self.wall_height,
            walls=self.walls,
            objects=self.objects,
            kinds=self._kinds,
            free_yaw=self._free_yaw,
            colour_noise=self.colour_noise,
        )
        smp, rgb, order = _room_cloud(parts, self.points, rng, self.colour_noise)
        attrs = {
            "rgb": rgb[order],
            "normals": smp["normals"][order].astype(np.float32),
            "labels": smp["label"][order],
            "instance": smp["instance"][order],
        }
        meta = {"objects": records, "room_size": dims}
        return smp["xyz"][order].astype(np.float32), attrs, records, meta

    def _build(self, i: int) -> PointCloud:
        xyz, attrs, _, meta = self._room(i)
        return PointCloud(xyz, attrs, meta=meta)

    def chance_levels(self, samples: int = 8) -> dict[str, float]:
        """mIoU of no-geometry baselines on the first ``samples`` items: ``"constant"`` (the
        majority class everywhere) and ``"colour"`` (nearest class-mean colour, fitted on the
        same items, so optimistic)."""
        clouds = [self[j] for j in range(min(samples, self.n))]
        k = len(self.classes)
        y = np.concatenate([c.attrs["labels"] for c in clouds])
        rgb = np.concatenate([c.attrs["rgb"] for c in clouds]).astype(np.float64)
        const = confusion_miou(np.full_like(y, np.bincount(y, minlength=k).argmax()), y, k)
        return {"constant": const, "colour": colour_nearest_mean_miou(rgb, y, rgb, y, k)}

    def describe(self) -> str:
        """Classes, points, and the measured chance levels."""
        ch = self.chance_levels()
        return (
            f"{self!r}\n  task: semantic segmentation of {len(self.classes)} classes "
            f"({', '.join(self.classes)}); {self.points} points per room with rgb and normals\n"
            f"  chance: mIoU {ch['constant']:.3f} (constant majority class), {ch['colour']:.3f} "
            f"(colour-only nearest class mean), measured on the first samples"
        )


def colour_nearest_mean_miou(
    rgb_fit: np.ndarray, y_fit: np.ndarray, rgb_eval: np.ndarray, y_eval: np.ndarray, num_classes: int
) -> float:
    """mIoU of a colour-only classifier: each point gets the class whose mean colour (over
    ``rgb_fit`` float [N, 3] with labels ``y_fit`` int [N]) is nearest its own colour."""
    present = np.unique(y_fit)
    means = np.stack([rgb_fit[y_fit == c].mean(0) for c in present])
    d = ((rgb_eval[:, None, :] - means[None]) ** 2).sum(-1)
    return confusion_miou(present[d.argmin(1)], y_eval, num_classes)


class SyntheticDetectionRooms(SyntheticRooms):
    """Rooms with oriented 3D boxes as target (3D object detection).

    Like :class:`SyntheticRooms`, but every object of ``classes`` (default box, table, chair,
    cabinet; any of table, chair, cabinet, lamp, box) stands at a random position and a
    uniformly random yaw. Target: ``geometry.Boxes(centers, sizes, yaw, labels)``, one box per
    object, exactly the object's oriented bounding box (sizes along the object's own x, y, z;
    yaw in (-pi, pi]; labels index ``classes``). ``attrs["labels"]`` int64 indexes
    ``point_classes`` = ("floor", "wall", *classes); ``attrs["instance"]`` as in SyntheticRooms
    (box k belongs to instance ``meta["objects"][k]["instance"]``).

    Chance level: a predictor with no boxes, or with boxes at random positions, has mAP@0.25
    near 0; predicting each class's mean box at the room centre also scores near 0 because
    objects are spread over the room.
    """

    name = "synthetic-detection-rooms"
    _stream = 1
    _free_yaw = True

    def __init__(
        self,
        n: int = 64,
        split: str = "train",
        seed: int = 0,
        points: int = 8000,
        classes: Sequence[str] = ("box", "table", "chair", "cabinet"),
        objects: tuple[int, int] = (3, 8),
        **kw,
    ):
        super().__init__(n, split, seed, points=points, objects=objects, **kw)
        bad = [c for c in classes if c not in ROOM_OBJECTS]
        if bad or not classes:
            raise ValueError(
                f"SyntheticDetectionRooms: unknown classes {bad}; available: {list(ROOM_OBJECTS)}"
            )
        self.box_classes = tuple(classes)
        self._kinds = self.box_classes
        self.point_classes = ("floor", "wall", *self.box_classes)

    @property
    def classes(self) -> tuple[str, ...]:  # type: ignore[override]
        """The box classes (``Boxes.labels`` index this)."""
        return self.box_classes

    def _build(self, i: int) -> PointCloud:
        xyz, attrs, records, meta = self._room(i)
        # point labels: 0 floor, 1 wall, 2 + index in classes
        remap = np.array(
            [0, 1] + [2 + self.box_classes.index(k) if k in self.box_classes else -1 for k in ROOM_OBJECTS],
            np.int64,
        )
        attrs["labels"] = remap[attrs["labels"]]
        boxes = Boxes(
            np.array([r["center"] for r in records]).reshape(-1, 3),
            np.array([r["size"] for r in records]).reshape(-1, 3),
            np.array([r["yaw"] for r in records]),
            np.array([self.box_classes.index(r["kind"]) for r in records], np.int64),
        )
        return PointCloud(xyz, attrs, target=boxes, meta=meta)

    def chance_levels(self, samples: int = 8) -> dict[str, float]:
        clouds = [self[j] for j in range(min(samples, self.n))]
        counts = np.bincount(np.concatenate([c.target.labels for c in clouds]), minlength=len(self.classes))
        return {
            "boxes_per_room": float(counts.sum() / max(len(clouds), 1)),
            **{f"share_{c}": float(counts[k] / max(counts.sum(), 1)) for k, c in enumerate(self.classes)},
        }

    def describe(self) -> str:
        ch = self.chance_levels()
        shares = ", ".join(f"{c} {ch['share_' + c]:.2f}" for c in self.classes)
        return (
            f"{self!r}\n  task: 3D detection of oriented boxes, classes {', '.join(self.classes)}; "
            f"{self.points} points per room with rgb and normals; about {ch['boxes_per_room']:.1f} boxes "
            f"per room (shares: {shares})\n"
            f"  chance: mAP@0.25 near 0 for predictors that ignore geometry (no boxes, random boxes, or the "
            f"mean box per class)"
        )


_KINDS = {
    "rooms": SyntheticRooms,
    "detection": SyntheticDetectionRooms,
    "shapes": SyntheticShapes,
    "parts": SyntheticParts,
    "keypoints": SyntheticKeypoints,
}


def make_scene(kind: str = "rooms", seed: int = 0, split: str = "train", **kwargs) -> PointCloud:
    """One sample of a synthetic dataset: ``kind`` in rooms, detection, shapes, parts,
    keypoints; ``kwargs`` go to the dataset (e.g. ``points=4000``)."""
    if kind not in _KINDS:
        from ..errors import UnknownNameError

        raise UnknownNameError("synthetic scene kind", kind, list(_KINDS))
    return _KINDS[kind](n=1, split=split, seed=seed, **kwargs)[0]
