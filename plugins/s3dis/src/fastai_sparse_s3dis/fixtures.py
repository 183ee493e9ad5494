"""Small synthetic S3DIS datasets written in the exact on-disk format of the v1.2 Aligned download.

:func:`make_fixture` writes ``ROOT/Stanford3dDataset_v1.2_Aligned_Version/Area_1..Area_6/<room>/``
with a few procedural rooms: an axis-aligned box (ceiling, floor, four walls) in area
coordinates (metres, not centred; some negative), with a door, a window and a board on the walls,
a column, a beam, and furniture (tables, chairs, a sofa, a bookcase, clutter; a ``stairs``
object in hallways). Each object's points go to ``Annotations/<class>_<k>.txt``; the room
file ``<room>.txt`` holds every object's points in another (shuffled) order, as in the real
download, optionally plus points that no annotation covers. Lines are ``x y z r g b`` with
three decimals and integer colours, separated by single spaces, ``\\n`` line ends.

The two known defects of the download are reproduced on demand (``defects``):

* ``"hallway_6"``: ``Area_5/hallway_6/Annotations/ceiling_1.txt`` has a NUL character (0x00)
  instead of the space between red and green on line ``hallway6_line`` (180389 in the
  download; the ceiling then gets at least that many points);
* ``"copyRoom_1"``: ``Area_6/copyRoom_1``'s room file is named ``copy_Room_1.txt``.

:func:`write_room` writes one room from given objects, for tests that need exact content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .constants import CLASS_ALIASES, CLASSES, DATASET_DIR, IGNORE_INDEX

__all__ = ["DEFAULT_ROOMS", "HALLWAY6_LINE", "format_lines", "make_fixture", "make_room", "write_room"]

#: The line of ``Area_5/hallway_6/Annotations/ceiling_1.txt`` that holds the NUL in the download.
HALLWAY6_LINE = 180389

#: Rooms written by :func:`make_fixture` by default: every area has one, Area_5 (validation in the
#: standard protocol) two; ``hallway_6`` and ``copyRoom_1`` carry the known defects.
DEFAULT_ROOMS: dict[str, tuple[str, ...]] = {
    "Area_1": ("office_1", "hallway_1"),
    "Area_2": ("conferenceRoom_1",),
    "Area_3": ("office_2",),
    "Area_4": ("storage_1",),
    "Area_5": ("hallway_6", "office_1"),
    "Area_6": ("copyRoom_1", "office_3"),
}

# base colour of each class (the clutter is multicoloured)
_BASE = {
    "ceiling": (205, 205, 200),
    "floor": (120, 110, 100),
    "wall": (180, 175, 160),
    "beam": (190, 190, 185),
    "column": (170, 170, 165),
    "window": (90, 120, 150),
    "door": (140, 90, 50),
    "table": (150, 110, 70),
    "chair": (40, 40, 45),
    "sofa": (110, 30, 40),
    "bookcase": (100, 70, 40),
    "board": (235, 235, 235),
    "clutter": None,
    "stairs": (130, 125, 120),
}


def format_lines(xyz: np.ndarray, rgb: np.ndarray) -> str:
    """``x y z r g b`` lines as in the download: three decimals, integer colours, ``\\n`` ends."""
    import io

    xyz = np.asarray(xyz, np.float64)
    if not len(xyz):
        return ""
    table = np.concatenate([xyz, np.asarray(rgb, np.float64)], 1)
    buf = io.StringIO()
    np.savetxt(buf, table, fmt="%.3f %.3f %.3f %d %d %d")
    return buf.getvalue()


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("ascii") if isinstance(text, str) else text)


def write_room(
    room_dir: str | Path,
    objects: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
    room_file_name: str | None = None,
    seed: int = 0,
    nul_line: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Write one room folder: ``Annotations/<name>.txt`` per object and the room file holding
    every object's points (plus ``extra`` points no annotation covers) in a shuffled order.

    objects: ``(name, xyz float [K, 3], rgb int [K, 3])`` with names like ``"chair_1"``.
    room_file_name: default ``<folder>.txt``. nul_line: ``(object name, 1-based line)`` where the
    space between red and green becomes a NUL character.

    Returns ``{"room_file": Path, "labels": int64 [N], "instance": int64 [N]}``: the class index
    (:data:`IGNORE_INDEX` for extra points) and object index of every line of the room file.
    """
    d = Path(room_dir)
    rng = np.random.default_rng(seed)
    xs, cs, labs, insts = [], [], [], []
    for k, (name, xyz, rgb) in enumerate(objects):
        text = format_lines(xyz, rgb)
        if nul_line is not None and nul_line[0] == name:
            lines = text.split("\n")
            ln = nul_line[1] - 1
            if not 0 <= ln < len(xyz):
                raise ValueError(f"nul_line {nul_line[1]} is beyond the {len(xyz)} lines of {name}")
            x, y, z, r, g, b = lines[ln].split(" ")
            lines[ln] = f"{x} {y} {z} {r}\x00{g} {b}"
            text = "\n".join(lines)
        _write(d / "Annotations" / f"{name}.txt", text)
        cls = name.rsplit("_", 1)[0]
        xs.append(np.asarray(xyz, np.float64))
        cs.append(np.asarray(rgb, np.int64))
        labs.append(np.full(len(xyz), CLASSES.index(CLASS_ALIASES.get(cls, cls)), np.int64))
        insts.append(np.full(len(xyz), k, np.int64))
    if extra is not None and len(extra[0]):
        xs.append(np.asarray(extra[0], np.float64))
        cs.append(np.asarray(extra[1], np.int64))
        labs.append(np.full(len(extra[0]), IGNORE_INDEX, np.int64))
        insts.append(np.full(len(extra[0]), -1, np.int64))
    xyz, rgb = np.concatenate(xs), np.concatenate(cs)
    order = rng.permutation(len(xyz))
    room_file = d / (room_file_name or f"{d.name}.txt")
    _write(room_file, format_lines(xyz[order], rgb[order]))
    return {
        "room_file": room_file,
        "labels": np.concatenate(labs)[order],
        "instance": np.concatenate(insts)[order],
    }


