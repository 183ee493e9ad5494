"""``ScanNetScenes``: the scenes of a split as a sequence of point clouds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import Boxes, PointCloud

from .boxes import align_points, instance_boxes
from .constants import SPLIT_FILES
from .prepare import cache_format, cache_path, default_scene_dir, scene_arrays, scene_item
from .reader import (
    LABEL_SOURCES,
    default_label_table_path,
    find_scene_dir,
    read_label_table,
    read_split,
    scene_files,
)

__all__ = ["ScanNetScenes"]

_SPLITS = {"train": "train", "valid": "val", "val": "val", "test": "test"}


class ScanNetScenes(Sequence):
    """The scenes of one split (``"train"``, ``"valid"``/``"val"``, ``"test"``) of a ScanNet v2 root.

    Each item is a :class:`~fastai_sparse.geometry.PointCloud` of the scene's mesh vertices:
    ``xyz`` float32 [N, 3] in metres (axis-aligned when ``boxes``), attrs ``"rgb"`` uint8 [N, 3],
    ``"labels"`` int64 [N] (benchmark class 0..19, -100 ignored; not for test scenes),
    ``"instance"`` int64 [N] (object id, -1 none; when the aggregation is there), ``"normals"``
    float32 [N, 3] (``normals=True``); ``target`` the axis-aligned instance boxes
    (:class:`~fastai_sparse.geometry.Boxes`, 18 detection classes) when ``boxes``; meta ``id``
    (scene id), ``path`` (its ``_vh_clean_2.ply``), ``split``, ``nyu40`` (int64 [N] NYU40 ids).

    Items come from the cache written by :func:`~fastai_sparse_scannet.prepare.prepare`
    (``cache``, default ``ROOT/cache``) when a scene has a cache file, else from the raw files
    (validated the same way). A cache file that no longer matches what it was made from (a
    source file edited since, other options, an older version) raises
    :class:`~fastai_sparse.errors.StaleCacheError` with the ``prepare`` command that rebuilds it.

    Args:
        root: the data root. split: split name. cache: cache folder.
        label_source, label_table, check_labels: see :func:`~fastai_sparse_scannet.reader.read_scene`.
        split_file: the split list (default: found in the root).
        scenes: explicit scene ids instead of a split list. limit: keep the first ``limit`` scenes.
        boxes: build detection boxes (needs aggregation + segments + label table).
        min_box_size: box sizes are raised to at least this (metres), so flat objects keep a box.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        cache: str | Path | None = None,
        *,
        label_source: str = "nyu40",
        label_table: str | Path | None = None,
        check_labels: bool = True,
        split_file: str | Path | None = None,
        scenes: Sequence[str] | None = None,
        limit: int | None = None,
        normals: bool = False,
        boxes: bool = False,
        min_box_size: float = 0.01,
    ):
        if split not in _SPLITS:
            raise ValueError(f"unknown ScanNet split {split!r}; expected one of {sorted(_SPLITS)}")
        if label_source not in LABEL_SOURCES:
            raise ValueError(f"label_source must be one of {LABEL_SOURCES}, got {label_source!r}")
        self.root, self.split = Path(root), _SPLITS[split]
        self.cache = Path(cache) if cache is not None else self.root / "cache"
        self.label_source, self.normals, self.boxes = label_source, bool(normals), bool(boxes)
        self.min_box_size = float(min_box_size)
        self.check_labels = bool(check_labels)
        self._tsv = Path(label_table) if label_table is not None else default_label_table_path(self.root)
        self._table = None
        ids = list(scenes) if scenes is not None else read_split(self.root, self.split, split_file)
        if limit is not None:
            ids = ids[:limit]
        list_file = split_file or (self.root / SPLIT_FILES[self.split])
        self.scenes, self.dirs = [], []
        for s in ids:
            d = find_scene_dir(self.root, s)
            if d is None and not cache_path(self.cache, s).is_file():
                raise DataFormatError(
                    f"scene {s} is listed in {Path(list_file).name} but has no folder "
                    f"{self.root / 'scans' / s} (nor under scans_test/) and no cache file",
                    path=list_file,
                )
            self.scenes.append(s)
            self.dirs.append(d if d is not None else default_scene_dir(self.root, s, self.split))
        self.labelled = self.split != "test"
        self._format = cache_format(self.root, label_source=label_source, normals=self.normals)

    def __repr__(self) -> str:
        return f"ScanNetScenes(root={str(self.root)!r}, split={self.split!r}, scenes={len(self)})"

    def __len__(self) -> int:
        return len(self.scenes)

    @property
    def table(self):
        if self._table is None and (self._tsv.is_file() or self.label_source != "nyu40" or self.boxes):
            self._table = read_label_table(self._tsv)
        return self._table

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        """The cached arrays of scene ``i`` (read from the raw files when no valid cache)."""
        scene = self.scenes[i]
        item = scene_item(
            self.root,
            scene,
            self.dirs[i],
            self.cache,
            labelled=self.labelled,
            label_table=self._tsv,
            check_labels=self.check_labels,
        )
        arrays = self._format.load(item)
        if arrays is None:
            return scene_arrays(
                self.dirs[i],
                label_source=self.label_source,
                table=self.table,
                normals=self.normals,
                labels=True if self.labelled else None,
                check_labels=self.check_labels,
            )
        if self.labelled and "labels" not in arrays:
            raise DataFormatError(
                f"scene {scene}: the cache file has no labels (its scene had no labels file when it was "
                f"prepared), but split {self.split!r} needs them; add the labels and run `{self._format.fix}`",
                path=item.path,
                field="labels",
            )
        return arrays

    def __getitem__(self, i: int) -> PointCloud:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"scene index {i} out of range for {len(self)} scenes")
        i = i % len(self)
        a = self.arrays(i)
        scene = self.scenes[i]
        attrs: dict[str, np.ndarray] = {"rgb": a["colors"]}
        meta: dict[str, Any] = {
            "id": scene,
            "path": str(scene_files(self.dirs[i], scene)["mesh"]),
            "split": self.split,
        }
        if "labels" in a:
            attrs["labels"] = a["labels"].astype(np.int64)
            meta["nyu40"] = a["nyu40"].astype(np.int64)
        if "instance" in a:
            attrs["instance"] = a["instance"].astype(np.int64)
        if self.normals:
            attrs["normals"] = a["normals"]
        xyz = a["coords"]
        target = None
        if self.boxes:
            if "instance" not in a:
                raise DataFormatError(
                    f"scene {scene}: boxes need instances (aggregation + segments files)",
                    path=meta["path"],
                    field="instance",
                )
            xyz = align_points(xyz, a["axis_align"])
            inst_nyu = dict(zip(a["instance_ids"].tolist(), a["instance_nyu40"].tolist()))
            centers, sizes, labels, _ = instance_boxes(xyz, a["instance"], inst_nyu)
            target = Boxes(centers, np.maximum(sizes, self.min_box_size), np.zeros(len(centers)), labels)
        return PointCloud(xyz, attrs, target=target, meta=meta)
