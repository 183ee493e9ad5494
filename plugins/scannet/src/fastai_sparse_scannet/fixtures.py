"""Small synthetic ScanNet v2 datasets written in the exact on-disk formats.

:func:`make_fixture` writes a data root with a few procedural rooms (floor, walls and
box-shaped furniture as triangulated grids), each scene with the five ScanNet files (mesh PLY,
labels PLY, segments JSON, aggregation JSON, metadata txt with an axis alignment), the label
table with the real 17-column header and a handful of real rows, and the three split lists.
:func:`write_scene` writes one scene from arrays, for tests that need hand-made content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .constants import BENCHMARK_COLORS, BENCHMARK_IDS, TSV_COLUMNS, TSV_NAME

__all__ = ["FIXTURE_TSV_ROWS", "make_fixture", "write_label_table", "write_ply_mesh", "write_scene"]

#: A handful of rows of the real label table (same values as the official file).
FIXTURE_TSV_ROWS = (
    "1\twall\twall\t8277\t1\t12\twall\twall\tWall\t\t\t\t\tn04546855\twall.n.01\twall\t1",
    "2\tchair\tchair\t4646\t5\t4\tchair\tchair\tChair\tchair\tchair\tchair\t3001627\tn03001627\tchair.n.01\tchair\t3",
    "3\tfloor\tfloor\t1553\t2\t5\tfloor\tfloor\tFloor\t\t\t\t\tn03365592\tfloor.n.01\tfloor\t2",
    "4\ttable\ttable\t1170\t7\t10\ttable\ttable\tTable\ttable\ttable\ttable\t4379243\tn04379243\ttable.n.02\ttable\t5",
    "56\ttrash can\ttrash can\t1090\t39\t6\tgarbage bin\totherfurniture\tFurniture\t\t\ttrash_bin\t2747177"
    "\tn02747177\tashcan.n.01\tobjects\t39",
    "13\tpillow\tpillow\t937\t18\t7\tpillow\tpillow\tObjects\t\t\tpillow\t3938244\tn03938244\tpillow.n.01"
    "\tcushion\t8",
    "7\tcabinet\tcabinet\t731\t3\t6\tcabinet\tcabinet\tFurniture\t\t\tcabinet\t2933112\tn02933112"
    "\tcabinet.n.01\tcabinet\t7",
    "11\tbed\tbed\t370\t4\t1\tbed\tbed\tBed\tbed\tbed\tbed\t2818832\tn02818832\tbed.n.01\tbed\t11",
)
_RAW = {"wall": 1, "chair": 5, "floor": 2, "table": 7, "trash can": 39, "pillow": 18, "cabinet": 3, "bed": 4}
_RAW_ID = {
    "wall": 1,
    "chair": 2,
    "floor": 3,
    "table": 4,
    "trash can": 56,
    "pillow": 13,
    "cabinet": 7,
    "bed": 11,
}
_NYU40_COLORS = {nyu: tuple(int(c) for c in col) for nyu, col in zip(BENCHMARK_IDS, BENCHMARK_COLORS)}

VERTEX_DTYPE = [
    ("x", "<f4"),
    ("y", "<f4"),
    ("z", "<f4"),
    ("red", "u1"),
    ("green", "u1"),
    ("blue", "u1"),
    ("alpha", "u1"),
]


def write_label_table(path: str | Path, rows: Sequence[str] = FIXTURE_TSV_ROWS) -> Path:
    """Write a label table: the official 17-column header and ``rows`` (tab-separated, CRLF
    line ends as in the official file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write("\t".join(TSV_COLUMNS) + "\r\n")
        for r in rows:
            f.write(r + "\r\n")
    return path


def write_ply_mesh(
    path: str | Path, xyz: np.ndarray, rgb: np.ndarray, faces: np.ndarray, label: np.ndarray | None = None
) -> Path:
    """Write a ScanNet-style binary little-endian PLY: vertex float x, y, z, uchar red, green,
    blue, alpha (+ ushort label); face ``list uchar int vertex_indices``."""
    from plyfile import PlyData, PlyElement

    n = len(xyz)
    dtype = VERTEX_DTYPE + ([("label", "<u2")] if label is not None else [])
    v = np.empty(n, dtype=dtype)
    v["x"], v["y"], v["z"] = (np.asarray(xyz, np.float32)[:, k] for k in range(3))
    rgb = np.asarray(rgb, np.uint8)
    v["red"], v["green"], v["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    v["alpha"] = 255
    if label is not None:
        v["label"] = np.asarray(label, np.uint16)
    f = np.empty(len(faces), dtype=[("vertex_indices", "<i4", (3,))])
    f["vertex_indices"] = np.asarray(faces, np.int32)
    ply = PlyData(
        [
            PlyElement.describe(v, "vertex"),
            PlyElement.describe(
                f, "face", len_types={"vertex_indices": "u1"}, val_types={"vertex_indices": "i4"}
            ),
        ],
        text=False,
        byte_order="<",
        comments=["MLIB generated"],
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ply.write(str(path))
    return path


def write_scene(
    scene_dir: str | Path,
    xyz: np.ndarray,
    rgb: np.ndarray,
    faces: np.ndarray,
    *,
    nyu40: np.ndarray | None = None,
    segs: np.ndarray | None = None,
    groups: Sequence[Mapping[str, Any]] | None = None,
    axis_align: np.ndarray | None = None,
) -> Path:
    """Write one scene folder (its name is the scene id) in the ScanNet v2 formats.

    xyz float [N, 3], rgb uint8 [N, 3], faces int [F, 3]; nyu40 int [N] -> labels PLY; segs
    int [N] -> segs.json; groups (dicts with objectId, label, segments) -> aggregation.json;
    axis_align float [4, 4] -> ``<scene>.txt``. Files whose data is None are not written.
    """
    d = Path(scene_dir)
    scene = d.name
    d.mkdir(parents=True, exist_ok=True)
    write_ply_mesh(d / f"{scene}_vh_clean_2.ply", xyz, rgb, faces)
    if nyu40 is not None:
        nyu40 = np.asarray(nyu40)
        vis = np.array([_NYU40_COLORS.get(int(i), (0, 0, 0)) for i in range(int(nyu40.max(initial=0)) + 1)])
        write_ply_mesh(d / f"{scene}_vh_clean_2.labels.ply", xyz, vis[nyu40], faces, label=nyu40)
    if segs is not None:
        obj = {
            "params": {"kThresh": "0.0001", "segMinVerts": "20", "minPoints": "750", "maxPoints": "5000"},
            "sceneId": f"{scene}_vh_clean_2",
            "segIndices": [int(s) for s in segs],
        }
        (d / f"{scene}_vh_clean_2.0.010000.segs.json").write_text(json.dumps(obj))
    if groups is not None:
        obj = {
            "sceneId": f"scannet.{scene}",
            "appId": "Aggregator.v2",
            "segGroups": [
                {
                    "id": i,
                    "objectId": int(g["objectId"]),
                    "segments": [int(s) for s in g["segments"]],
                    "label": str(g["label"]),
                }
                for i, g in enumerate(groups)
            ],
            "segmentsFile": f"scannet.{scene}_vh_clean_2.0.010000.segs.json",
        }
        (d / f"{scene}.aggregation.json").write_text(json.dumps(obj, indent=1))
    lines = [
        "colorHeight = 968",
        "colorWidth = 1296",
        "depthHeight = 480",
        "depthWidth = 640",
    ]
    if axis_align is not None:
        lines.insert(0, "axisAlignment = " + " ".join(f"{v:.9g}" for v in np.asarray(axis_align).reshape(-1)))
    (d / f"{scene}.txt").write_text("\n".join(lines) + "\n")
    return d


# -- procedural rooms ---------------------------------------------------------------------------
def _grid(origin, u, v, nu: int, nv: int):
    """A triangulated (nu+1) x (nv+1) grid spanning origin + [0,1] u + [0,1] v."""
    a = np.linspace(0, 1, nu + 1)
    b = np.linspace(0, 1, nv + 1)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    pts = np.asarray(origin) + aa.reshape(-1, 1) * np.asarray(u) + bb.reshape(-1, 1) * np.asarray(v)
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
    q0, q1, q2, q3 = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    tris = np.concatenate(
        [np.stack([q0, q1, q2], -1).reshape(-1, 3), np.stack([q0, q2, q3], -1).reshape(-1, 3)]
    )
    # patch id of every vertex: a 2x2 split of the grid (segments of the over-segmentation)
    patch = (aa >= 0.5).astype(int) * 2 + (bb >= 0.5).astype(int)
    return pts, tris, patch.reshape(-1)


def _box_surfaces(lo, hi, step):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    e = hi - lo
    n = np.maximum(1, np.round(e / step).astype(int))
    x, y, z = np.eye(3) * e
    return [
        (lo + z, x, y, n[0], n[1]),  # top
        (lo, x, z, n[0], n[2]),
        (lo + y, x, z, n[0], n[2]),
        (lo, y, z, n[1], n[2]),
        (lo + x, y, z, n[1], n[2]),
    ]


def _room(rng: np.random.Generator, vertices: int):
    """A procedural room in its aligned frame: surfaces, each with a category and object id."""
    size = np.array([rng.uniform(3.5, 5.0), rng.uniform(3.0, 4.5), 2.5])
    furniture = [("bed", (1.4, 2.0, 0.5)), ("table", (1.0, 0.7, 0.75)), ("chair", (0.5, 0.5, 0.9))]
    furniture += [("cabinet", (0.6, 0.5, 1.2)), ("trash can", (0.3, 0.3, 0.4)), ("pillow", (0.5, 0.35, 0.15))]
    # area -> grid step so the total vertex count is about `vertices`
    area = size[0] * size[1] + 2 * (size[0] + size[1]) * size[2]
    area += sum(2 * (a * b + a * c + b * c) for _, (a, b, c) in furniture)
    step = float(np.sqrt(area / max(vertices, 50)))
    surfaces = [("floor", 0, (np.zeros(3), np.array([size[0], 0, 0]), np.array([0, size[1], 0])))]
    wall_z = np.array([0, 0, size[2]])
    for k, (o, u) in enumerate(
        [
            ((0, 0, 0), (size[0], 0, 0)),
            ((0, size[1], 0), (size[0], 0, 0)),
            ((0, 0, 0), (0, size[1], 0)),
            ((size[0], 0, 0), (0, size[1], 0)),
        ]
    ):
        surfaces.append(("wall", 1 + k, (np.asarray(o, float), np.asarray(u, float), wall_z)))
    boxes = []
    for j, (cat, dims) in enumerate(furniture):
        dims = np.asarray(dims) * rng.uniform(0.9, 1.1, 3)
        lo = np.array(
            [rng.uniform(0.1, size[0] - dims[0] - 0.1), rng.uniform(0.1, size[1] - dims[1] - 0.1), 0.0]
        )
        if cat == "pillow":  # on the bed
            bed_lo, bed_hi = boxes[0][1], boxes[0][2]
            lo = np.array([bed_lo[0] + 0.1, bed_lo[1] + 0.1, bed_hi[2]])
        boxes.append((cat, lo, lo + dims))
        for o, u, v, nu, nv in _box_surfaces(lo, lo + dims, step):
            surfaces.append((cat, 5 + j, (o, u, v, nu, nv)))
    xyz, faces, seg, cats, objs = [], [], [], [], []
    base = 0
    for s, (cat, obj, geo) in enumerate(surfaces):
        if len(geo) == 3:
            o, u, v = geo
            nu = max(1, round(float(np.linalg.norm(u)) / step))
            nv = max(1, round(float(np.linalg.norm(v)) / step))
        else:
            o, u, v, nu, nv = geo
        pts, tris, patch = _grid(o, u, v, nu, nv)
        xyz.append(pts)
        faces.append(tris + base)
        seg.append(s * 4 + patch)
        cats += [cat] * len(pts)
        objs.append(np.full(len(pts), obj))
        base += len(pts)
    return (
        size,
        np.concatenate(xyz),
        np.concatenate(faces),
        np.concatenate(seg),
        np.array(cats),
        np.concatenate(objs),
        boxes,
    )


def make_scene(scene_dir: str | Path, *, vertices: int = 2000, seed: int = 0, labelled: bool = True) -> dict:
    """Write one procedural scene; return its ground truth (aligned-frame boxes etc.)."""
    rng = np.random.default_rng(seed)
    size, xyz, faces, seg, cats, objs, boxes = _room(rng, vertices)
    # the raw scan frame: rotated about z and shifted; axisAlignment maps it back
    yaw = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    shift = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), 0.0])
    raw = (xyz - size / 2 * [1, 1, 0]) @ rot.T + shift + size / 2 * [1, 1, 0]
    align = np.eye(4)
    align[:3, :3] = rot.T
    align[:3, 3] = -rot.T @ (shift + size / 2 * [1, 1, 0]) + size / 2 * [1, 1, 0]
    palette = {
        "floor": (120, 100, 80),
        "wall": (200, 200, 190),
        "bed": (60, 60, 160),
        "table": (150, 90, 40),
        "chair": (180, 40, 40),
        "cabinet": (90, 140, 90),
        "trash can": (40, 40, 40),
        "pillow": (230, 230, 120),
    }
    rgb = np.array([palette[k] for k in cats], float) + rng.normal(0, 8, (len(cats), 3))
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    nyu40 = np.array([_RAW[k] for k in cats], np.int64)
    # one wall segment stays unannotated (label 0, in no group), as real scans have
    unannotated = seg == 4 * 1 + 3
    nyu40[unannotated] = 0
    groups = []
    for obj in np.unique(objs):
        segments = np.unique(seg[(objs == obj) & ~unannotated]).tolist()
        groups.append({"objectId": int(obj), "label": str(cats[objs == obj][0]), "segments": segments})
    write_scene(
        scene_dir,
        raw,
        rgb,
        faces,
        nyu40=nyu40 if labelled else None,
        segs=seg if labelled else None,
        groups=groups if labelled else None,
        axis_align=align,
    )
    return {"size": size, "boxes": boxes, "axis_align": align, "vertices": len(xyz), "faces": len(faces)}


