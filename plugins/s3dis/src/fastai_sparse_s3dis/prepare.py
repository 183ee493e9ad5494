"""``prepare``: S3DIS rooms (text) -> one cached ``.npz`` of arrays per room.

Rooms are read one at a time per worker process (``jobs``), so memory holds a few rooms, never
the dataset: a room of several million points needs about 0.5 GB while it is read and matched.
Each cache file is written to a unique temporary name and moved into place with
``os.replace``: an interrupted run never leaves a half file, and the next run skips the rooms
already done. A progress bar shows the rooms as they finish.

**Cache validity.** Every cache file records what it was made from, in its ``manifest`` (JSON):
the cache format version, the room id, the ``bad_lines`` policy, and each source file (path
relative to the dataset folder, size, modification time in ns). A cache is used only when all
of these match the files on disk now; otherwise ``prepare`` rebuilds it (counted as
``rebuilt``) and the dataset refuses it (reading the room's text instead, with a warning that
says to run ``prepare``). A cache file copied under another room's name, of another format
version, damaged or cut short is refused the same way.

Cache contents (``<out>/<Area_n>/<room>.npz``, plain ``np.savez``, loadable without pickle):

==========  ===============  =====================================================================
key         dtype, shape     meaning
==========  ===============  =====================================================================
coords      float32 [N, 3]   the room file's points, in its order (metres, area coordinates)
colors      uint8 [N, 3]     their colours
labels      int16 [N]        class 0..12, -100 where no annotation covers the point
instance    int32 [N]        object index into ``objects``, -1 none
objects     str [K]          annotation file stems (``chair_3``) in object order
manifest    0-d str          JSON: version, room, bad_lines, sources, counts, notes (see above)
==========  ===============  =====================================================================
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse.errors import DataFormatError, FastaiSparseError

from .reader import annotation_files, dataset_root, find_room_file, list_rooms, read_room, room_id

__all__ = [
    "CACHE_VERSION",
    "cache_path",
    "cache_status",
    "prepare",
    "read_cache",
    "room_arrays",
    "room_sources",
    "write_cache",
]

CACHE_VERSION = 1
_KEYS = ("coords", "colors", "labels", "instance", "objects", "manifest")


def cache_path(out: str | Path, room: str) -> Path:
    """``<out>/Area_1/office_1.npz`` for room ``"Area_1/office_1"``."""
    return Path(out) / f"{room}.npz"


def room_sources(room_dir: str | Path) -> list[Path]:
    """The files a room's cache is made from: the room file and its annotation files (no
    warnings; missing files raise DataFormatError as in :func:`~.reader.read_room`)."""
    return [find_room_file(room_dir, warn=False), *annotation_files(room_dir, warn=False)]


def _stat_sources(files: Iterable[Path], base: Path) -> list[dict[str, Any]]:
    out = []
    for f in files:
        st = f.stat()
        out.append({"path": f.relative_to(base).as_posix(), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def room_arrays(room_dir: str | Path, *, bad_lines: str = "skip") -> dict[str, np.ndarray]:
    """Read one room (labels from its annotations) and return the arrays of its cache file."""
    d = Path(room_dir)
    base = d.parent.parent
    room = read_room(d, labels=True, bad_lines=bad_lines)
    manifest = {
        "format": "fastai-sparse-s3dis room cache",
        "version": CACHE_VERSION,
        "room": room.id,
        "bad_lines": bad_lines,
        "sources": _stat_sources(room.sources, base),
        "points": len(room),
        "unlabelled": room.unlabelled,
        "unmatched": room.unmatched,
        "skipped_lines": room.skipped_lines,
        "notes": [n.replace(str(base) + os.sep, "") for n in room.notes],
    }
    return {
        "coords": room.xyz.astype(np.float32),
        "colors": room.rgb.astype(np.uint8),
        "labels": room.labels.astype(np.int16),
        "instance": room.instance.astype(np.int32),
        "objects": np.asarray(room.objects, dtype=np.str_),
        "manifest": np.array(json.dumps(manifest)),
    }


def write_cache(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (npz) atomically: a uniquely named temporary file in the same
    folder (``.<name>.<pid>.<random>.tmp``), flushed to disk, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
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


def _remove_stale_temporaries(out: Path) -> None:
    """Delete temporary files left by killed runs (their process is gone); never those of a
    prepare still running."""
    for tmp in out.glob("**/.*.npz.*.tmp"):
        parts = tmp.name.split(".")
        pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
        if pid is not None and pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        elif pid == os.getpid():
            continue
        with suppress(OSError):
            tmp.unlink()


def _load(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if any(k not in z.files for k in _KEYS):
                return None
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return arrays


def cache_status(
    path: str | Path, room_dir: str | Path, *, bad_lines: str = "skip", arrays: dict | None = None
) -> str:
    """``"valid"``, ``"missing"``, or ``"stale: <why>"`` for the cache file of ``room_dir``."""
    path, d = Path(path), Path(room_dir)
    if arrays is None:
        if not path.is_file():
            return "missing"
        arrays = _load(path)
    if arrays is None:
        return "stale: unreadable or incomplete file"
    try:
        man = json.loads(str(arrays["manifest"]))
    except (json.JSONDecodeError, ValueError):
        return "stale: unreadable manifest"
    if man.get("version") != CACHE_VERSION:
        return f"stale: cache format version {man.get('version')}, expected {CACHE_VERSION}"
    if man.get("room") != room_id(d):
        return f"stale: made for room {man.get('room')}, not {room_id(d)}"
    if man.get("bad_lines") != bad_lines:
        return f"stale: made with bad_lines={man.get('bad_lines')!r}, not {bad_lines!r}"
    try:
        now = _stat_sources(room_sources(d), d.parent.parent)
    except (DataFormatError, OSError) as e:
        return f"stale: its source files cannot be listed ({e})"
    if now != man.get("sources"):
        before = {s["path"]: s for s in man.get("sources", [])}
        after = {s["path"]: s for s in now}
        changed = sorted(set(before) ^ set(after)) or [p for p in after if after[p] != before.get(p)]
        return f"stale: source files changed since it was made ({', '.join(changed[:3])})"
    n = int(man.get("points", -1))
    if any(len(arrays[k]) != n for k in ("coords", "colors", "labels", "instance")):
        return "stale: arrays of the wrong length"
    return "valid"


def read_cache(
    path: str | Path, room_dir: str | Path | None = None, *, bad_lines: str = "skip"
) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when it is missing, unreadable, or (when
    ``room_dir`` is given) not made from that room's current files with ``bad_lines``
    (see :func:`cache_status`). The manifest is decoded into ``arrays["info"]`` (a dict)."""
    path = Path(path)
    if not path.is_file():
        return None
    arrays = _load(path)
    if arrays is None:
        return None
    if room_dir is not None and cache_status(path, room_dir, bad_lines=bad_lines, arrays=arrays) != "valid":
        return None
    try:
        arrays["info"] = json.loads(str(arrays["manifest"]))
    except json.JSONDecodeError:
        return None
    return arrays


