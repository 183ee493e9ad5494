"""Synthetic SemanticKITTI data in the exact on-disk formats.

:func:`make_fixture` writes a data root with every sequence 00-21 (``velodyne/*.bin``, and
``labels/*.label`` for 00-10), a few scans each. :func:`synthetic_scan` makes one scan by
casting the rays of a 64-beam spinning LiDAR (elevations +2 to -24.8 degrees, like the HDL-64E
of KITTI, 80 m range) from the origin into a procedural street: road with a lane marking,
raised sidewalks, terrain, parking, buildings, fences, cars, trucks, buses, bicycles and
motorcycles, people, poles with signs, trees (trunk and crown), a few outlier points below the
ground and unlabelled clutter. So the scans look like real ones where it matters to the
readers and the voxelizer: sensor-centred metres with negative coordinates on every axis,
ground near z = -1.73 m, point density falling with range, remission in [0, 0.99] in steps of
0.01, raw ids including the ones ``learning_map`` merges (moving-car, lane-marking, bus) or
ignores (outlier, other-structure), and instance ids in the upper 16 bits. The ``calib.txt``,
``poses.txt`` and ``times.txt`` of the download are not written (nothing here reads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import CONFIG_NAME, default_config
from .reader import SPLITS, sequence_name, write_label, write_scan

__all__ = ["SENSOR_HEIGHT", "make_fixture", "synthetic_scan", "write_sequence"]

SENSOR_HEIGHT = 1.73
MAX_RANGE = 80.0
MIN_RANGE = 1.0
SIDEWALK_HEIGHT = 0.15

# raw id -> (mean remission, spread)
_REMISSION = {
    0: (0.3, 0.2),
    1: (0.1, 0.1),
    10: (0.25, 0.2),
    11: (0.3, 0.1),
    13: (0.3, 0.1),
    15: (0.3, 0.1),
    18: (0.35, 0.1),
    30: (0.15, 0.05),
    31: (0.2, 0.05),
    40: (0.22, 0.04),
    44: (0.28, 0.04),
    48: (0.32, 0.04),
    49: (0.35, 0.05),
    50: (0.2, 0.06),
    51: (0.26, 0.05),
    52: (0.3, 0.1),
    60: (0.62, 0.06),
    70: (0.45, 0.08),
    71: (0.3, 0.05),
    72: (0.4, 0.06),
    80: (0.35, 0.05),
    81: (0.9, 0.05),
    252: (0.25, 0.2),
}


@dataclass
class _Scene:
    """Primitives of a street scene in world coordinates (the sensor moves along +x)."""

    boxes: list[tuple[np.ndarray, np.ndarray, int, int]] = field(default_factory=list)  # lo, hi, raw, inst
    cylinders: list[tuple[float, float, float, float, float, int, int]] = field(default_factory=list)
    spheres: list[tuple[np.ndarray, float, int, int]] = field(default_factory=list)


def _street(rng: np.random.Generator, length: float = 160.0) -> _Scene:
    s = _Scene()
    ground = -SENSOR_HEIGHT
    walk = ground + SIDEWALK_HEIGHT
    inst = iter(range(1, 1000))

    def box(lo, hi, raw, instance=0):
        s.boxes.append((np.asarray(lo, float), np.asarray(hi, float), raw, instance))

    # buildings along both sides, with gaps
    for side in (-1, 1):
        x = -length / 2
        while x < length / 2:
            w = rng.uniform(8, 25)
            if rng.random() < 0.8:
                y0 = side * rng.uniform(10, 13)
                depth = rng.uniform(6, 12)
                y1 = y0 + side * depth
                box([x, min(y0, y1), walk], [x + w, max(y0, y1), walk + rng.uniform(5, 14)], 50)
            x += w + rng.uniform(1, 6)
        # fence segments between sidewalk and buildings
        for _ in range(3):
            x0 = rng.uniform(-length / 2, length / 2 - 10)
            y = side * rng.uniform(7.0, 8.5)
            box([x0, y - 0.05, walk], [x0 + rng.uniform(4, 12), y + 0.05, walk + 1.2], 51)
    # vehicles on the road (lanes at y = +-1.75) and parked at the kerb
    kinds = [(10, (4.2, 1.8, 1.5)), (252, (4.4, 1.8, 1.45)), (18, (7.0, 2.4, 3.0)), (13, (11.0, 2.5, 3.1))]
    for _ in range(rng.integers(6, 12)):
        raw, (lx, ly, lz) = kinds[rng.choice(4, p=[0.55, 0.25, 0.1, 0.1])]
        x0 = rng.uniform(-length / 2, length / 2)
        if abs(x0) < 4:
            x0 += 8
        yc = rng.choice([-1.75, 1.75, -4.6, 4.6]) + rng.normal(0, 0.15)
        box([x0, yc - ly / 2, ground], [x0 + lx, yc + ly / 2, ground + lz], raw, next(inst))
    # two-wheelers, people and cyclists on the sidewalks
    for raw, (lx, ly, lz), n in (
        (11, (1.7, 0.5, 1.1), 3),
        (15, (2.0, 0.7, 1.2), 2),
        (30, (0.5, 0.5, 1.75), 6),
        (31, (1.7, 0.6, 1.8), 2),
    ):
        for _ in range(n):
            x0 = rng.uniform(-length / 3, length / 3)
            yc = rng.choice([-1, 1]) * rng.uniform(5.0, 6.2)
            box([x0, yc - ly / 2, walk], [x0 + lx, yc + ly / 2, walk + lz], raw, next(inst))
    # poles with signs at the kerb, trees on the terrain strips
    for _ in range(rng.integers(6, 10)):
        x0, side = rng.uniform(-length / 2, length / 2), rng.choice([-1, 1])
        y = side * 6.3
        s.cylinders.append((x0, y, 0.12, walk, walk + 6.0, 80, 0))
        if rng.random() < 0.6:
            box([x0 - 0.05, y - 0.4, walk + 2.2], [x0 + 0.05, y + 0.4, walk + 3.0], 81)
    for _ in range(rng.integers(8, 14)):
        x0, side = rng.uniform(-length / 2, length / 2), rng.choice([-1, 1])
        y, h, r = side * rng.uniform(8.8, 9.6), rng.uniform(2.0, 3.0), rng.uniform(1.4, 2.6)
        s.cylinders.append((x0, y, 0.22, walk, walk + h + r, 71, 0))
        s.spheres.append((np.array([x0, y, walk + h + r]), r, 70, 0))
    # hedges and bushes on the terrain strips
    for _ in range(rng.integers(10, 18)):
        x0, side = rng.uniform(-length / 2, length / 2), rng.choice([-1, 1])
        y0 = side * rng.uniform(6.9, 8.0)
        box([x0, y0 - 0.4, walk], [x0 + rng.uniform(1.5, 6), y0 + 0.4, walk + rng.uniform(0.5, 1.6)], 70)
    # unannotated clutter (other-structure -> ignored) and a parking patch marker
    for _ in range(2):
        x0 = rng.uniform(-length / 2, length / 2)
        side = rng.choice([-1, 1])
        box([x0, side * 7.2 - 0.5, walk], [x0 + 1.5, side * 7.2 + 0.5, walk + 2.0], 52)
    return s


def _ground(d: np.ndarray, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Hits of rays ``d`` [R, 3] (unit, from the sensor at world x = offset) with the ground:
    road |y| < 3.5 (lane marking dashes at |y| < 0.12), sidewalks 3.5..6.6 (raised), terrain
    beyond (a parking patch and an other-ground patch on one side)."""
    t = np.full(len(d), np.inf)
    raw = np.zeros(len(d), np.int64)
    down = d[:, 2] < -1e-6
    for z, region in ((-SENSOR_HEIGHT, "road"), (-SENSOR_HEIGHT + SIDEWALK_HEIGHT, "off-road")):
        tz = np.where(down, z / np.where(down, d[:, 2], -1.0), np.inf)
        finite = np.where(down, tz, 0.0)
        x = finite * d[:, 0] + offset
        y = np.where(down, np.abs(finite * d[:, 1]), np.inf)
        if region == "road":
            ok = y < 3.5
            r = np.where((y < 0.12) & (np.floor(x / 3.0) % 2 == 0), 60, 40)
        else:
            ok = y >= 3.5
            r = np.where(y < 6.6, 48, 72)
            r = np.where((y >= 6.6) & (d[:, 1] > 0) & (np.abs(x - 20) < 12), 44, r)
            r = np.where((y >= 6.6) & (d[:, 1] < 0) & (np.abs(x + 25) < 10), 49, r)
        ok &= tz < t
        t = np.where(ok, tz, t)
        raw = np.where(ok, r, raw)
    # rays passing between the two planes hit the kerb face at |y| = 3.5
    side = np.abs(d[:, 1]) > 1e-9
    tk = np.where(side, 3.5 / np.where(side, np.abs(d[:, 1]), 1.0), np.inf)
    zk = tk * d[:, 2]
    kerb = np.isinf(t) & down & (zk <= -SENSOR_HEIGHT + SIDEWALK_HEIGHT) & (zk >= -SENSOR_HEIGHT)
    t = np.where(kerb, tk, t)
    raw = np.where(kerb, 48, raw)
    return t, raw