# -- procedural rooms ---------------------------------------------------------------------------
def _box_surface(rng, lo, hi, n, faces=("x0", "x1", "y0", "y1", "z1")) -> np.ndarray:
    """``n`` points on the given faces of the box [lo, hi] (area-weighted)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    size = hi - lo
    areas = []
    for f in faces:
        ax = "xyz".index(f[0])
        other = [a for a in range(3) if a != ax]
        areas.append(size[other[0]] * size[other[1]])
    p = np.asarray(areas) / max(sum(areas), 1e-9)
    which = rng.choice(len(faces), size=n, p=p)
    pts = lo + rng.random((n, 3)) * size
    for i, f in enumerate(faces):
        ax = "xyz".index(f[0])
        sel = which == i
        pts[sel, ax] = hi[ax] if f[1] == "1" else lo[ax]
    return pts


def _rect(rng, axis: int, value: float, lo, hi, n) -> np.ndarray:
    """``n`` points on the axis-aligned rectangle {x[axis] = value} spanning lo..hi."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    pts = lo + rng.random((n, 3)) * (hi - lo)
    pts[:, axis] = value
    return pts


def _colors(rng, cls: str, n: int) -> np.ndarray:
    base = _BASE[cls]
    if base is None:
        base = rng.integers(30, 225, 3)
    c = np.asarray(base, float) + rng.normal(0, 8, (n, 3))
    return np.clip(np.round(c), 0, 255).astype(np.int64)


