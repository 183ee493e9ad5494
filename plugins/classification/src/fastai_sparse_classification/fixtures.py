"""Tiny datasets in the exact on-disk formats of ModelNet and of mesh folders, built from
trimesh primitives, for tests, the conformance kit and ``Task.fixture``.

``make_fixture(root, layout)`` writes one layout under ``root`` and returns the data root to
give the dataset. Everything is seeded: the same call writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .readers import MODELNET10_CLASSES, MODELNET40_CLASSES

__all__ = ["FIXTURE_CLASSES", "LAYOUTS", "make_fixture", "primitive", "write_off"]

LAYOUTS = ("modelnet-off", "modelnet-normal", "mesh-folder")
#: classes used by the ModelNet fixtures (present in both ModelNet40 and ModelNet10)
FIXTURE_CLASSES = ("bed", "chair", "table")
_PRIMS = {
    "bed": "box",
    "chair": "cylinder",
    "table": "cone",
    "box": "box",
    "cone": "cone",
    "sphere": "icosphere",
}


def primitive(kind: str, rng: np.random.Generator) -> Any:
    """A watertight ``trimesh.Trimesh`` primitive (``box``, ``cylinder``, ``cone``, ``icosphere``,
    ``capsule``) with random proportions drawn from ``rng``."""
    import trimesh

    s = rng.uniform(0.6, 1.4, 3)
    if kind == "box":
        m = trimesh.creation.box(extents=s)
    elif kind == "cylinder":
        m = trimesh.creation.cylinder(radius=0.4 * s[0], height=s[2], sections=16)
    elif kind == "cone":
        m = trimesh.creation.cone(radius=0.5 * s[0], height=s[2], sections=16)
    elif kind == "icosphere":
        m = trimesh.creation.icosphere(subdivisions=2, radius=0.5 * s[0])
    elif kind == "capsule":
        m = trimesh.creation.capsule(height=s[2], radius=0.3 * s[0], count=[8, 8])
    else:
        raise ValueError(f"unknown primitive {kind!r}")
    m.apply_translation(rng.uniform(-5, 5, 3))  # ModelNet files are not centred
    return m


def write_off(path: str | Path, vertices: np.ndarray, faces: np.ndarray, glued: bool = False) -> Path:
    """Write an OFF file as ModelNet has them: ``OFF`` then ``V F 0`` (on the same line, glued to
    the header, when ``glued``: ``OFF8 12 0``), vertices ``%g``, faces ``3 a b c``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = f"OFF{len(vertices)} {len(faces)} 0\n" if glued else f"OFF\n{len(vertices)} {len(faces)} 0\n"
    lines = [head]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in np.asarray(vertices, np.float64)]
    lines += [f"3 {a} {b} {c}\n" for a, b, c in np.asarray(faces, np.int64)]
    path.write_text("".join(lines))
    return path


def _modelnet_off(root: Path, variant: str, per_split: dict[str, int], rng: np.random.Generator) -> Path:
    folder = root / ("ModelNet40" if variant == "modelnet40" else "ModelNet10")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.txt").write_text("Princeton ModelNet (tiny test fixture)\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    glued_done = False
    for cls in FIXTURE_CLASSES:
        num = 1
        for split, n in per_split.items():
            for _ in range(n):
                m = primitive(_PRIMS[cls], rng)
                write_off(
                    folder / cls / split / f"{cls}_{num:04d}.off", m.vertices, m.faces, glued=not glued_done
                )
                glued_done, num = True, num + 1
    return root


def _modelnet_normal(root: Path, per_split: dict[str, int], rng: np.random.Generator, n_points: int) -> Path:
    import trimesh

    folder = root / "modelnet40_normal_resampled"
    folder.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {s: [] for s in per_split}
    for cls in FIXTURE_CLASSES:
        num = 1
        for split, n in per_split.items():
            for _ in range(n):
                m = primitive(_PRIMS[cls], rng)
                m.apply_translation(-m.bounds.mean(0))
                m.apply_scale(1.0 / np.linalg.norm(m.vertices, axis=1).max())
                pts, fid = trimesh.sample.sample_surface(m, n_points, seed=int(rng.integers(2**31)))
                table = np.hstack([pts, m.face_normals[fid]])
                sid = f"{cls}_{num:04d}"
                (folder / cls).mkdir(exist_ok=True)
                np.savetxt(folder / cls / f"{sid}.txt", table, fmt="%.6f", delimiter=",")
                lists[split].append(sid)
                num += 1
    for variant, names in (("modelnet40", MODELNET40_CLASSES), ("modelnet10", MODELNET10_CLASSES)):
        (folder / f"{variant}_shape_names.txt").write_text("\n".join(names) + "\n")
        for split, ids in lists.items():
            (folder / f"{variant}_{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def _mesh_folder(root: Path, rng: np.random.Generator, split_folders: bool, n_points: int) -> Path:
    """Three classes, five files each, one per format: OFF (glued header), PLY (binary), OBJ,
    STL (binary) and a comma-separated x,y,z,nx,ny,nz text file."""
    import trimesh

    formats = ("off", "ply", "obj", "stl", "txt")
    for cls in ("box", "cone", "sphere"):
        for k, fmt in enumerate(formats):
            m = primitive(_PRIMS[cls], rng)
            sub = ("test" if k == len(formats) - 1 else "train") if split_folders else None
            d = (root / sub / cls) if sub else root / cls
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"{cls}_{k:03d}.{fmt}"
            if fmt == "off":
                write_off(path, m.vertices, m.faces, glued=True)
            elif fmt == "txt":
                pts, fid = trimesh.sample.sample_surface(m, n_points, seed=int(rng.integers(2**31)))
                np.savetxt(path, np.hstack([pts, m.face_normals[fid]]), fmt="%.6f", delimiter=",")
            else:
                m.export(path)
    (root / "notes.md").write_text("files outside class folders are ignored\n")
    return root


def make_fixture(
    root: str | Path,
    layout: str = "modelnet-off",
    *,
    variant: str = "modelnet40",
    train: int = 2,
    test: int = 1,
    points: int = 400,
    split_folders: bool = False,
    seed: int = 0,
) -> Path:
    """Write a tiny dataset under ``root`` and return ``root``.

    layout ``"modelnet-off"``: ``ModelNet40/`` (or ``ModelNet10/`` for ``variant="modelnet10"``)
    with ``<class>/{train,test}/<class>_<nnnn>.off`` for the classes :data:`FIXTURE_CLASSES`
    (``train`` and ``test`` files each), the first file with the glued header ``OFF<V> <F> 0``, plus a
    ``README.txt`` and a ``.DS_Store`` in the folder. ``"modelnet-normal"``:
    ``modelnet40_normal_resampled/`` with the 40 and 10 shape-name files, the train/test id lists of
    both variants and ``<class>/<id>.txt`` files of ``points`` comma-separated ``x,y,z,nx,ny,nz``
    lines. ``"mesh-folder"``: ``<class>/`` folders (box, cone, sphere) with one OFF, PLY, OBJ, STL
    and text file each (``split_folders``: ``train/<class>/`` and ``test/<class>/`` instead).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_split = {"train": int(train), "test": int(test)}
    if layout == "modelnet-off":
        return _modelnet_off(root, variant, per_split, rng)
    if layout == "modelnet-normal":
        return _modelnet_normal(root, per_split, rng, points)
    return _mesh_folder(root, rng, split_folders, points)
