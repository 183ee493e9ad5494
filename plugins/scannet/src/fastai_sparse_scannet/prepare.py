"""``prepare``: raw ScanNet scenes -> one cached ``.npz`` of arrays per scene.

Built on :mod:`fastai_sparse.cache`: scenes are read and validated in parallel worker
processes, each cache file is written atomically and records what it was made from (the
scene's five files and the label table: path, size, modification time; the format version; the
options ``label_source`` and ``normals``). A run skips the files that still match, rebuilds
those that do not (a label file edited after ``prepare``, another option, an older version) and
:class:`~fastai_sparse_scannet.dataset.ScanNetScenes` refuses to read a stale one, naming the
command that rebuilds it. Two runs on one cache folder both finish (the second waits), an
interrupted run leaves only complete files and resumes.

Cache contents (``<out>/<scene>.npz``, plain ``np.savez``, loadable without pickle):

======================  =====================  ==================================================
key                     dtype, shape           meaning
======================  =====================  ==================================================
coords                  float32 [N, 3]         vertex coordinates as stored (metres)
colors                  uint8 [N, 3]           vertex colours
labels                  int16 [N]              benchmark class 0..19, -100 = ignored (train/val)
nyu40                   uint16 [N]             NYU40 id per vertex (train/val)
instance                int32 [N]              object id per vertex, -1 = none (when annotated)
instance_ids            int32 [K]              object ids of the aggregation
instance_nyu40          int16 [K]              NYU40 id of each object
axis_align              float64 [4, 4]         axisAlignment (identity when the scene has none)
normals                 float32 [N, 3]         vertex normals (``normals=True`` only)
__cache__               0-d str                the record (JSON), see :mod:`fastai_sparse.cache`
======================  =====================  ==================================================
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse.cache import CacheFormat, CacheItem, prepare_items
from fastai_sparse.errors import DataFormatError

from .reader import (
    LABEL_SOURCES,
    LabelTable,
    default_label_table_path,
    find_scene_dir,
    read_label_table,
    read_scene,
    read_split,
    scene_files,
)

__all__ = [
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "cache_format",
    "cache_path",
    "default_scene_dir",
    "prepare",
    "read_cache",
    "scene_arrays",
    "scene_item",
]

#: Name and version of the cache format; bump the version when :func:`scene_arrays` changes.
CACHE_FORMAT = "scannet-scene"
CACHE_VERSION = 2


def cache_path(out: str | Path, scene: str) -> Path:
    return Path(out) / f"{scene}.npz"


def cache_format(
    root: str | Path, *, label_source: str = "nyu40", normals: bool = False, task: str = "scannet-seg"
) -> CacheFormat:
    """The :class:`~fastai_sparse.cache.CacheFormat` of the scene caches made with these options;
    its ``fix`` is the ``prepare`` command that rebuilds them."""
    opts = f" -O label_source={label_source}" if label_source != "nyu40" else ""
    opts += " -O normals=true" if normals else ""
    return CacheFormat(
        CACHE_FORMAT,
        CACHE_VERSION,
        {"label_source": label_source, "normals": bool(normals)},
        root=Path(root),
        fix=f"fastai-sparse prepare {task} --root {root}{opts}",
    )


def scene_item(
    root: str | Path,
    scene: str,
    scene_dir: str | Path,
    out: str | Path,
    *,
    labelled: bool,
    label_table: str | Path | None = None,
    check_labels: bool = True,
) -> CacheItem:
    """The cache item of one scene: its five files and the label table are its sources (absent
    ones recorded as absent, so a file added later also makes the cache stale)."""
    tsv = Path(label_table) if label_table is not None else default_label_table_path(root)
    sources = (*scene_files(scene_dir, scene).values(), tsv)
    return CacheItem(
        scene, cache_path(out, scene), sources, args=(str(scene_dir), labelled, str(tsv), check_labels)
    )


@functools.lru_cache(maxsize=4)
def _table(path: str, mtime_ns: int) -> LabelTable:
    return read_label_table(path)


def _table_for(tsv: Path, label_source: str) -> LabelTable | None:
    """The label table when it exists (or when ``label_source`` needs it: then missing is an error)."""
    if tsv.is_file():
        return _table(str(tsv), tsv.stat().st_mtime_ns)
    return read_label_table(tsv) if label_source != "nyu40" else None


def scene_arrays(
    scene_dir: str | Path,
    *,
    label_source: str = "nyu40",
    table: LabelTable | None = None,
    normals: bool = False,
    labels: bool | None = None,
    check_labels: bool = True,
) -> dict[str, np.ndarray]:
    """Read and validate one scene; return the arrays stored in its cache (see module doc)."""
    s = read_scene(
        scene_dir, labels=labels, label_source=label_source, table=table, check_labels=check_labels
    )
    out: dict[str, np.ndarray] = {
        "coords": s.xyz.astype(np.float32),
        "colors": s.rgb.astype(np.uint8),
        "axis_align": np.eye(4) if s.axis_align is None else s.axis_align.astype(np.float64),
    }
    if s.labels is not None:
        out["labels"] = s.labels.astype(np.int16)
        out["nyu40"] = s.nyu40.astype(np.uint16)
    if s.instance is not None:
        ids = sorted(s.instance_nyu40) if s.instance_nyu40 else sorted(set(np.unique(s.instance)) - {-1})
        out["instance"] = s.instance.astype(np.int32)
        out["instance_ids"] = np.asarray(ids, np.int32)
        out["instance_nyu40"] = np.asarray([s.instance_nyu40.get(i, 0) for i in ids], np.int16)
    if normals:
        from fastai_sparse.geometry import Mesh
        from fastai_sparse.transforms.mesh import vertex_normals

        out["normals"] = vertex_normals(Mesh(s.xyz, s.faces)).astype(np.float32)
    return out


def build_scene(item: CacheItem, label_source: str = "nyu40", normals: bool = False) -> dict[str, np.ndarray]:
    """The cache arrays of one :func:`scene_item` (run by the prepare workers)."""
    scene_dir, labelled, tsv, check_labels = item.args
    return scene_arrays(
        scene_dir,
        label_source=label_source,
        table=_table_for(Path(tsv), label_source),
        normals=normals,
        labels=True if labelled else None,
        check_labels=check_labels,
    )


def read_cache(path: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file as stored (without its record and without any check), or None
    when it is missing or unreadable. Datasets read through :meth:`CacheFormat.load` instead,
    which checks the file against its sources."""
    import zipfile

    from fastai_sparse.cache import RECORD_KEY

    try:
        with np.load(Path(path), allow_pickle=False) as z:
            return {k: z[k] for k in z.files if k != RECORD_KEY}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _default_splits(root: Path) -> tuple[str, ...]:
    return ("train", "val", "test") if (root / "scans_test").is_dir() else ("train", "val")