def make_room(
    room_dir: str | Path,
    *,
    points: int = 2000,
    seed: int = 0,
    origin: Sequence[float] = (0.0, 0.0),
    size: Sequence[float] | None = None,
    extra: int = 0,
    room_file_name: str | None = None,
    nul_line: int | None = None,
) -> dict[str, Any]:
    """Write one procedural room of about ``points`` points (see the module docstring).

    origin: the room's (x, y) corner in area coordinates. size: (width, depth, height) in metres
    (default: random, hallways long and narrow). extra: points no annotation covers (a little
    scanner noise in the air). nul_line: put the NUL defect on this line of ``ceiling_1.txt``
    (which then gets more than ``nul_line`` points). Returns :func:`write_room`'s dict plus
    ``"objects"`` (names) and ``"size"``.
    """
    d = Path(room_dir)
    rng = np.random.default_rng(seed)
    hallway = d.name.startswith("hallway")
    if size is None:
        size = (
            (rng.uniform(8, 14), rng.uniform(1.8, 2.6), 3.0)
            if hallway
            else (*rng.uniform(3.5, 7.0, 2), rng.uniform(2.7, 3.3))
        )
    w, dp, h = (float(v) for v in size)
    ox, oy = (float(v) for v in origin)
    lo, hi = np.array([ox, oy, 0.0]), np.array([ox + w, oy + dp, h])

    def at(fx, fy):  # a point inside the room, by fractions of its size
        return ox + fx * w, oy + fy * dp

    parts: list[tuple[str, str, Any]] = []  # (class, kind, args)
    parts.append(("ceiling", "rect", (2, h, lo, hi)))
    parts.append(("floor", "rect", (2, 0.0, lo, hi)))
    parts.append(("wall", "rect", (0, ox, lo, [ox, oy + dp, h])))
    parts.append(("wall", "rect", (0, ox + w, [ox + w, oy, 0], hi)))
    parts.append(("wall", "rect", (1, oy, lo, [ox + w, oy, h])))
    parts.append(("wall", "rect", (1, oy + dp, [ox, oy + dp, 0], hi)))
    # on the walls, slightly in front of them (as in scans)
    dx = rng.uniform(0.2, 0.5) * w
    parts.append(("door", "rect", (1, oy + 0.03, [ox + dx, oy, 0.0], [ox + dx + 0.9, oy, 2.1])))
    parts.append(
        (
            "window",
            "rect",
            (1, oy + dp - 0.02, [ox + 0.3 * w, oy + dp, 1.0], [ox + 0.3 * w + 1.2, oy + dp, 2.2]),
        )
    )
    parts.append(
        (
            "board",
            "rect",
            (0, ox + 0.02, [ox, oy + 0.2 * dp, 0.9], [ox, oy + 0.2 * dp + min(1.5, 0.6 * dp), 1.9]),
        )
    )
    parts.append(("column", "box", ([ox + w - 0.4, oy, 0.0], [ox + w, oy + 0.4, h], ("x0", "y1"))))
    parts.append(
        (
            "beam",
            "box",
            ([ox, oy + 0.5 * dp - 0.15, h - 0.35], [ox + w, oy + 0.5 * dp + 0.15, h], ("y0", "y1", "z0")),
        )
    )
    if hallway:
        sx, sy = at(0.75, 0.2)
        for k in range(4):  # stairs: four steps
            parts.append(
                (
                    "stairs",
                    "box",
                    (
                        [sx + 0.3 * k, sy, 0],
                        [sx + 0.3 * k + 0.3, sy + 0.9, 0.18 * (k + 1)],
                        ("x0", "y0", "y1", "z1"),
                    ),
                )
            )
        cx, cy = at(0.1, 0.6)
        parts.append(
            ("clutter", "box", ([cx, cy, 0], [cx + 0.5, cy + 0.4, 0.5], ("x0", "x1", "y0", "y1", "z1")))
        )
    else:
        tx, ty = at(0.45, 0.45)
        parts.append(
            ("table", "box", ([tx, ty, 0.7], [tx + 1.4, ty + 0.8, 0.75], ("x0", "x1", "y0", "y1", "z1")))
        )
        for k in range(2):
            cx, cy = tx + 0.2 + 0.6 * k, ty - 0.55
            parts.append(
                ("chair", "box", ([cx, cy, 0.0], [cx + 0.45, cy + 0.45, 0.9], ("x0", "x1", "y0", "y1", "z1")))
            )
        parts.append(
            (
                "sofa",
                "box",
                (
                    [*at(0.15, 0.75), 0.0],
                    [at(0.15, 0.75)[0] + 1.8, at(0.15, 0.75)[1] + 0.8, 0.8],
                    ("x0", "x1", "y0", "z1"),
                ),
            )
        )
        parts.append(
            (
                "bookcase",
                "box",
                (
                    [ox + w - 0.4, oy + 0.45 * dp, 0.0],
                    [ox + w - 0.05, oy + 0.45 * dp + 1.0, 1.9],
                    ("x0", "y0", "y1", "z1"),
                ),
            )
        )
        parts.append(
            (
                "clutter",
                "box",
                ([tx + 0.3, ty + 0.2, 0.75], [tx + 0.6, ty + 0.5, 0.95], ("x0", "x1", "y0", "y1", "z1")),
            )
        )
        parts.append(
            (
                "clutter",
                "box",
                (
                    [*at(0.05, 0.05), 0.0],
                    [at(0.05, 0.05)[0] + 0.35, at(0.05, 0.05)[1] + 0.35, 0.4],
                    ("x0", "x1", "y0", "y1", "z1"),
                ),
            )
        )

    def area(kind, args):
        if kind == "rect":
            axis, _, a, b = args
            s = np.abs(np.asarray(b, float) - np.asarray(a, float))
            s[axis] = 1.0
            return float(np.prod(s))
        a, b, faces = args
        s = np.asarray(b, float) - np.asarray(a, float)
        return sum(float(np.prod([s[i] for i in range(3) if i != "xyz".index(f[0])])) for f in faces)

    weights = np.array([area(k, a) for _, k, a in parts])
    counts = np.maximum(20, np.round(points * weights / weights.sum())).astype(int)
    if nul_line is not None:
        counts[0] = max(counts[0], int(nul_line * 1.05) + 100)  # margin for the duplicates removed below
    pieces = []
    for (_, kind, args), n in zip(parts, counts):
        if kind == "rect":
            axis, value, a, b = args
            xyz = _rect(rng, axis, value, a, b, n)
        else:
            a, b, faces = args
            xyz = _box_surface(rng, a, b, n, faces)
        pieces.append(np.round(xyz + rng.normal(0, 0.002, xyz.shape), 3))
    # unique coordinates across the room (first object wins), so every room point's object is known
    allxyz = np.concatenate(pieces)
    mm = np.round(allxyz * 1000).astype(np.int64) + (1 << 20)
    key = (mm[:, 0] << 42) | (mm[:, 1] << 21) | mm[:, 2]
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(len(allxyz), bool)
    keep[first] = True
    objects, number = [], {}
    bounds = np.cumsum([len(p) for p in pieces])[:-1]
    for (cls, _, _), xyz, kp in zip(parts, pieces, np.split(keep, bounds)):
        number[cls] = number.get(cls, 0) + 1
        objects.append((f"{cls}_{number[cls]}", xyz[kp], _colors(rng, cls, int(kp.sum()))))
    extra_pts = None
    if extra:
        ex = np.round(lo + rng.random((extra, 3)) * (hi - lo) * [1, 1, 0.5] + [0, 0, 0.6 * h], 3)
        extra_pts = (ex, rng.integers(0, 256, (extra, 3)))
    out = write_room(
        d,
        objects,
        extra=extra_pts,
        room_file_name=room_file_name,
        seed=seed,
        nul_line=("ceiling_1", nul_line) if nul_line is not None else None,
    )
    out["objects"] = [o[0] for o in objects]
    out["size"] = (w, dp, h)
    return out


