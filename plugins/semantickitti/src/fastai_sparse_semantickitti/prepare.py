"""``prepare``: one validation pass over a SemanticKITTI download, recorded in an index.

No arrays are cached. A ``.bin`` scan is already a float32 array and a ``.label`` a uint32
array: ``numpy.fromfile`` reads them at disk speed (about 1 ms for a 120k-point scan, see
``benchmarks/bench_semantickitti.py``), and mapping raw ids to classes is one table lookup. A
cache would double the 80 GB of the download and make nothing faster. What ``prepare`` gives
instead is certainty before hours of training: every scan and label file is read and checked
(file sizes, point counts, finite values, raw ids known to the label configuration) in parallel
worker processes, and the result goes to ``OUT/semantickitti-index.json`` (default
``ROOT/cache``):

- per scan: its point count, the size and modification time of both files, whether it is
  valid (and the error when not) and, for labelled scans, the number of points of each
  learning class (so the class frequencies of the training set are known, e.g. for weights);
- the label configuration's fingerprint, so a changed ``learning_map`` revalidates everything.

A second run revalidates only scans whose files changed (the index is also saved every few
hundred scans, so an interrupted run resumes). With ``skip_bad`` a bad scan is recorded
instead of stopping the run; :class:`~fastai_sparse_semantickitti.dataset.SemanticKittiScans`
then leaves the scans the index marks bad out, with a warning that says how many. The index
is written through core's atomic writer (:func:`fastai_sparse.cache.atomic_path`) under core's
folder lock (:func:`fastai_sparse.cache.folder_lock`): an interrupted run never leaves a
half-written index, and a second run on the same folder waits for the first, then finds the
work done. Core's per-item ``.npz`` caches (:func:`fastai_sparse.cache.prepare_items`) are not
used, since there is nothing to cache.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse import FastaiSparseError

from .config import LabelConfig, find_config
from .reader import (
    ScanFiles,
    list_scans,
    parse_sequences,
    read_label,
    read_scan,
    sequences_dir,
    split_sequences,
)

__all__ = ["INDEX_FORMAT", "INDEX_NAME", "bad_scans", "index_path", "prepare", "read_index", "validate_scan"]

INDEX_NAME = "semantickitti-index.json"
INDEX_FORMAT = "fastai-sparse-semantickitti-index/1"
_SAVE_EVERY = 500


def index_path(out: str | Path) -> Path:
    return Path(out) / INDEX_NAME


def _stat(path: Path | None) -> list[int] | None:
    if path is None:
        return None
    st = path.stat()
    return [int(st.st_size), int(st.st_mtime_ns)]


def validate_scan(scan: ScanFiles, config: LabelConfig) -> dict[str, Any]:
    """Read and check one scan (and its labels); return its index entry.

    Raises DataFormatError for a bad file (see :mod:`~fastai_sparse_semantickitti.reader`).
    """
    xyz, _ = read_scan(scan.scan)
    entry: dict[str, Any] = {"points": len(xyz), "bin": _stat(scan.scan), "label": None, "ok": True}
    if scan.label is not None:
        sem, _ = read_label(scan.label, len(xyz), scan=scan.scan)
        classes = config.to_classes(sem, path=scan.label)
        # learning class of every point: 0 (ignored) .. K
        learn = np.where(classes < 0, 0, classes + 1)
        entry["label"] = _stat(scan.label)
        entry["counts"] = np.bincount(learn, minlength=config.num_classes + 1).tolist()
    return entry


def _validate_chunk(
    scans: list[ScanFiles], config: LabelConfig
) -> list[tuple[str, dict | None, Exception | None]]:
    out: list[tuple[str, dict | None, Exception | None]] = []
    for s in scans:
        try:
            out.append((s.id, validate_scan(s, config), None))
        except (FastaiSparseError, OSError) as exc:
            out.append((s.id, None, exc))
    return out


def read_index(path: str | Path, config: LabelConfig | None = None) -> dict[str, Any] | None:
    """The index at ``path``, or None when it is missing, unreadable, of another format, or made
    with a label configuration whose mapping differs from ``config``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("format") != INDEX_FORMAT
        or not isinstance(data.get("scans"), dict)
    ):
        return None
    if config is not None and data.get("config") != config.fingerprint:
        return None
    return data