def default_scene_dir(root: str | Path, scene: str, split: str) -> Path:
    """Where a scene's folder is expected: ``ROOT/scans_test/<scene>`` for the test split, else
    ``ROOT/scans/<scene>``."""
    return Path(root) / ("scans_test" if split == "test" else "scans") / scene


def _listed_scenes(
    root: Path, out: Path, splits: Sequence[str], split_files: dict, skip_bad: bool
) -> tuple[list[tuple[str, Path, bool]], dict[str, str], int]:
    """``(scene, folder, labelled)`` of every scene listed in ``splits`` (each once), the scenes
    listed without a folder nor a cache file (``{scene: message}``; an error unless
    ``skip_bad``), and the count. A scene whose folder is gone but whose cache file exists (raw
    data deleted after ``prepare``) is kept: its cache is checked as far as possible, never lost."""
    todo: list[tuple[str, Path, bool]] = []
    bad: dict[str, str] = {}
    seen: set[str] = set()
    for split in splits:
        for scene in read_split(root, split, split_files.get(split)):
            if scene in seen:
                continue
            seen.add(scene)
            d = find_scene_dir(root, scene)
            if d is None and cache_path(out, scene).is_file():
                d = default_scene_dir(root, scene, split)
            elif d is None:
                msg = (
                    f"scene {scene} is listed in the {split} split list but has no folder "
                    f"{root / 'scans' / scene} (nor under scans_test/)"
                )
                if not skip_bad:
                    raise DataFormatError(msg, path=root / "scans" / scene)
                bad[scene] = msg
                continue
            todo.append((scene, d, split != "test"))
    return todo, bad, len(seen)


def prepare(
    root: str | Path,
    out: str | Path | None = None,
    jobs: int = 2,
    skip_bad: bool = False,
    normals: bool = False,
    *,
    splits: Sequence[str] | None = None,
    split_files: dict[str, str | Path] | None = None,
    label_source: str = "nyu40",
    label_table: str | Path | None = None,
    check_labels: bool = True,
    quiet: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Convert the scenes of ``splits`` under ``root`` to cached arrays in ``out``.

    Args:
        root: the ScanNet v2 data root (``scans/``, ``scans_test/``, split lists, label table).
        out: cache folder (default ``ROOT/cache``).
        jobs: worker processes (1 = in this process).
        skip_bad: skip scenes that fail validation with one warning (and a count in the
            summary) instead of stopping at the first.
        normals: also store vertex normals computed from the faces.
        splits: split lists to read (default train and val, plus test when ``scans_test/``
            exists); split_files: ``{split: path}`` overrides.
        label_source / label_table / check_labels: see
            :func:`fastai_sparse_scannet.reader.read_scene`.
        quiet: no progress bar. force: rebuild every cache file, also those that match.

    Returns a summary dict: ``scenes``, ``prepared``, ``skipped_existing`` (files that still
    matched), ``stale`` (of the prepared, files rebuilt because they no longer matched),
    ``bad`` (count), ``bad_scenes`` ({scene: error}), ``seconds``, ``out`` and the rest of
    :func:`fastai_sparse.cache.prepare_items`'s summary.
    """
    if label_source not in LABEL_SOURCES:
        raise ValueError(f"label_source must be one of {LABEL_SOURCES}, got {label_source!r}")
    root = Path(root)
    out = root / "cache" if out is None else Path(out)
    tsv = Path(label_table) if label_table is not None else default_label_table_path(root)
    _table_for(tsv, label_source)  # a missing or malformed table fails now, not in every worker
    splits = tuple(splits) if splits is not None else _default_splits(root)
    todo, missing, n_scenes = _listed_scenes(root, out, splits, dict(split_files or {}), skip_bad)
    items = [
        scene_item(root, scene, d, out, labelled=labelled, label_table=tsv, check_labels=check_labels)
        for scene, d, labelled in todo
    ]
    fmt = cache_format(root, label_source=label_source, normals=normals)
    summary = prepare_items(
        out, items, build_scene, fmt, jobs=jobs, force=force, skip_bad=skip_bad, quiet=quiet, bad=missing
    )
    return {
        "root": str(root),
        **summary,
        "scenes": n_scenes,
        "skipped_existing": summary["fresh"],
        "bad_scenes": summary["bad_items"],
    }
