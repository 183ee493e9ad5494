"""Readers for the ScanNet v2 layout as downloaded.

::

    ROOT/
      scannetv2-labels.combined.tsv          raw category -> nyu40id (17 columns)
      scannetv2_train.txt / _val / _test     official split lists (or ROOT/Tasks/Benchmark/)
      scans/<scene>/
        <scene>_vh_clean_2.ply               float x, y, z; uchar red, green, blue, alpha; faces
        <scene>_vh_clean_2.labels.ply        same + ushort label (NYU40 id, 0 = unannotated)
        <scene>_vh_clean_2.0.010000.segs.json  {"segIndices": [segment id per vertex]}
        <scene>.aggregation.json             {"segGroups": [{"id", "objectId", "segments", "label"}]}
        <scene>.txt                          "axisAlignment = 16 numbers" (row-major 4x4)
      scans_test/<scene>/                    the same without labels

Every error is a :class:`~fastai_sparse.errors.DataFormatError` naming the scene, the file,
the value found and what was expected.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse.errors import DataFormatError

from .constants import SPLIT_FILES, TSV_COLUMNS, TSV_NAME, nyu40_to_benchmark

__all__ = [
    "LABEL_SOURCES",
    "LabelTable",
    "ScanNetScene",
    "check_label_source",
    "find_scene_dir",
    "read_aggregation",
    "read_axis_alignment",
    "read_label_table",
    "read_mesh_ply",
    "read_scene",
    "read_segs",
    "read_split",
    "scene_files",
]

#: Where per-vertex NYU40 ids come from: the labels PLY holding NYU40 ids (ScanNet v2), the
#: labels PLY holding raw category ids (older copies; mapped through the tsv ``id`` column),
#: or the aggregation + segments (raw category strings mapped through ``raw_category``).
LABEL_SOURCES = ("nyu40", "raw-id", "aggregation")

_SPLIT_WHAT = {
    "scannetv2_train.txt": "the official list of ScanNet v2 training scenes (1201 ids)",
    "scannetv2_val.txt": "the official list of ScanNet v2 validation scenes (312 ids)",
    "scannetv2_test.txt": "the official list of ScanNet v2 test scenes (100 ids)",
}


def scene_files(scene_dir: str | Path, scene: str | None = None) -> dict[str, Path]:
    """Paths of a scene's files (whether they exist or not), keyed ``mesh``, ``labels``,
    ``segs``, ``aggregation``, ``meta``."""
    d = Path(scene_dir)
    s = scene or d.name
    return {
        "mesh": d / f"{s}_vh_clean_2.ply",
        "labels": d / f"{s}_vh_clean_2.labels.ply",
        "segs": d / f"{s}_vh_clean_2.0.010000.segs.json",
        "aggregation": d / f"{s}.aggregation.json",
        "meta": d / f"{s}.txt",
    }


def find_scene_dir(root: str | Path, scene: str) -> Path | None:
    """``ROOT/scans/<scene>`` or ``ROOT/scans_test/<scene>``, whichever exists, else None."""
    for sub in ("scans", "scans_test"):
        d = Path(root) / sub / scene
        if d.is_dir():
            return d
    return None


# -- label table --------------------------------------------------------------------------------
@dataclass
class LabelTable:
    """The parsed ``scannetv2-labels.combined.tsv``.

    rows: one dict per data row (the 17 columns as strings). raw_to_nyu40: raw_category ->
    nyu40id. id_to_nyu40: int id (raw category id) -> nyu40id (for the few ids listed twice, the
    first row, i.e. the most frequent category, wins). path: the file read.
    """

    rows: list[dict[str, str]]
    raw_to_nyu40: dict[str, int]
    id_to_nyu40: dict[int, int]
    path: Path | None = None
    unmapped: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def id_lookup(self) -> np.ndarray:
        """int64 [65536]: nyu40id of every raw category id; -1 where the id is not in the table
        (0 maps to 0, unannotated)."""
        table = np.full(65536, -1, np.int64)
        table[0] = 0
        for k, v in self.id_to_nyu40.items():
            if 0 <= k < 65536:
                table[k] = v
        return table


def read_label_table(path: str | Path) -> LabelTable:
    """Read ``scannetv2-labels.combined.tsv`` (tab-separated, a header of the 17 official
    columns, one row per raw category)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            "label table not found: it is the ScanNet file scannetv2-labels.combined.tsv mapping raw "
            "categories to NYU40 ids; put it in the data root or pass label_table=",
            path=path,
        )
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != TSV_COLUMNS:
            raise DataFormatError(
                f"header is {header}, expected the 17 columns {list(TSV_COLUMNS)}", path=path, field="header"
            )
        rows, raw, ids = [], {}, {}
        for lineno, rec in enumerate(reader, start=2):
            if not rec or all(not c.strip() for c in rec):
                continue
            if len(rec) != len(TSV_COLUMNS):
                raise DataFormatError(
                    f"line {lineno} has {len(rec)} columns, expected {len(TSV_COLUMNS)}",
                    path=path,
                    field="row",
                )
            row = dict(zip(TSV_COLUMNS, rec))
            try:
                rid, nyu = int(row["id"]), int(row["nyu40id"])
            except ValueError:
                raise DataFormatError(
                    f"line {lineno}: id {row['id']!r} / nyu40id {row['nyu40id']!r} are not integers",
                    path=path,
                    field="nyu40id",
                ) from None
            if not 0 <= nyu <= 40:
                raise DataFormatError(
                    f"line {lineno}: nyu40id {nyu}, expected 0..40", path=path, field="nyu40id"
                )
            rows.append(row)
            raw[row["raw_category"]] = nyu
            ids.setdefault(rid, nyu)  # a few ids repeat: keep the most frequent row (rows sorted by count)
    if not rows:
        raise DataFormatError("the label table has a header but no rows", path=path, field="row")
    return LabelTable(rows, raw, ids, path)