def _write_index(path: Path, data: dict[str, Any]) -> None:
    from fastai_sparse.cache import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")


def _unchanged(entry: dict[str, Any], scan: ScanFiles) -> bool:
    try:
        return entry.get("bin") == _stat(scan.scan) and entry.get("label") == _stat(scan.label)
    except OSError:
        return False


def bad_scans(
    root: str | Path, scans: Sequence[ScanFiles], out: str | Path | None = None, config=None
) -> dict:
    """``{scan id: error}`` of the scans in ``scans`` that the index of ``out`` (default
    ``ROOT/cache``) marks bad and whose files have not changed since."""
    index = read_index(index_path(Path(root) / "cache" if out is None else out), config)
    if index is None:
        return {}
    entries = index["scans"]
    found = {}
    for s in scans:
        e = entries.get(s.id)
        if e is not None and not e.get("ok", True) and _unchanged(e, s):
            found[s.id] = e.get("error", "bad")
    return found


def _default_splits(root: Path) -> tuple[str, ...]:
    seq_dir = sequences_dir(root)
    test = split_sequences("test")
    has_test = any((seq_dir / s / "velodyne").is_dir() for s in test)
    return ("train", "valid", "test") if has_test else ("train", "valid")


def _validate(
    scans: list[ScanFiles], cfg: LabelConfig, path: Path, jobs: int, skip_bad: bool, force: bool, quiet: bool
) -> tuple[dict[str, Any], list[ScanFiles], dict[str, str]]:
    """Validate the scans the index at ``path`` does not hold as valid and unchanged; write the
    index (every few hundred scans, and at the end). Returns (entries, scans validated, bad)."""
    old = None if force else read_index(path, cfg)
    entries: dict[str, Any] = dict(old["scans"]) if old is not None else {}
    index = {
        "format": INDEX_FORMAT,
        "config": cfg.fingerprint,
        "config_path": str(cfg.path),
        "scans": entries,
    }
    todo = [
        s for s in scans if not (s.id in entries and entries[s.id].get("ok") and _unchanged(entries[s.id], s))
    ]
    bad: dict[str, str] = {}
    done_since_save = 0
    by_id = {s.id: s for s in todo}

    def record(sid: str, entry: dict | None, exc: Exception | None) -> None:
        nonlocal done_since_save
        if exc is not None:
            if not skip_bad:
                _write_index(path, index)  # keep what was validated before stopping
                raise exc
            warnings.warn(f"skipping scan {sid}: {exc}", stacklevel=4)
            bad[sid] = str(exc)
            scan = by_id[sid]
            entries[sid] = {
                "ok": False,
                "error": str(exc),
                "bin": _safe_stat(scan.scan),
                "label": _safe_stat(scan.label),
            }
        else:
            entries[sid] = entry
        done_since_save += 1
        if done_since_save >= _SAVE_EVERY:
            _write_index(path, index)
            done_since_save = 0

    chunks = [todo[i : i + 64] for i in range(0, len(todo), 64)]
    from fastprogress.fastprogress import progress_bar

    def bar(it, total):
        return progress_bar(it, total=total) if (total and not quiet) else it

    if jobs <= 1 or len(chunks) <= 1:
        for chunk in bar(chunks, len(chunks)):
            for res in _validate_chunk(chunk, cfg):
                record(*res)
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(chunks)), mp_context=ctx) as pool:
            futures = [pool.submit(_validate_chunk, c, cfg) for c in chunks]
            try:
                for fut in bar(as_completed(futures), len(futures)):
                    for res in fut.result():
                        record(*res)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    _write_index(path, index)
    return entries, todo, bad


