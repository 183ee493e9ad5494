"""Readers for the three ShapeNet part layouts users have.

``"normal"``: ``shapenetcore_partanno_segmentation_benchmark_v0_normal/``
    ``<synset>/<shape>.txt`` one point per line ``x y z nx ny nz part`` (part = global id
    0..49 written as a float), ``synsetoffset2category.txt`` (``Name<TAB>synset``) and
    ``train_test_split/shuffled_{train,val,test}_file_list.json`` (entries
    ``"shape_data/<synset>/<shape>"``).
``"v0"``: ``shapenetcore_partanno_segmentation_benchmark_v0/``
    ``<synset>/points/<shape>.pts`` (``x y z``) and ``<synset>/points_label/<shape>.seg``
    (1-based part id within the category), same split lists.
``"iccv17"``: the ShapeNet part challenge (ICCV 2017) layout:
    ``{train,val,test}_data/<synset>/<id>.pts`` and ``{train,val,test}_label/<synset>/<id>.seg``
    (1-based part ids within the category); also the flat variant written by SparseConvNet's
    split script, ``<synset>/<id>.pts.train`` / ``.pts.valid`` / ``.pts.test`` next to
    ``<synset>/<id>.seg``.

Every sample is a :class:`~fastai_sparse.geometry.PointCloud`: ``xyz`` float32 [N, 3],
``attrs["normals"]`` float32 [N, 3] (``"normal"`` layout only), ``attrs["labels"]`` int64 [N]
GLOBAL part ids (0..49), ``meta``: ``category`` (name), ``synset``, ``category_index``
(0..15), ``id`` (``"<synset>/<shape>"``), ``path``, ``layout``. Bad input raises
:class:`~fastai_sparse.errors.DataFormatError` naming the file and line (or split entry).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import PointCloud

from .categories import CATEGORIES, Category, get_category

__all__ = [
    "LAYOUTS",
    "ShapeNetPart",
    "ShapeRecord",
    "detect_layout",
    "list_records",
    "read_normal_txt",
    "read_points",
    "read_pts",
    "read_record",
    "read_seg",
    "read_split_list",
    "read_synsetoffset",
    "shapenet_part",
]

LAYOUTS = ("normal", "v0", "iccv17")
#: split name given by a task -> name used in the files
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_FLAT_SUFFIX = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}
_SYNSET = re.compile(r"^\d{8}$")


def _category_of(synset: str, path: object, field: str = "synset") -> Category:
    try:
        return get_category(synset)
    except KeyError:
        known = ", ".join(c.synset for c in CATEGORIES)
        raise DataFormatError(
            f"unknown synset {synset!r}, expected one of the 16 part categories ({known})",
            path=path,
            field=field,
        ) from None


# -- single files ----------------------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        raise DataFormatError("file not found", path=path) from None
    except UnicodeDecodeError as e:
        raise DataFormatError(f"not a text file ({e})", path=path) from None


def read_seg(path: str | Path) -> np.ndarray:
    """int64 [N]: one integer part id per line of a ``.seg`` file (blank lines skipped).

    Raises DataFormatError naming the line for a line with more than one value or a
    non-integer value.
    """
    path = Path(path)
    lines = _lines(path)
    vals: list[int] = []
    for ln, line in enumerate(lines, start=1):
        tok = line.split()
        if not tok:
            continue
        if len(tok) != 1:
            raise DataFormatError(
                f"line {ln}: found {len(tok)} values {line.strip()!r}, expected 1 (a part id)",
                path=path,
                field="part",
            )
        try:
            f = float(tok[0])
        except ValueError:
            raise DataFormatError(
                f"line {ln}: found {tok[0]!r}, expected an integer part id", path=path, field="part"
            ) from None
        if not np.isfinite(f) or f != int(f):
            raise DataFormatError(
                f"line {ln}: found {tok[0]!r}, expected an integer part id", path=path, field="part"
            )
        vals.append(int(f))
    if not vals:
        raise DataFormatError("no part ids, expected one per point", path=path, field="part")
    return np.asarray(vals, np.int64)


def read_pts(path: str | Path) -> np.ndarray:
    """float32 [N, 3] from a ``.pts`` file (``x y z`` per line); DataFormatError names bad lines."""
    from fastai_sparse.io import read_points_txt

    return read_points_txt(path, columns=("x", "y", "z"), delimiter=None).xyz


def _data_line_numbers(path: Path) -> list[int]:
    return [i for i, line in enumerate(_lines(path), start=1) if line.split("#", 1)[0].strip()]


def _check_parts(labels: np.ndarray, cat: Category, path: Path, local: bool) -> None:
    lo, hi = (1, cat.num_parts) if local else (cat.first, cat.first + cat.num_parts - 1)
    bad = (labels < lo) | (labels > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        numbers = _data_line_numbers(path)
        line = numbers[i] if i < len(numbers) else i + 1
        kind = "1-based part id within the category" if local else "global part id"
        raise DataFormatError(
            f"line {line}: part {int(labels[i])} is outside {cat.name} ({cat.synset}): expected a {kind} in "
            f"{lo}..{hi} ({int(bad.sum())} bad value(s) in the file)",
            path=path,
            field="part",
        )


def _meta(cat: Category, shape: str, path: Path, layout: str) -> dict:
    return {
        "category": cat.name,
        "synset": cat.synset,
        "category_index": cat.index,
        "id": f"{cat.synset}/{shape}",
        "path": str(path),
        "layout": layout,
    }


def read_normal_txt(path: str | Path, synset: str | None = None, shape: str | None = None) -> PointCloud:
    """One ``v0_normal`` file: ``x y z nx ny nz part`` per line -> PointCloud with normals and
    global part labels. ``synset`` defaults to the parent folder name."""
    from fastai_sparse.io import read_points_txt

    path = Path(path)
    synset = synset or path.parent.name
    cat = _category_of(synset, path)
    cloud = read_points_txt(path, columns=("x", "y", "z", "nx", "ny", "nz", "label"), delimiter=None)
    labels = np.asarray(cloud.attrs["labels"], np.int64)
    _check_parts(labels, cat, path, local=False)
    return PointCloud(
        cloud.xyz,
        {"normals": cloud.attrs["normals"].astype(np.float32), "labels": labels},
        meta=_meta(cat, shape or path.stem, path, "normal"),
    )


def read_points(
    pts_path: str | Path,
    seg_path: str | Path | None,
    synset: str,
    shape: str | None = None,
    layout: str = "v0",
) -> PointCloud:
    """A ``.pts`` file plus its ``.seg`` file (1-based ids within the category) -> PointCloud
    with global part labels. ``seg_path=None`` reads the points only (no labels)."""
    pts_path = Path(pts_path)
    cat = _category_of(synset, pts_path)
    xyz = read_pts(pts_path)
    attrs = {}
    if seg_path is not None:
        seg_path = Path(seg_path)
        if not seg_path.is_file():
            raise DataFormatError(
                f"no label file for the points file {pts_path}", path=seg_path, field="part"
            )
        local = read_seg(seg_path)
        if len(local) != len(xyz):
            raise DataFormatError(
                f"{len(local)} part ids for {len(xyz)} points in {pts_path}: expected one id per point "
                f"(line {min(len(local), len(xyz)) + 1} has no counterpart)",
                path=seg_path,
                field="part",
            )
        _check_parts(local, cat, seg_path, local=True)
        attrs["labels"] = cat.to_global(local)
    name = shape or pts_path.name.split(".pts")[0]
    return PointCloud(xyz, attrs, meta=_meta(cat, name, pts_path, layout))


def read_synsetoffset(path: str | Path) -> dict[str, str]:
    """``synsetoffset2category.txt`` -> {name: synset}; every synset must be a known category."""
    path = Path(path)
    out: dict[str, str] = {}
    for ln, line in enumerate(_lines(path), start=1):
        tok = line.split()
        if not tok:
            continue
        if len(tok) != 2:
            raise DataFormatError(
                f"line {ln}: found {len(tok)} values {line.strip()!r}, expected 'Name<TAB>synset'",
                path=path,
                field="synset",
            )
        cat = _category_of(tok[1], f"{path}: line {ln}")
        out[tok[0]] = cat.synset
    return out


def read_split_list(path: str | Path) -> list[tuple[str, str]]:
    """``shuffled_<split>_file_list.json`` -> [(synset, shape)] in file order.

    Entries must look like ``"shape_data/<synset>/<shape>"`` with a known synset.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError("split list not found", path=path) from None
    except json.JSONDecodeError as e:
        raise DataFormatError(f"not valid JSON: {e}", path=path) from None
    if not isinstance(entries, list):
        raise DataFormatError(f"expected a JSON list of strings, found {type(entries).__name__}", path=path)
    out = []
    for i, e in enumerate(entries):
        parts = e.split("/") if isinstance(e, str) else []
        if len(parts) != 3 or not parts[2] or not _SYNSET.match(parts[1]):
            raise DataFormatError(
                f"entry {i}: found {e!r}, expected 'shape_data/<synset>/<shape>'", path=path, field="entry"
            )
        _category_of(parts[1], f"{path}: entry {i}")
        out.append((parts[1], parts[2]))
    return out