def _cast(d: np.ndarray, scene: _Scene, offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest hit distance, raw id and instance id of every ray (inf where nothing is hit)."""
    t, raw = _ground(d, offset)
    inst = np.zeros(len(d), np.int64)
    origin = np.array([offset, 0.0, 0.0])
    if scene.boxes:
        lo = np.stack([b[0] for b in scene.boxes]) - origin
        hi = np.stack([b[1] for b in scene.boxes]) - origin
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t1 = lo[None] * inv[:, None]
            t2 = hi[None] * inv[:, None]
        t1 = np.nan_to_num(t1, nan=-np.inf)
        t2 = np.nan_to_num(t2, nan=np.inf)
        tmin = np.minimum(t1, t2).max(2)
        tmax = np.maximum(t1, t2).min(2)
        hit = (tmax >= tmin) & (tmin > 0)
        tb = np.where(hit, tmin, np.inf)
        k = tb.argmin(1)
        best = tb[np.arange(len(d)), k]
        closer = best < t
        t = np.where(closer, best, t)
        raw = np.where(closer, np.array([b[2] for b in scene.boxes])[k], raw)
        inst = np.where(closer, np.array([b[3] for b in scene.boxes])[k], inst)
    for cx, cy, r, z0, z1, rid, iid in scene.cylinders:
        cx -= offset
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = d[:, 0] * cx + d[:, 1] * cy
        c = cx * cx + cy * cy - r * r
        disc = b * b - a * c
        with np.errstate(invalid="ignore", divide="ignore"):
            tc = (b - np.sqrt(disc)) / a
        z = tc * d[:, 2]
        ok = (disc > 0) & (tc > 0) & (z >= z0) & (z <= z1) & (tc < t)
        t = np.where(ok, tc, t)
        raw = np.where(ok, rid, raw)
        inst = np.where(ok, iid, inst)
    for center, r, rid, iid in scene.spheres:
        c = center - origin
        b = d @ c
        disc = b * b - (c @ c - r * r)
        with np.errstate(invalid="ignore"):
            ts = b - np.sqrt(disc)
        ok = (disc > 0) & (ts > 0) & (ts < t)
        t = np.where(ok, ts, t)
        raw = np.where(ok, rid, raw)
        inst = np.where(ok, iid, inst)
    return t, raw, inst


def _rays(azimuths: int, beams: int = 64) -> np.ndarray:
    el = np.radians(np.linspace(2.0, -24.8, beams))
    az = np.linspace(-np.pi, np.pi, azimuths, endpoint=False)
    e, a = np.meshgrid(el, az, indexing="ij")
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)


def synthetic_scan(
    seed: int = 0, points: int = 4000, frame: int = 0, scene_seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic LiDAR scan of about ``points`` points.

    The street comes from ``scene_seed`` (default ``seed``); ``frame`` moves the sensor 1.5 m
    along the street per frame. Returns ``xyz float32 [N, 3]`` (sensor frame, metres),
    ``remission float32 [N]`` (0..0.99, steps of 0.01), ``semantic uint16 [N]`` (raw ids) and
    ``instance uint16 [N]``.
    """
    rng = np.random.default_rng([seed, frame])
    scene = _street(np.random.default_rng(seed if scene_seed is None else scene_seed))
    # nearly every ray of a scan hits something within range
    azimuths = max(8, round(points / 64 / 0.97))
    d = _rays(azimuths)
    offset = 1.5 * frame
    t, raw, inst = [], [], []
    for start in range(0, len(d), 8192):  # bounded memory for the ray x box tests
        a, b, c = _cast(d[start : start + 8192], scene, offset)
        t.append(a)
        raw.append(b)
        inst.append(c)
    t, raw, inst = np.concatenate(t), np.concatenate(raw), np.concatenate(inst)
    t = t + rng.normal(0, 0.01, len(t))  # range noise
    keep = (t >= MIN_RANGE) & (t <= MAX_RANGE)
    xyz = d[keep] * t[keep, None]
    raw, inst = raw[keep], inst[keep]
    # a few outliers far below the ground (as real scans have) and unlabelled returns
    n_out = max(1, len(xyz) // 2000)
    out_xyz = rng.uniform([-20, -20, -28], [20, 20, -3], (n_out, 3))
    junk = rng.random(len(xyz)) < 0.005
    raw = np.where(junk, 0, raw)
    xyz = np.concatenate([xyz, out_xyz])
    raw = np.concatenate([raw, np.ones(n_out, np.int64)])
    inst = np.concatenate([np.where(junk, 0, inst), np.zeros(n_out, np.int64)])
    mean = np.array([_REMISSION.get(int(r), (0.3, 0.1))[0] for r in range(300)])
    spread = np.array([_REMISSION.get(int(r), (0.3, 0.1))[1] for r in range(300)])
    rng_fall = np.clip(1.0 - np.linalg.norm(xyz, axis=1) / 200.0, 0.5, 1.0)
    rem = (mean[raw] + spread[raw] * rng.standard_normal(len(raw))) * rng_fall
    rem = np.round(np.clip(rem, 0.0, 0.99), 2)
    order = np.lexsort((np.arctan2(xyz[:, 1], xyz[:, 0]),))  # in sweep order, as a spinning sensor
    return (
        xyz[order].astype(np.float32),
        rem[order].astype(np.float32),
        raw[order].astype(np.uint16),
        inst[order].astype(np.uint16),
    )


def write_sequence(
    seq_dir: str | Path, scans: int, *, points: int = 4000, seed: int = 0, labelled: bool = True
) -> Path:
    """Write ``scans`` frames of one sequence folder (``velodyne/`` and, when ``labelled``, ``labels/``)."""
    seq_dir = Path(seq_dir)
    for f in range(scans):
        xyz, rem, sem, inst = synthetic_scan(seed, points, frame=f)
        write_scan(seq_dir / "velodyne" / f"{f:06d}.bin", xyz, rem)
        if labelled:
            write_label(seq_dir / "labels" / f"{f:06d}.label", sem, inst)
    return seq_dir


def make_fixture(
    root: str | Path,
    *,
    scans: int | dict[str, int] = 1,
    points: int = 3000,
    sequences: Sequence[int | str] | None = None,
    seed: int = 0,
    config: bool = False,
) -> Path:
    """Write a tiny SemanticKITTI data root and return it.

    scans: frames per sequence (an int, or ``{"08": 3, ...}`` with 1 for the others); points:
    about how many points per scan; sequences: which sequences (default all 00-21; labels for
    00-10); config: also write the plugin's ``semantic-kitti.yaml`` into the root.
    """
    root = Path(root)
    seqs = [sequence_name(s) for s in (sequences if sequences is not None else range(22))]
    test = {sequence_name(s) for s in SPLITS["test"]}
    for s in seqs:
        n = scans.get(s, 1) if isinstance(scans, dict) else int(scans)
        write_sequence(
            root / "sequences" / s, n, points=points, seed=seed * 100 + int(s), labelled=s not in test
        )
    if config:
        src = default_config().path
        (root / CONFIG_NAME).write_bytes(Path(src).read_bytes())
    return root