def make_fixture(
    root: str | Path,
    *,
    rooms: Mapping[str, Iterable[str]] | None = None,
    points: int = 2000,
    seed: int = 0,
    defects: Iterable[str] = ("hallway_6", "copyRoom_1"),
    hallway6_line: int = HALLWAY6_LINE,
    extra: int = 0,
) -> Path:
    """Write a small S3DIS download under ``root`` and return ``root``.

    rooms: ``{"Area_1": ["office_1", ...], ...}`` (default :data:`DEFAULT_ROOMS`). points: about
    this many points per room. defects: which known defects to reproduce (see the module
    docstring); hallway6_line: where the NUL goes (default: the line of the download; a smaller
    number keeps a quick fixture small). extra: points per room no annotation covers.
    """
    root = Path(root)
    base = root / DATASET_DIR
    defects = set(defects)
    unknown = defects - {"hallway_6", "copyRoom_1"}
    if unknown:
        raise ValueError(f"unknown defects {sorted(unknown)}; expected 'hallway_6', 'copyRoom_1'")
    rooms = DEFAULT_ROOMS if rooms is None else rooms
    k = 0
    for area, names in rooms.items():
        x0 = -20.0 if area in ("Area_3", "Area_6") else 0.0  # some areas reach negative coordinates
        for j, name in enumerate(names):
            nul = (
                hallway6_line
                if (area == "Area_5" and name == "hallway_6" and "hallway_6" in defects)
                else None
            )
            copy = area == "Area_6" and name == "copyRoom_1" and "copyRoom_1" in defects
            make_room(
                base / area / name,
                points=points,
                seed=seed * 1000 + k,
                origin=(x0 + 16.0 * j, -3.0 + 4.0 * j),
                extra=extra,
                room_file_name="copy_Room_1.txt" if copy else None,
                nul_line=nul,
            )
            k += 1
    return root
