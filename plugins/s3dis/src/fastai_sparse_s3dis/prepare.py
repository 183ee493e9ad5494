"""``prepare``: S3DIS rooms (text) -> one cached ``.npz`` of arrays per room, through core's
:mod:`fastai_sparse.cache`.

Rooms are read one at a time per worker process (``jobs``), so memory holds a few rooms, never
the dataset: a room needs about 200 MB per million points while it is read and matched
(measured: 212 MB above the start for a 1 M-point room), so `jobs` x the largest room must fit.
:func:`fastai_sparse.cache.prepare_items` gives the rest: a progress bar, atomic writes under a
lock on the cache folder, resuming after an interruption, and the validity rules. Each cache
file records what it was made from: the format (``s3dis-room``) and its version, the room id,
the ``bad_lines`` policy, and every source file (the room file and each annotation file: path
relative to the dataset folder, size, modification time). When any of these differs from the
files on disk now (an annotation edited, added or removed, another policy, another version),
``prepare`` rebuilds the file and a dataset refuses it with one line saying so and how to
rebuild it.

Cache contents (``<out>/<Area_n>/<room>.npz``, plain ``np.savez``, loadable without pickle):

==========  ===============  =====================================================================
key         dtype, shape     meaning
==========  ===============  =====================================================================
coords      float32 [N, 3]   the room file's points, in its order (metres, area coordinates)
colors      uint8 [N, 3]     their colours
labels      int16 [N]        class 0..12, -100 where no annotation covers the point
instance    int32 [N]        object index into ``objects``, -1 none
objects     str [K]          annotation file stems (``chair_3``) in object order
info        0-d str          JSON: room, points, unlabelled, unmatched, skipped_lines, notes
__cache__   0-d str          core's record of the sources, format, version and options
==========  ===============  =====================================================================
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse.cache import CacheCheck, CacheFormat, CacheItem, prepare_items
from fastai_sparse.errors import DataFormatError

from .reader import BAD_LINES, annotation_files, dataset_root, find_room_file, list_rooms, read_room, room_id

__all__ = [
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "build",
    "cache_check",
    "cache_format",
    "cache_item",
    "cache_path",
    "prepare",
    "read_info",
    "room_arrays",
    "room_sources",
]

CACHE_FORMAT = "s3dis-room"
#: Bump when :func:`room_arrays` writes something else: older cache files are then rebuilt.
CACHE_VERSION = 1
_COUNTS = ("points", "unlabelled", "unmatched", "skipped_lines")


def cache_path(out: str | Path, room: str) -> Path:
    """``<out>/Area_1/office_1.npz`` for room ``"Area_1/office_1"``."""
    return Path(out) / f"{room}.npz"


def room_sources(room_dir: str | Path) -> list[Path]:
    """The files a room's cache is made from: the room file and its annotation files (no
    warnings; missing files raise DataFormatError as in :func:`~.reader.read_room`)."""
    return [find_room_file(room_dir, warn=False), *annotation_files(room_dir, warn=False)]


def cache_format(root: str | Path, bad_lines: str = "skip") -> CacheFormat:
    """The :class:`~fastai_sparse.cache.CacheFormat` of S3DIS room caches under ``root``."""
    if bad_lines not in BAD_LINES:
        raise ValueError(f"bad_lines must be one of {BAD_LINES}, got {bad_lines!r}")
    return CacheFormat(
        CACHE_FORMAT,
        CACHE_VERSION,
        options={"bad_lines": bad_lines},
        root=dataset_root(root),
        fix=f"fastai-sparse prepare s3dis-seg --root {root}",
    )


def cache_item(room_dir: str | Path, out: str | Path) -> CacheItem:
    """The cache item of one room folder (its sources listed now)."""
    d = Path(room_dir)
    rid = room_id(d)
    return CacheItem(rid, cache_path(out, rid), tuple(room_sources(d)), args=str(d))


def room_arrays(room_dir: str | Path, *, bad_lines: str = "skip") -> dict[str, np.ndarray]:
    """Read one room (labels from its annotations) and return the arrays of its cache file."""
    d = Path(room_dir)
    base = str(d.parent.parent) + os.sep
    room = read_room(d, labels=True, bad_lines=bad_lines)
    info = {
        "room": room.id,
        "points": len(room),
        "unlabelled": room.unlabelled,
        "unmatched": room.unmatched,
        "skipped_lines": room.skipped_lines,
        "notes": [n.replace(base, "") for n in room.notes],
    }
    return {
        "coords": room.xyz.astype(np.float32),
        "colors": room.rgb.astype(np.uint8),
        "labels": room.labels.astype(np.int16),
        "instance": room.instance.astype(np.int32),
        "objects": np.asarray(room.objects, dtype=np.str_),
        "info": np.array(json.dumps(info)),
    }


def build(item: CacheItem, bad_lines: str = "skip") -> dict[str, np.ndarray]:
    """``prepare_items``' build function: the arrays of one room (its notes go to ``info`` and
    are shown by :func:`prepare`, not as warnings of the worker)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return room_arrays(item.args, bad_lines=bad_lines)