def make_fixture(
    root: str | Path,
    scenes: Mapping[str, Sequence[str]] | None = None,
    vertices: int = 2000,
    seed: int = 0,
) -> Path:
    """Write a tiny ScanNet v2 data root and return it.

    scenes: ``{"train": [...], "val": [...], "test": [...]}`` scene ids (default 2 train, 1 val,
    1 test). Train/val scenes go to ``scans/`` with all five files; test scenes to
    ``scans_test/`` without labels. vertices: about how many vertices per scene.
    """
    root = Path(root)
    if scenes is None:
        scenes = {
            "train": ["scene0000_00", "scene0001_00"],
            "val": ["scene0002_00"],
            "test": ["scene0707_00"],
        }
    root.mkdir(parents=True, exist_ok=True)
    write_label_table(root / TSV_NAME)
    names = {"train": "scannetv2_train.txt", "val": "scannetv2_val.txt", "test": "scannetv2_test.txt"}
    k = 0
    for split, ids in scenes.items():
        (root / names[split]).write_text("".join(f"{s}\n" for s in ids))
        for s in ids:
            sub = "scans_test" if split == "test" else "scans"
            make_scene(root / sub / s, vertices=vertices, seed=seed * 1000 + k, labelled=split != "test")
            k += 1
    return root