def prepare(
    root: str | Path,
    out: str | Path | None = None,
    jobs: int = 2,
    skip_bad: bool = False,
    *,
    splits: Sequence[str] | None = None,
    sequences: Sequence[int | str] | None = None,
    config: str | Path | LabelConfig | None = None,
    quiet: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Validate every scan of ``splits`` (or ``sequences``) and write the index (module doc).

    Args:
        root: the data root (holding ``sequences/``).
        out: folder of the index (default ``ROOT/cache``).
        jobs: worker processes (1 = in this process).
        skip_bad: record bad scans (a warning each, a count in the summary) instead of stopping
            at the first with its DataFormatError.
        splits: default train and valid, plus test when its velodyne folders are there (a list, or
            ``"train,valid"``).
        sequences: explicit sequence numbers instead of splits (labels read for 00-10); a list or
            ``"0-7,9"``.
        config: label configuration (default: ``ROOT/semantic-kitti.yaml`` or the plugin's copy).
        quiet: no progress bar. force: revalidate scans the index already holds.

    Returns a summary: ``scans``, ``validated``, ``skipped_existing``, ``bad``, ``bad_scans``,
    ``points``, ``class_points`` (learning class name -> points in the labelled scans),
    ``ignored_points``, ``index``, ``seconds``.
    """
    t0 = time.perf_counter()
    root = Path(root)
    out = root / "cache" if out is None else Path(out)
    cfg = find_config(root, config)
    if isinstance(splits, str):  # "train,valid" from the command line
        splits = [p.strip() for p in splits.split(",") if p.strip()]
    groups: list[tuple[list[str], bool]] = []
    if sequences is not None:
        test = set(split_sequences("test"))
        names = parse_sequences(sequences)
        groups.append(([s for s in names if s not in test], True))
        groups.append(([s for s in names if s in test], False))
    else:
        for split in splits if splits is not None else _default_splits(root):
            groups.append((list(split_sequences(split)), split not in ("test",)))
    scans: list[ScanFiles] = []
    for names, labelled in groups:
        if names:
            scans += list_scans(root, names, labels=labelled)

    path = index_path(out)
    from fastai_sparse.cache import folder_lock, remove_dead_temporaries

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    with folder_lock(out, log=log):  # one prepare per index folder; a second run waits, then finds it done
        remove_dead_temporaries(out)
        entries, todo, bad = _validate(scans, cfg, path, jobs, skip_bad, force, quiet)
    skipped_existing = len(scans) - len(todo)

    ids = {s.id for s in scans}
    counts = np.zeros(cfg.num_classes + 1, np.int64)
    points = 0
    for sid in ids:
        e = entries.get(sid, {})
        if e.get("ok"):
            points += int(e["points"])
            if e.get("counts") is not None:
                counts += np.asarray(e["counts"], np.int64)
    bad_all = {
        sid: entries[sid].get("error") for sid in sorted(ids) if not entries.get(sid, {}).get("ok", True)
    }
    if bad_all and not quiet:
        warnings.warn(
            f"prepare: {len(bad_all)} bad scan(s) recorded in {path}: {sorted(bad_all)[:10]}", stacklevel=2
        )
    return {
        "root": str(root),
        "index": str(path),
        "sequences": sorted({s.sequence for s in scans}),
        "scans": len(scans),
        "validated": len(todo) - len(bad),
        "skipped_existing": skipped_existing,
        "bad": len(bad_all),
        "bad_scans": bad_all,
        "points": points,
        "class_points": dict(zip(cfg.class_names, counts[1:].tolist())),
        "ignored_points": int(counts[0]),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _safe_stat(path: Path | None) -> list[int] | None:
    try:
        return _stat(path)
    except OSError:
        return None