def read_info(path: str | Path) -> dict[str, Any] | None:
    """The ``info`` of a cache file (room, counts, notes), or None when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["info"]))
    except (OSError, KeyError, ValueError):
        return None


def prepare(
    root: str | Path,
    out: str | Path | None = None,
    jobs: int = 2,
    skip_bad: bool = False,
    *,
    areas: Sequence[int | str] = (1, 2, 3, 4, 5, 6),
    bad_lines: str = "skip",
    quiet: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Convert the rooms of ``areas`` under ``root`` to cached arrays in ``out``.

    Args:
        root: the S3DIS folder (holding ``Area_1`` .. ``Area_6``, or holding
            ``Stanford3dDataset_v1.2_Aligned_Version``).
        out: cache folder (default ``ROOT/cache``).
        jobs: worker processes (1 = in this process).
        skip_bad: skip rooms that fail (one warning and a count in the summary) instead of
            stopping at the first.
        areas: which areas (default all six).
        bad_lines: the reader's policy for damaged lines (see :data:`~.reader.BAD_LINES`).
        quiet: no progress bar and no messages. force: rebuild caches that are fresh.

    Returns core's summary (``items``, ``prepared``, ``fresh``, ``stale``, ``unverified``, ``bad``,
    ``bad_items``, ``seconds``, ``out``, ...) plus, over every room cached in ``out``: ``rooms``,
    ``points``, ``unlabelled`` (room points no annotation covers), ``unmatched`` (annotation
    points with no room point), ``skipped_lines`` (damaged lines left out) and ``notes`` ({room:
    [repairs and skips]}). The notes of the rooms built in this run are also warnings.
    """
    t0 = time.perf_counter()
    base = dataset_root(root)
    out = Path(root).expanduser() / "cache" if out is None else Path(out)
    fmt = cache_format(root, bad_lines)
    items: list[CacheItem] = []
    bad: dict[str, str] = {}
    for d in list_rooms(base, areas):
        try:
            items.append(cache_item(d, out))
        except DataFormatError as e:  # e.g. no Annotations folder: bad before any work
            if not skip_bad:
                raise
            bad[room_id(d)] = str(e)
    built = [it for it in items if force or not fmt.check(it).usable]
    summary = prepare_items(
        out, items, build, fmt, jobs=jobs, force=force, skip_bad=skip_bad, quiet=quiet, bad=bad
    )
    totals = dict.fromkeys(_COUNTS, 0)
    notes: dict[str, list[str]] = {}
    for it in items:
        if it.id in summary["bad_items"]:
            continue
        info = read_info(it.path)
        if info is None:
            continue
        for k in _COUNTS:
            totals[k] += int(info[k])
        if info["notes"]:
            notes[it.id] = list(info["notes"])
    for it in built:
        for n in notes.get(it.id, []):
            warnings.warn(f"{it.id}: {n}", stacklevel=2)
    summary.update(
        rooms=len(items) + len(bad), **totals, notes=notes, seconds=round(time.perf_counter() - t0, 3)
    )
    return summary


def cache_check(
    root: str | Path, room_dir: str | Path, out: str | Path, bad_lines: str = "skip"
) -> CacheCheck:
    """The state of a room's cache file (``"missing"``, ``"fresh"``, ``"stale"`` with reasons,
    ``"unverified"``): see :meth:`fastai_sparse.cache.CacheFormat.check`."""
    return cache_format(root, bad_lines).check(cache_item(room_dir, out))