def default_label_table_path(root: str | Path) -> Path:
    return Path(root) / TSV_NAME


# -- splits -------------------------------------------------------------------------------------
def read_split(root: str | Path | None, split: str, split_file: str | Path | None = None) -> list[str]:
    """Scene ids of ``split`` ("train", "valid"/"val", "test"), one per line of the official list.

    The list is ``split_file`` when given, else ``ROOT/scannetv2_<split>.txt`` or
    ``ROOT/Tasks/Benchmark/scannetv2_<split>.txt``. A missing list raises DataFormatError
    saying which file and what it is.
    """
    if split_file is None:
        if split not in SPLIT_FILES:
            raise ValueError(f"unknown ScanNet split {split!r}; expected one of {sorted(SPLIT_FILES)}")
        name = SPLIT_FILES[split]
        if root is None:
            raise DataFormatError(f"no data root given to find the split list {name}")
        candidates = [Path(root) / name, Path(root) / "Tasks" / "Benchmark" / name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DataFormatError(
                f"split list {name} not found ({_SPLIT_WHAT[name]}); looked in "
                + ", ".join(str(c.parent) for c in candidates)
                + "; copy the official file there or pass split_file=",
                path=candidates[0],
            )
        path = found
    else:
        path = Path(split_file)
        if not path.is_file():
            raise DataFormatError(f"split list for split {split!r} not found", path=path)
    scenes = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if len(set(scenes)) != len(scenes):
        dup = next(s for s in scenes if scenes.count(s) > 1)
        raise DataFormatError(f"scene {dup!r} is listed twice", path=path)
    return scenes


# -- per-file readers ---------------------------------------------------------------------------
def _ply_error(scene: str | None, path: Path, msg: str, field: str | None = None) -> DataFormatError:
    return DataFormatError((f"scene {scene}: " if scene else "") + msg, path=path, field=field)


def read_mesh_ply(
    path: str | Path, *, labels: bool = False, scene: str | None = None
) -> dict[str, np.ndarray]:
    """Read a ``_vh_clean_2.ply`` (or, with ``labels=True``, a ``_vh_clean_2.labels.ply``).

    Returns ``{"xyz": float32 [N, 3], "rgb": uint8 [N, 3], "faces": int64 [F, 3]}`` plus
    ``"label": int64 [N]`` (the raw ``label`` values) when ``labels``. The vertex element must
    hold float ``x, y, z`` and uchar ``red, green, blue`` (and an integer ``label`` for the
    labels file).
    """
    from fastai_sparse.io import read_plydata

    path = Path(path)
    if not path.is_file():
        what = "labels PLY (_vh_clean_2.labels.ply)" if labels else "mesh PLY (_vh_clean_2.ply)"
        raise _ply_error(scene, path, f"missing {what}")
    try:
        ply = read_plydata(path, known_list_len={"face": {"vertex_indices": 3}})
    except DataFormatError as e:  # the same message, with the scene and the likely cause
        msg = str(e).removeprefix(f"{path}: ").removeprefix(f"field {e.field!r}: " if e.field else "")
        raise _ply_error(scene, path, f"{msg} (the file is truncated or damaged)", field=e.field) from e
    try:
        vert = ply["vertex"]
    except KeyError:
        raise _ply_error(
            scene, path, f"no 'vertex' element (found {[e.name for e in ply.elements]})"
        ) from None
    names = {p.name: p for p in vert.properties}
    need = ["x", "y", "z", "red", "green", "blue"] + (["label"] if labels else [])
    missing = [n for n in need if n not in names]
    if missing:
        raise _ply_error(
            scene, path, f"vertex properties are {list(names)}, missing {missing}", field=missing[0]
        )
    data = vert.data
    for c in "xyz":
        if data[c].dtype.kind != "f":
            raise _ply_error(scene, path, f"property {c} has type {data[c].dtype}, expected float", field=c)
    for c in ("red", "green", "blue"):
        if data[c].dtype.kind != "u" or data[c].dtype.itemsize != 1:
            raise _ply_error(scene, path, f"property {c} has type {data[c].dtype}, expected uchar", field=c)
    xyz = np.stack([data["x"], data["y"], data["z"]], axis=1).astype(np.float32)
    if not np.isfinite(xyz).all():
        bad = int(np.flatnonzero(~np.isfinite(xyz).all(1))[0])
        raise _ply_error(scene, path, f"vertex {bad} has non-finite coordinates {xyz[bad].tolist()}", "xyz")
    out = {"xyz": xyz, "rgb": np.stack([data["red"], data["green"], data["blue"]], axis=1).astype(np.uint8)}
    if labels:
        lab = data["label"]
        if lab.dtype.kind not in "ui":
            raise _ply_error(scene, path, f"property label has type {lab.dtype}, expected ushort", "label")
        out["label"] = lab.astype(np.int64)
    faces = np.zeros((0, 3), np.int64)
    if "face" in ply:
        raw = ply["face"].data["vertex_indices"]
        if raw.dtype == object:
            lens = {len(f) for f in raw}
            if lens - {3}:
                raise _ply_error(
                    scene, path, f"faces have {sorted(lens)} vertices, expected 3", "vertex_indices"
                )
            raw = np.stack(list(raw)) if len(raw) else np.zeros((0, 3))
        faces = np.asarray(raw).reshape(-1, 3).astype(np.int64)
        if len(faces) and (faces.min() < 0 or faces.max() >= len(xyz)):
            raise _ply_error(
                scene,
                path,
                f"face vertex indices span {faces.min()}..{faces.max()}, expected 0..{len(xyz) - 1}",
                "vertex_indices",
            )
    out["faces"] = faces
    return out


def _read_json(path: Path, scene: str | None, what: str) -> Any:
    if not path.is_file():
        raise DataFormatError((f"scene {scene}: " if scene else "") + f"missing {what}", path=path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(
            (f"scene {scene}: " if scene else "") + f"invalid JSON in {what} ({e})", path=path
        ) from e


def read_segs(path: str | Path, scene: str | None = None) -> np.ndarray:
    """int64 [N]: the ``segIndices`` (over-segmentation id of every vertex) of a segs.json."""
    path = Path(path)
    obj = _read_json(path, scene, "segments file (_vh_clean_2.0.010000.segs.json)")
    seg = obj.get("segIndices") if isinstance(obj, dict) else None
    if not isinstance(seg, list):
        raise DataFormatError(
            (f"scene {scene}: " if scene else "") + "expected an object with a list 'segIndices'",
            path=path,
            field="segIndices",
        )
    return np.asarray(seg, dtype=np.int64).reshape(-1)


def read_aggregation(path: str | Path, scene: str | None = None) -> list[dict[str, Any]]:
    """The ``segGroups`` of an aggregation.json: dicts with ``objectId`` (int), ``label`` (raw
    category string) and ``segments`` (list of segment ids). An empty list is an error."""
    path = Path(path)
    obj = _read_json(path, scene, "aggregation file (.aggregation.json)")
    groups = obj.get("segGroups") if isinstance(obj, dict) else None
    pre = f"scene {scene}: " if scene else ""
    if not isinstance(groups, list):
        raise DataFormatError(
            pre + "expected an object with a list 'segGroups'", path=path, field="segGroups"
        )
    if not groups:
        raise DataFormatError(
            pre + "segGroups is empty: the aggregation has no annotated objects, expected at least one",
            path=path,
            field="segGroups",
        )
    out = []
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or not {"objectId", "label", "segments"} <= set(g):
            keys = sorted(g) if isinstance(g, dict) else type(g).__name__
            raise DataFormatError(
                pre + f"segGroups[{i}] has keys {keys}, expected objectId, label, segments",
                path=path,
                field="segGroups",
            )
        out.append(
            {"objectId": int(g["objectId"]), "label": str(g["label"]), "segments": list(g["segments"])}
        )
    return out


def read_axis_alignment(path: str | Path, scene: str | None = None) -> np.ndarray | None:
    """float64 [4, 4]: the ``axisAlignment`` matrix (row-major) of a ``<scene>.txt``, or None when
    the file or the key is absent (test scenes)."""
    path = Path(path)
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "axisAlignment":
            try:
                nums = [float(v) for v in value.split()]
            except ValueError:
                nums = []
            if len(nums) != 16:
                raise DataFormatError(
                    (f"scene {scene}: " if scene else "") + f"axisAlignment is {value.strip()[:80]!r} "
                    f"({len(value.split())} values), expected 16 numbers",
                    path=path,
                    field="axisAlignment",
                )
            return np.asarray(nums, np.float64).reshape(4, 4)
    return None


# -- one scene ----------------------------------------------------------------------------------
@dataclass
class ScanNetScene:
    """A scene read from disk.

    xyz float32 [N, 3] (metres, as stored), rgb uint8 [N, 3], faces int64 [F, 3];
    nyu40 int64 [N] (NYU40 id per vertex, 0 = unannotated) or None for test scenes;
    labels int64 [N] benchmark class 0..19 or -100; instance int64 [N] (objectId, -1 = none)
    or None; instance_nyu40: {objectId: NYU40 id of the object}; axis_align float64 [4, 4]
    or None; unmapped: vertices whose raw label id was not in the table (``"raw-id"`` only).
    """

    scene: str
    xyz: np.ndarray
    rgb: np.ndarray
    faces: np.ndarray
    nyu40: np.ndarray | None = None
    labels: np.ndarray | None = None
    instance: np.ndarray | None = None
    instance_nyu40: dict[int, int] = field(default_factory=dict)
    axis_align: np.ndarray | None = None
    path: Path | None = None
    unmapped: int = 0

    def __len__(self) -> int:
        return len(self.xyz)


def _check_count(scene: str, path: Path, what: str, n: int, expected: int, ref: Path) -> None:
    if n != expected:
        raise DataFormatError(
            f"scene {scene}: {what} has {n} vertices but {ref.name} has {expected}; expected the same count",
            path=path,
            field="vertex",
        )


def read_scene(
    scene_dir: str | Path,
    *,
    labels: bool | None = None,
    label_source: str = "nyu40",
    instances: bool | None = None,
    table: LabelTable | None = None,
    on_unknown: str = "warn",
    check_labels: bool = True,
) -> ScanNetScene:
    """Read one scene folder and validate it.

    labels: read per-vertex labels (None: when the labels PLY exists, or, for
        ``label_source="aggregation"``, the aggregation). True makes a missing labels file an error.
    label_source: one of :data:`LABEL_SOURCES`. With ``"nyu40"`` a label above 40 raises
        DataFormatError (the file holds raw category ids: pass ``label_source="raw-id"``).
    instances: read instance ids from aggregation + segments (None: when the aggregation
        file exists; True: required).
    table: the label table (needed for "raw-id", "aggregation" and instance classes).
    on_unknown: with ``"raw-id"``, what to do with raw ids absent from the table's ``id`` column:
        ``"warn"`` (default: a warning naming the ids and the vertex count; those vertices become
        0, unannotated, hence ignored) or ``"error"``.
    check_labels: check that the labels PLY holds what ``label_source`` says (see
        :func:`check_label_source`); a contradiction raises DataFormatError naming the fix.
    """
    if on_unknown not in ("warn", "error"):
        raise ValueError(f"on_unknown must be 'warn' or 'error', got {on_unknown!r}")
    if label_source not in LABEL_SOURCES:
        raise ValueError(f"label_source must be one of {LABEL_SOURCES}, got {label_source!r}")
    d = Path(scene_dir)
    scene = d.name
    files = scene_files(d, scene)
    mesh = read_mesh_ply(files["mesh"], scene=scene)
    out = ScanNetScene(scene, mesh["xyz"], mesh["rgb"], mesh["faces"], path=files["mesh"])
    out.axis_align = read_axis_alignment(files["meta"], scene)

    if instances is None:
        instances = files["aggregation"].is_file()
    if labels is None:
        labels = (
            files["aggregation"].is_file() if label_source == "aggregation" else files["labels"].is_file()
        )
    if labels and label_source == "aggregation":
        instances = True
    if instances:
        out.instance, out.instance_nyu40 = _read_instances(scene, files, len(out), table)
    if labels:
        if label_source == "aggregation":
            if table is None:
                raise ValueError("label_source='aggregation' needs the label table (table=)")
            nyu40 = _aggregation_nyu40(out)
        else:
            raw = _read_label_ply(scene, files, len(out))
            if check_labels:
                agg = _aggregation_nyu40(out) if out.instance is not None and table is not None else None
                check_label_source(raw, label_source, table, out.xyz, agg, path=files["labels"], scene=scene)
            nyu40, out.unmapped = _raw_to_nyu40(scene, files["labels"], raw, label_source, table, on_unknown)
        out.nyu40 = nyu40.astype(np.int64)
        out.labels = nyu40_to_benchmark(out.nyu40)
    return out


def _read_instances(
    scene: str, files: dict[str, Path], n: int, table: LabelTable | None
) -> tuple[np.ndarray, dict[int, int]]:
    """Object id per vertex (int64 [N], -1 none) from segments + aggregation, and the NYU40 id
    of every object (when the label table is given)."""
    seg = read_segs(files["segs"], scene)
    _check_count(scene, files["segs"], "segIndices", len(seg), n, files["mesh"])
    groups = read_aggregation(files["aggregation"], scene)
    uniq, seg_row = np.unique(seg, return_inverse=True)
    seg_obj = np.full(len(uniq), -1, np.int64)
    obj_nyu40: dict[int, int] = {}
    for g in groups:
        rows = np.searchsorted(uniq, np.asarray(g["segments"], np.int64))
        ok = rows < len(uniq)
        ok[ok] = uniq[rows[ok]] == np.asarray(g["segments"], np.int64)[ok]
        seg_obj[rows[ok]] = g["objectId"]
        if table is not None:
            if g["label"] not in table.raw_to_nyu40:
                raise DataFormatError(
                    f"scene {scene}: object {g['objectId']} has label {g['label']!r}, which is not a "
                    f"raw_category of the label table {table.path}",
                    path=files["aggregation"],
                    field="label",
                )
            obj_nyu40[g["objectId"]] = table.raw_to_nyu40[g["label"]]
    return seg_obj[seg_row], obj_nyu40


def _aggregation_nyu40(s: ScanNetScene) -> np.ndarray:
    """NYU40 id per vertex from the objects of the aggregation (0 outside every object)."""
    lut = np.zeros(max(s.instance_nyu40, default=0) + 2, np.int64)
    for oid, nyu in s.instance_nyu40.items():
        lut[oid] = nyu
    return np.where(s.instance >= 0, lut[np.clip(s.instance, 0, len(lut) - 1)], 0)


def _read_label_ply(scene: str, files: dict[str, Path], n: int) -> np.ndarray:
    """The raw ``label`` values (int64 [N]) of the labels PLY, whose vertices must match the mesh."""
    lab = read_mesh_ply(files["labels"], labels=True, scene=scene)
    _check_count(scene, files["labels"], "the labels PLY", len(lab["xyz"]), n, files["mesh"])
    return lab["label"]


def _raw_to_nyu40(
    scene: str, path: Path, raw: np.ndarray, label_source: str, table: LabelTable | None, on_unknown: str
) -> tuple[np.ndarray, int]:
    """NYU40 ids from the label PLY's values, and the count of vertices whose raw id is unknown."""
    if label_source == "nyu40":
        _check_nyu40_range(scene, path, raw)
        return raw, 0
    if table is None:
        raise ValueError("label_source='raw-id' needs the label table (table=)")
    mapped = table.id_lookup()[np.clip(raw, 0, 65535)]
    bad = mapped < 0
    if bad.any():
        vals = np.unique(raw[bad]).tolist()
        msg = (
            f"scene {scene}: {int(bad.sum())} vertices carry raw category ids {vals[:10]} that "
            f"are not in the id column of the label table {table.path}"
        )
        if on_unknown == "error":
            raise DataFormatError(msg, path=path, field="label")
        warnings.warn(f"{path}: {msg}; they are treated as unannotated (ignored)", stacklevel=3)
        mapped = np.where(bad, 0, mapped)
    return mapped, int(bad.sum())


def _check_nyu40_range(scene: str | None, path: Path, raw: np.ndarray) -> None:
    bad = (raw < 0) | (raw > 40)
    if bad.any():
        vals = np.unique(raw[bad])
        raise DataFormatError(
            (f"scene {scene}: " if scene else "") + f"{int(bad.sum())} vertices have label values above 40 "
            f"({len(np.unique(raw))} distinct values, max {int(raw.max())}, e.g. "
            f"{vals[:5].tolist()}); expected NYU40 ids 0..40. This looks like the older "
            "variant holding raw ScanNet category ids: pass label_source='raw-id' (on the command "
            "line: -O label_source=raw-id) to map them through the label table's id -> nyu40id",
            path=path,
            field="label",
        )


#: NYU40 id of the floor, the class :func:`check_label_source` locates.
_FLOOR = 2


def _floor_at_bottom(nyu40: np.ndarray, z: np.ndarray) -> bool | None:
    """Whether the vertices labelled floor lie at the bottom of the scene: their median height
    within the lowest 10 % of the scene's height range (1st to 99th percentile); None when
    fewer than 0.5 % of the vertices (and fewer than 50) are floor, i.e. nothing to judge."""
    floor = nyu40 == _FLOOR
    if floor.sum() < max(50, 0.005 * len(z)):
        return None
    lo, hi = np.percentile(z, [1, 99])
    return bool(np.median(z[floor]) <= lo + 0.1 * max(hi - lo, 1e-6))


def check_label_source(
    raw: np.ndarray,
    label_source: str,
    table: LabelTable | None,
    xyz: np.ndarray,
    aggregation_nyu40: np.ndarray | None = None,
    *,
    path: str | Path | None = None,
    scene: str | None = None,
) -> None:
    """Raise DataFormatError when a labels PLY's values contradict ``label_source``.

    A labels PLY holds NYU40 ids (``"nyu40"``, ScanNet v2) or raw category ids (``"raw-id"``,
    older copies); read the wrong way, about half the labels change without any other sign.
    The evidence, strongest first:

    1. with ``"nyu40"``, values above 40 (raw ids go up to 1357);
    2. the aggregation (``aggregation_nyu40``: NYU40 id per vertex from the annotated objects,
       from which ScanNet made the labels PLY): on the annotated vertices, the file read as
       declared agrees with it for under half of them and read the other way for over 80 %;
    3. the floor (NYU40 2), which every room has at its bottom: read as declared, the floor
       vertices are missing or not at the bottom, read the other way they are.

    ``table`` (the label table) is needed for 2 and 3; without it only 1 is checked.
    """
    raw = np.asarray(raw, np.int64)
    if label_source == "nyu40":
        _check_nyu40_range(scene, Path(path) if path is not None else Path("<labels>"), raw)
    if table is None or label_source not in ("nyu40", "raw-id"):
        return
    lut = table.id_lookup()
    as_raw = lut[np.clip(raw, 0, 65535)]
    as_raw = np.where(as_raw < 0, 0, as_raw)
    as_nyu = np.where((raw >= 0) & (raw <= 40), raw, 0)
    declared, other = (as_nyu, as_raw) if label_source == "nyu40" else (as_raw, as_nyu)
    other_name = "raw-id" if label_source == "nyu40" else "nyu40"
    what = {"nyu40": "NYU40 ids", "raw-id": "raw ScanNet category ids"}
    pre = f"scene {scene}: " if scene else ""
    fix = (
        f"the file holds {what[other_name]}: pass label_source={other_name!r} (on the command line: "
        f"-O label_source={other_name}); check_labels=False skips this check"
    )
    if aggregation_nyu40 is not None:
        annotated = (np.asarray(aggregation_nyu40) > 0) & (raw > 0)
        if annotated.sum() >= 50:
            agree = float((declared[annotated] == aggregation_nyu40[annotated]).mean())
            agree_other = float((other[annotated] == aggregation_nyu40[annotated]).mean())
            if agree < 0.5 and agree_other > 0.8:
                raise DataFormatError(
                    f"{pre}read as {what[label_source]} (label_source={label_source!r}) the labels agree "
                    f"with the aggregation on {agree:.0%} of the annotated vertices, read as "
                    f"{what[other_name]} on {agree_other:.0%}; {fix}",
                    path=path,
                    field="label",
                )
            return  # the aggregation is the stronger evidence: it did not object
    z = np.asarray(xyz)[:, 2]
    if _floor_at_bottom(declared, z) is not True and _floor_at_bottom(other, z) is True:
        n_floor = int((declared == _FLOOR).sum())
        where = (
            "no vertex is floor"
            if n_floor == 0
            else f"the {n_floor} floor vertices are not at the bottom of the scene"
        )
        raise DataFormatError(
            f"{pre}read as {what[label_source]} (label_source={label_source!r}) {where}, read as "
            f"{what[other_name]} the floor (NYU40 2) lies at the bottom as in every room; {fix}",
            path=path,
            field="label",
        )
