"""``prepare``: raw ScanNet scenes -> one cached ``.npz`` of arrays per scene.

Scenes are read and validated in parallel worker processes; each cache file is written to a
temporary name and moved into place with ``os.replace``, so an interrupted run never leaves a
half file and the next run skips the scenes already done.

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
version, scene, ...     0-d str / int          cache format version and the options used
======================  =====================  ==================================================
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
import zipfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse.errors import DataFormatError, FastaiSparseError

from .reader import (
    LabelTable,
    default_label_table_path,
    find_scene_dir,
    read_label_table,
    read_scene,
    read_split,
)

__all__ = ["CACHE_VERSION", "cache_path", "prepare", "read_cache", "scene_arrays", "write_cache"]

CACHE_VERSION = 1
_REQUIRED = ("coords", "colors", "axis_align", "version", "scene", "label_source", "normals_flag", "n")


def cache_path(out: str | Path, scene: str) -> Path:
    return Path(out) / f"{scene}.npz"


def scene_arrays(
    scene_dir: str | Path,
    *,
    label_source: str = "nyu40",
    table: LabelTable | None = None,
    normals: bool = False,
    labels: bool | None = None,
) -> dict[str, np.ndarray]:
    """Read and validate one scene; return the arrays stored in its cache (see module doc)."""
    s = read_scene(scene_dir, labels=labels, label_source=label_source, table=table)
    n = len(s)
    out: dict[str, np.ndarray] = {
        "coords": s.xyz.astype(np.float32),
        "colors": s.rgb.astype(np.uint8),
        "axis_align": np.eye(4) if s.axis_align is None else s.axis_align.astype(np.float64),
        "version": np.array(CACHE_VERSION),
        "scene": np.array(s.scene),
        "label_source": np.array(label_source),
        "normals_flag": np.array(bool(normals)),
        "n": np.array(n),
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


def write_cache(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (npz) atomically: a temporary file then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_cache(
    path: str | Path, *, label_source: str | None = None, normals: bool | None = None
) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when it is missing, unreadable, of another version,
    or made with other options (``label_source``, ``normals``) than those given."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if any(k not in z.files for k in _REQUIRED) or int(z["version"]) != CACHE_VERSION:
                return None
            if label_source is not None and "labels" in z.files and str(z["label_source"]) != label_source:
                return None
            if normals is not None and bool(z["normals_flag"]) != normals:
                return None
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    n = int(arrays["n"])
    if any(len(arrays[k]) != n for k in ("coords", "colors", "labels", "instance", "normals") if k in arrays):
        return None
    return arrays


def _prepare_one(
    scene_dir: str, dst: str, label_source: str, table: LabelTable | None, normals: bool, labels
):
    arrays = scene_arrays(scene_dir, label_source=label_source, table=table, normals=normals, labels=labels)
    write_cache(dst, arrays)
    return int(arrays["n"])


def _default_splits(root: Path) -> tuple[str, ...]:
    return ("train", "val", "test") if (root / "scans_test").is_dir() else ("train", "val")


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
    quiet: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Convert the scenes of ``splits`` under ``root`` to cached arrays in ``out``.

    Args:
        root: the ScanNet v2 data root (``scans/``, ``scans_test/``, split lists, label table).
        out: cache folder (default ``ROOT/cache``).
        jobs: worker processes (1 = in this process).
        skip_bad: skip scenes that fail validation with a warning each (and a count in the
            summary) instead of stopping at the first.
        normals: also store vertex normals computed from the faces.
        splits: split lists to read (default train and val, plus test when ``scans_test/``
            exists); split_files: ``{split: path}`` overrides.
        label_source / label_table: see :func:`fastai_sparse_scannet.reader.read_scene`.
        quiet: no progress bar. force: rebuild caches that are already complete.

    Returns a summary dict: ``scenes``, ``prepared``, ``skipped_existing``, ``bad`` (count),
    ``bad_scenes`` ({scene: error}), ``vertices``, ``seconds``, ``out``.
    """
    t0 = time.perf_counter()
    root = Path(root)
    out = root / "cache" if out is None else Path(out)
    splits = tuple(splits) if splits is not None else _default_splits(root)
    split_files = dict(split_files or {})
    tsv = Path(label_table) if label_table is not None else default_label_table_path(root)
    table = read_label_table(tsv) if (tsv.is_file() or label_source != "nyu40") else None

    todo: list[tuple[str, Path, bool]] = []
    bad: dict[str, str] = {}
    seen = set()
    for split in splits:
        for scene in read_split(root, split, split_files.get(split)):
            if scene in seen:
                continue
            seen.add(scene)
            d = find_scene_dir(root, scene)
            if d is None:
                msg = (
                    f"scene {scene} is listed in the {split} split list but has no folder "
                    f"{root / 'scans' / scene} (nor under scans_test/)"
                )
                if not skip_bad:
                    raise DataFormatError(msg, path=root / "scans" / scene)
                warnings.warn(msg, stacklevel=2)
                bad[scene] = msg
                continue
            todo.append((scene, d, split != "test"))

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.npz.*.tmp"):  # left by a killed run
        with suppress(OSError):
            stale.unlink()
    skipped_existing = 0
    work = []
    for scene, d, labelled in todo:
        dst = cache_path(out, scene)
        if not force and read_cache(dst, label_source=label_source, normals=normals) is not None:
            skipped_existing += 1
            continue
        work.append((scene, str(d), str(dst), label_source, table, normals, bool(labelled)))

    from fastprogress.fastprogress import progress_bar

    prepared, vertices = 0, 0

    def failed(scene: str, exc: BaseException) -> None:
        if not skip_bad:
            raise exc
        warnings.warn(f"skipping scene {scene}: {exc}", stacklevel=3)
        bad[scene] = str(exc)

    def bar(it, total):
        return progress_bar(it, total=total) if (total and not quiet) else it

    if jobs <= 1 or len(work) <= 1:
        for w in bar(work, len(work)):
            try:
                vertices += _prepare_one(*w[1:])
                prepared += 1
            except (FastaiSparseError, OSError) as exc:
                failed(w[0], exc)
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {pool.submit(_prepare_one, *w[1:]): w[0] for w in work}
            try:
                for fut in bar(as_completed(futures), len(futures)):
                    try:
                        vertices += fut.result()
                        prepared += 1
                    except (FastaiSparseError, OSError) as exc:
                        failed(futures[fut], exc)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    if bad and not quiet:
        warnings.warn(f"prepare: {len(bad)} bad scene(s) skipped: {sorted(bad)}", stacklevel=2)
    return {
        "root": str(root),
        "out": str(out),
        "scenes": len(seen),
        "prepared": prepared,
        "skipped_existing": skipped_existing,
        "bad": len(bad),
        "bad_scenes": bad,
        "vertices": vertices,
        "seconds": round(time.perf_counter() - t0, 3),
    }
