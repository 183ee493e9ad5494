"""``S3DISRooms``: the rooms of some areas as a sequence of point clouds."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse.errors import OptionError
from fastai_sparse.geometry import PointCloud

from .constants import VALID_AREA
from .prepare import cache_format, cache_item
from .reader import BAD_LINES, dataset_root, find_room_file, list_rooms, read_room, room_id

__all__ = ["S3DISRooms", "split_areas"]

_VALID = ("valid", "val", "test")


def split_areas(split: str, fold: int = VALID_AREA) -> tuple[int, ...]:
    """Areas of ``split`` for cross-validation fold ``fold`` (1..6): ``"valid"`` is area
    ``fold``, ``"train"`` the other five. Fold 5 is the standard protocol."""
    if fold not in range(1, 7):
        raise OptionError(f"option fold={fold!r}: expected 1..6 (the area held out for validation)")
    if split == "train":
        return tuple(a for a in range(1, 7) if a != fold)
    if split in _VALID:
        return (fold,)
    raise ValueError(f"unknown S3DIS split {split!r}; expected 'train' or 'valid'")


class S3DISRooms(Sequence):
    """The rooms of one split of S3DIS: areas ``split_areas(split, fold)``, or ``areas``.

    Each item is a :class:`~fastai_sparse.geometry.PointCloud` of the room file's points in its
    order: ``xyz`` float32 [N, 3] (metres, area coordinates), attrs ``"rgb"`` uint8 [N, 3],
    ``"labels"`` int64 [N] (class 0..12, -100 where no annotation covers the point),
    ``"instance"`` int64 [N] (object index, -1 none); meta ``id`` (``"Area_1/office_1"``),
    ``path`` (the room file), ``area``, ``split``, ``objects`` (annotation names),
    ``unlabelled``.

    Items come from the cache written by :func:`~fastai_sparse_s3dis.prepare.prepare` (``cache``,
    default ``ROOT/cache``). A room without a cache file is read from its text files (slow for
    large rooms: a warning says so once, and to run ``prepare``); a cache file that no longer
    matches its sources raises :class:`~fastai_sparse.errors.StaleCacheError` saying why and
    how to rebuild it.

    Args:
        root: the S3DIS folder. split: ``"train"`` or ``"valid"``. fold: the area held out for
            validation (1..6; 5 is the standard protocol). cache: cache folder.
        areas: explicit areas instead of the split's. rooms: explicit room ids
            (``"Area_1/office_1"``). limit: keep the first ``limit`` rooms.
        bad_lines: the reader's policy for damaged lines (see :data:`~.reader.BAD_LINES`).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        fold: int = VALID_AREA,
        cache: str | Path | None = None,
        *,
        areas: Sequence[int | str] | None = None,
        rooms: Sequence[str] | None = None,
        limit: int | None = None,
        bad_lines: str = "skip",
    ):
        if bad_lines not in BAD_LINES:
            raise ValueError(f"bad_lines must be one of {BAD_LINES}, got {bad_lines!r}")
        self.root = Path(root).expanduser()
        self.base = dataset_root(self.root)
        self.split, self.fold, self.bad_lines = split, int(fold), bad_lines
        self.areas = tuple(areas) if areas is not None else split_areas(split, self.fold)
        self.cache = Path(cache) if cache is not None else self.root / "cache"
        if rooms is not None:
            dirs = [self.base / r for r in rooms]
            for d in dirs:
                find_room_file(d, warn=False)  # a missing room is an error now, not at item time
        else:
            dirs = list_rooms(self.base, self.areas)
        self.dirs = dirs[:limit] if limit is not None else dirs
        self.ids = [room_id(d) for d in self.dirs]
        self.format = cache_format(self.root, bad_lines)
        self._warned = False

    def __repr__(self) -> str:
        areas = ",".join(str(a) for a in self.areas)
        return f"S3DISRooms(root={str(self.root)!r}, split={self.split!r}, areas={areas}, rooms={len(self)})"

    def __len__(self) -> int:
        return len(self.dirs)

    def cache_report(self) -> dict[str, str]:
        """``{room: "fresh" | "missing" | "unverified" | "stale: <why>"}`` for every room."""
        out = {}
        for rid, d in zip(self.ids, self.dirs):
            state = self.format.check(cache_item(d, self.cache))
            out[rid] = state.status if state.status != "stale" else "stale: " + "; ".join(state.reasons)
        return out

    def arrays(self, i: int) -> dict[str, Any]:
        """The arrays of room ``i`` (see :mod:`~fastai_sparse_s3dis.prepare`): from its cache file,
        else (no cache file) from the text files."""
        d, rid = self.dirs[i], self.ids[i]
        cached = self.format.load(cache_item(d, self.cache))  # StaleCacheError when out of date
        if cached is not None:
            cached["info"] = json.loads(str(cached["info"]))
            return cached
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"room {rid} has no cache file in {self.cache}: reading its text files, which is slow "
                f"for large rooms; run `fastai-sparse prepare s3dis-seg --root {self.root}` once",
                stacklevel=3,
            )
        room = read_room(d, labels=True, bad_lines=self.bad_lines)
        return {
            "coords": room.xyz,
            "colors": room.rgb,
            "labels": room.labels,
            "instance": room.instance,
            "objects": np.asarray(room.objects, dtype=np.str_),
            "info": {
                "room": room.id,
                "points": len(room),
                "unlabelled": room.unlabelled,
                "notes": room.notes,
            },
            "path": room.path,
        }

    def __getitem__(self, i: int) -> PointCloud:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"room index {i} out of range for {len(self)} rooms")
        i = i % len(self)
        a = self.arrays(i)
        d = self.dirs[i]
        path = a.get("path") or find_room_file(d, warn=False)
        return PointCloud(
            a["coords"],
            {
                "rgb": a["colors"],
                "labels": a["labels"].astype(np.int64),
                "instance": a["instance"].astype(np.int64),
            },
            meta={
                "id": self.ids[i],
                "path": str(path),
                "area": d.parent.name,
                "split": self.split,
                "objects": a["objects"].tolist(),
                "unlabelled": int(a["info"].get("unlabelled", 0)),
            },
        )