def _prepare_one(room_dir: str, dst: str, bad_lines: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes come back in the manifest and are shown once
        arrays = room_arrays(room_dir, bad_lines=bad_lines)
    write_cache(dst, arrays)
    return json.loads(str(arrays["manifest"]))


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
        skip_bad: skip rooms that fail (a warning each and a count in the summary) instead of
            stopping at the first.
        areas: which areas (default all six).
        bad_lines: the reader's policy for damaged lines (see :data:`~.reader.BAD_LINES`).
        quiet: no progress bar. force: rebuild caches that are valid.

    Returns a summary: ``rooms``, ``prepared``, ``skipped_existing`` (valid caches kept),
    ``rebuilt`` (stale caches replaced), ``bad`` and ``bad_rooms`` ({room: error}), ``points``,
    ``unlabelled``, ``unmatched`` and ``skipped_lines`` (over the rooms prepared now), ``notes``
    ({room: [repairs and skips]}), ``seconds``, ``out``. Notes are also shown as warnings.
    """
    t0 = time.perf_counter()
    base = dataset_root(root)
    out = Path(root).expanduser() / "cache" if out is None else Path(out)
    rooms = list_rooms(base, areas)

    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    skipped_existing = rebuilt = 0
    work: list[tuple[str, str, str, str]] = []
    for d in rooms:
        rid = room_id(d)
        dst = cache_path(out, rid)
        if dst.is_file() and not force:
            status = cache_status(dst, d, bad_lines=bad_lines)
            if status == "valid":
                skipped_existing += 1
                continue
            rebuilt += 1
        work.append((rid, str(d), str(dst), bad_lines))

    from fastprogress.fastprogress import progress_bar

    bad: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    totals = {"prepared": 0, "points": 0, "unlabelled": 0, "unmatched": 0, "skipped_lines": 0}

    def done(rid: str, man: dict[str, Any]) -> None:
        totals["prepared"] += 1
        for k in ("points", "unlabelled", "unmatched", "skipped_lines"):
            totals[k] += int(man[k])
        if man["notes"]:
            notes[rid] = list(man["notes"])
            for n in man["notes"]:
                warnings.warn(f"{rid}: {n}", stacklevel=3)

    def failed(rid: str, exc: BaseException) -> None:
        if not skip_bad:
            raise exc
        warnings.warn(f"skipping room {rid}: {exc}", stacklevel=3)
        bad[rid] = str(exc)

    def bar(it, total):
        return progress_bar(it, total=total) if (total and not quiet) else it

    if jobs <= 1 or len(work) <= 1:
        for rid, *args in bar(work, len(work)):
            try:
                done(rid, _prepare_one(*args))
            except (FastaiSparseError, OSError) as exc:
                failed(rid, exc)
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {pool.submit(_prepare_one, *args): rid for rid, *args in work}
            try:
                for fut in bar(as_completed(futures), len(futures)):
                    try:
                        done(futures[fut], fut.result())
                    except (FastaiSparseError, OSError) as exc:
                        failed(futures[fut], exc)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    if bad and not quiet:
        warnings.warn(f"prepare: {len(bad)} bad room(s) skipped: {sorted(bad)}", stacklevel=2)
    return {
        "root": str(base),
        "out": str(out),
        "rooms": len(rooms),
        **totals,
        "skipped_existing": skipped_existing,
        "rebuilt": rebuilt,
        "bad": len(bad),
        "bad_rooms": bad,
        "notes": notes,
        "seconds": round(time.perf_counter() - t0, 3),
    }