# -- layouts and records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeRecord:
    """Where one shape lives: its points file, label file (or None), synset and shape id."""

    points: Path
    labels: Path | None
    synset: str
    shape: str
    layout: str


def read_record(rec: ShapeRecord) -> PointCloud:
    """Read one :class:`ShapeRecord` into a PointCloud."""
    if rec.layout == "normal":
        return read_normal_txt(rec.points, rec.synset, rec.shape)
    return read_points(rec.points, rec.labels, rec.synset, rec.shape, layout=rec.layout)


def _synset_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and _SYNSET.match(p.name))


def detect_layout(root: str | Path) -> str:
    """``"normal"``, ``"v0"`` or ``"iccv17"`` from the files under ``root``.

    Raises DataFormatError describing what was expected when none matches.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError("dataset root is not a folder", path=root)
    if any((root / f"{s}_data").is_dir() for s in ("train", "val", "test")):
        return "iccv17"
    for d in _synset_dirs(root):
        if (d / "points").is_dir():
            return "v0"
        if next(d.glob("*.txt"), None) is not None:
            return "normal"
        if next(d.glob("*.pts*"), None) is not None:
            return "iccv17"
    raise DataFormatError(
        "cannot tell the ShapeNet part layout: expected <synset>/<shape>.txt (v0_normal), "
        "<synset>/points/*.pts (v0), {train,val,test}_data/<synset>/*.pts or <synset>/*.pts.train (ICCV17)",
        path=root,
    )


def _split_file(root: Path, split: str, split_dir: Path | None) -> Path:
    d = split_dir if split_dir is not None else root / "train_test_split"
    return d / f"shuffled_{split}_file_list.json"


def list_records(
    root: str | Path, split: str, layout: str | None = None, split_dir: str | Path | None = None
) -> list[ShapeRecord]:
    """Records of the shapes of ``split`` (``train``, ``val``/``valid``, ``test`` or ``trainval``).

    ``normal`` and ``v0`` read ``train_test_split/shuffled_<split>_file_list.json`` (or the
    one in ``split_dir``); a listed shape with no file raises DataFormatError naming the split
    file and entry. ``iccv17`` lists ``<split>_data/<synset>/*.pts`` (or the flat
    ``<synset>/*.pts.<split>`` files).
    """
    root = Path(root)
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if split == "trainval":
        return list_records(root, "train", layout, split_dir) + list_records(root, "val", layout, split_dir)
    if split not in _SPLIT_ALIASES:
        raise ValueError(f"split must be one of {[*sorted(_SPLIT_ALIASES), 'trainval']}, got {split!r}")
    split = _SPLIT_ALIASES[split]
    if layout == "iccv17":
        return _iccv17_records(root, split)
    sf = _split_file(root, split, Path(split_dir) if split_dir is not None else None)
    if not sf.is_file():
        raise DataFormatError(
            f"split list not found; the {layout} layout needs train_test_split/shuffled_{split}_file_list.json "
            "under the root (or pass split_dir=<folder with the split lists>)",
            path=sf,
        )
    out = []
    for i, (synset, shape) in enumerate(read_split_list(sf)):
        if layout == "normal":
            pts, seg = root / synset / f"{shape}.txt", None
        else:
            pts, seg = (
                root / synset / "points" / f"{shape}.pts",
                root / synset / "points_label" / f"{shape}.seg",
            )
        if not pts.is_file():
            raise DataFormatError(
                f"entry {i} 'shape_data/{synset}/{shape}' has no file: {pts} does not exist",
                path=sf,
                field="entry",
            )
        out.append(ShapeRecord(pts, seg, synset, shape, layout))
    return out


def _iccv17_records(root: Path, split: str) -> list[ShapeRecord]:
    out: list[ShapeRecord] = []
    data = root / f"{split}_data"
    if data.is_dir():
        for d in _synset_dirs(data):
            _category_of(d.name, d)
            for pts in sorted(d.glob("*.pts")):
                seg = root / f"{split}_label" / d.name / f"{pts.stem}.seg"
                out.append(ShapeRecord(pts, seg if seg.is_file() else None, d.name, pts.stem, "iccv17"))
        return out
    for d in _synset_dirs(root):
        _category_of(d.name, d)
        for suffix in _FLAT_SUFFIX[split]:
            for pts in sorted(d.glob(f"*.pts.{suffix}")):
                shape = pts.name[: -len(f".pts.{suffix}")]
                out.append(ShapeRecord(pts, d / f"{shape}.seg", d.name, shape, "iccv17"))
    return out


# -- the dataset -----------------------------------------------------------------------------------


class ShapeNetPart(Sequence):
    """A lazy Sequence of PointClouds for one split of a ShapeNet part download.

    root: the dataset folder; split: ``train``, ``val`` (``valid``), ``test`` or ``trainval``;
    layout: ``"normal"``, ``"v0"``, ``"iccv17"`` or None (detected); categories: names,
    synsets or indices to keep (default all); split_dir: folder holding the
    ``shuffled_*_file_list.json`` files when they are not under ``root/train_test_split``;
    labels_required: raise when a shape has no label file (default True); normals: require
    surface normals (only the ``normal`` layout has them: DataFormatError otherwise).
    Items are read from disk on every access (files are small).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        layout: str | None = None,
        categories: Sequence[str | int] | None = None,
        split_dir: str | Path | None = None,
        labels_required: bool = True,
        normals: bool = False,
    ):
        self.root, self.split = Path(root), split
        self.layout = layout or detect_layout(self.root)
        if normals and self.layout != "normal":
            raise DataFormatError(
                f"the {self.layout!r} layout has no surface normals, but normals were requested: use the "
                "shapenet_v0_normal download (x y z nx ny nz part) or the task 'shapenet-part-nonormals'",
                path=self.root,
                field="normals",
            )
        recs = list_records(self.root, split, self.layout, split_dir)
        if categories is not None:
            keep = {get_category(c).synset for c in categories}
            recs = [r for r in recs if r.synset in keep]
        if labels_required:
            for r in recs:
                if r.layout != "normal" and r.labels is None:
                    raise DataFormatError(f"no label file for {r.points}", path=r.points, field="part")
        self.records = recs

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return read_record(self.records[i])

    def __repr__(self) -> str:
        return f"ShapeNetPart(root={str(self.root)!r}, split={self.split!r}, layout={self.layout!r}, n={len(self)})"


def shapenet_part(split: str = "train", root: str | Path | None = None, **kwargs) -> ShapeNetPart:
    """Dataset factory for the tasks: ``ShapeNetPart(root, split, **kwargs)``."""
    if root is None:
        raise DataFormatError("the ShapeNet part dataset needs root=<dataset folder>")
    return ShapeNetPart(root, split, **kwargs)
