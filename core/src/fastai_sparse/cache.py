"""Prepared caches: raw dataset files -> one ``.npz`` of arrays per item, which records what it
was made from and is rebuilt or refused when that no longer matches.

This is the one mechanism every ``prepare`` of fastai-sparse and its plugins uses. A plugin
describes its cache with a :class:`CacheFormat` (a name, a version, the options that change the
content), lists its items as :class:`CacheItem` (an id, the cache file, the source files) and
gives a ``build(item, **options) -> dict of arrays`` function; :func:`prepare_items` does the
rest:

- **records**: every cache file holds, next to the arrays, a JSON record (key ``__cache__``) of
  the format name and version, the item id, the options, and each source file's path (relative
  to the data root), size and modification time (and SHA-256 with ``hash=True``). Sources that
  did not exist are recorded as absent, so a file added later (e.g. an aggregation) also makes
  the cache stale.
- **freshness**: :meth:`CacheFormat.check` compares a cache file with its item now: another
  version or option, a changed or added source, another list of sources make it stale, with a
  reason per difference. ``prepare`` rebuilds stale files; a dataset reading one through
  :meth:`CacheFormat.load` gets a :class:`~fastai_sparse.errors.StaleCacheError` naming the file,
  the reason and the command that rebuilds it (``CacheFormat.fix``). A cache some of whose
  recorded sources are gone (raw data deleted after ``prepare`` to save space), the rest
  unchanged, cannot be fully checked; it is used as it is (status ``"unverified"``, one warning
  per folder) and never deleted.
- **atomic writes**: a cache file is written through :func:`fastai_sparse.files.atomic_path`
  (re-exported here): a temporary name unique to the writing process
  (``.<name>.<pid>-<random>.tmp``), renamed into place when complete, so a reader never sees a
  half file, an interrupted run leaves nothing under a final name, and two runs never touch
  each other's temporary files. The next run removes the temporaries of dead processes; those
  of live processes are left alone.
- **one run per folder**: :func:`prepare_items` holds an advisory lock (``<folder>/.prepare.lock``,
  ``fcntl.flock``; released by the system when the process dies) while it works; a second run on
  the same folder says it is waiting, then finds the work done. Without ``fcntl`` (Windows) the
  writes alone keep concurrent runs correct (the same file may be built twice).
- **parallel and resumable**: items are built in worker processes (``spawn``) with a fastprogress
  bar; fresh files are skipped, so an interrupted run resumes where it stopped. Workers ignore
  Ctrl-C (the parent stops them) and exit by themselves when the parent dies, so no process is
  left behind. A bad item (a :class:`~fastai_sparse.errors.FastaiSparseError` or ``OSError``
  from ``build``) stops the run, or with ``skip_bad=True`` is left out with one warning listing
  them and a count in the summary. Any other exception is a bug and is raised.

Example: a plugin caching one ``.npz`` per ``ROOT/rooms/<room>.txt`` (``x y z label`` lines);
the complete, tested version is in ``docs/prepared-caches.md``::

    from pathlib import Path
    import numpy as np
    from fastai_sparse.cache import CacheFormat, CacheItem, prepare_items

    def build(item: CacheItem, centre: bool = False) -> dict[str, np.ndarray]:
        # module level (worker processes import it); gets the format's options as keywords
        table = np.loadtxt(item.sources[0], ndmin=2)
        xyz = table[:, :3].astype(np.float32)
        return {"xyz": xyz - xyz.mean(0) if centre else xyz, "labels": table[:, 3].astype(np.int64)}

    def cache_format(root, *, centre=False) -> CacheFormat:
        return CacheFormat("mydata-room", version=1, options={"centre": centre}, root=root,
                           fix=f"fastai-sparse prepare mydata-seg --root {root}")

    def cache_items(root, out) -> list[CacheItem]:
        return [CacheItem(p.stem, Path(out) / f"{p.stem}.npz", (p,))
                for p in sorted(Path(root, "rooms").glob("*.txt"))]

    def prepare(root, out=None, jobs=2, skip_bad=False, force=False, quiet=False, centre=False):
        out = Path(out) if out is not None else Path(root) / "cache"
        return prepare_items(out, cache_items(root, out), build, cache_format(root, centre=centre),
                             jobs=jobs, skip_bad=skip_bad, force=force, quiet=quiet)

    # in the dataset: the arrays, None when there is no cache file (read the raw file instead),
    # StaleCacheError (quoting the fix command) when it no longer matches
    arrays = cache_format(root, centre=centre).load(item)

Written by hand because no library does this: the pieces (``np.savez``, ``os.replace``,
``fcntl.flock``, ``concurrent.futures``, fastprogress) are standard; what is specific is the
record, the comparison and the rules for temporaries, locks and workers above.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataFormatError, FastaiSparseError, StaleCacheError
from .files import atomic_path

__all__ = [
    "RECORD_KEY",
    "CacheCheck",
    "CacheFormat",
    "CacheItem",
    "atomic_path",
    "folder_lock",
    "prepare_items",
    "read_record",
    "remove_dead_temporaries",
    "source_state",
]

#: The npz key holding the JSON record of a cache file.
RECORD_KEY = "__cache__"
#: Name of the lock file :func:`prepare_items` holds in the cache folder.
LOCK_NAME = ".prepare.lock"

#: the temporary names of :func:`fastai_sparse.files.atomic_path`
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<rand>[0-9a-f]+)\.tmp$")
_BAD = (FastaiSparseError, OSError)


# ---------------------------------------------------------------------------------------------
# temporaries and the folder lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_dead_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_path` in ``folder`` (not recursive) whose
    writing process is no longer running. Returns the paths removed. Temporaries of live
    processes and every other file are left alone. (:func:`prepare_items` calls it while it
    holds the folder lock, so no other prepare can be writing there.)"""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TMP.match(p.name)
        if m and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def folder_lock(folder: str | Path, *, wait: bool = True, log: Callable[[str], None] | None = None):
    """Hold an exclusive advisory lock on ``folder`` (file ``<folder>/.prepare.lock``) for the
    ``with`` block. When another process holds it, ``log`` a line naming it and wait (``wait``)
    or raise :class:`~fastai_sparse.errors.FastaiSparseError`. The operating system releases the
    lock when the holder dies, so a killed run never leaves the folder locked. A no-op where
    ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            if not wait:
                raise FastaiSparseError(
                    f"{folder}: another prepare is running on this folder ({holder}); wait for it to finish"
                ) from None
            if log is not None:
                log(f"{folder}: another prepare is running on this folder ({holder}); waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# ---------------------------------------------------------------------------------------------
# records


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _rel(path: Path, root: Path | None) -> str:
    path = Path(os.path.abspath(path))
    if root is not None:
        try:
            return path.relative_to(Path(os.path.abspath(root))).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def source_state(path: str | Path, root: str | Path | None = None, hash: bool = False) -> dict[str, Any]:
    """The record of one source file: ``{"path", "size", "mtime_ns"[, "sha256"]}``, or
    ``{"path", "absent": True}`` when it does not exist. ``path`` is relative to ``root`` when
    the file is under it (so a data root moved with its cache stays valid), else absolute."""
    path = Path(path)
    rec: dict[str, Any] = {"path": _rel(path, Path(root) if root is not None else None)}
    try:
        st = path.stat()
    except FileNotFoundError:
        rec["absent"] = True
        return rec
    rec["size"], rec["mtime_ns"] = int(st.st_size), int(st.st_mtime_ns)
    if hash:
        rec["sha256"] = _sha256(path)
    return rec


def _jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples -> lists, paths -> strings, sorted keys)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=os.fspath))


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The record stored in a cache file; None when the file has none (written by an older
    version or by hand). Raises DataFormatError when the file is not a readable npz."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if RECORD_KEY not in z.files:
                return None
            return json.loads(str(z[RECORD_KEY]))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise DataFormatError(f"cannot read the cache file ({type(e).__name__}: {e})", path=path) from e


@dataclass(frozen=True)
class CacheItem:
    """One cache file to make: ``id`` (e.g. a scene id), ``path`` (the ``.npz``), ``sources``
    (every file its content is read from: all are recorded, absent ones as absent) and ``args``
    (anything picklable the build function needs)."""

    id: str
    path: Path
    sources: tuple[Path, ...] = ()
    args: Any = None

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "sources", tuple(Path(s) for s in self.sources))


@dataclass
class CacheCheck:
    """The state of one cache file against its item: ``status`` is ``"missing"`` (no file),
    ``"fresh"``, ``"stale"`` (``reasons`` says why) or ``"unverified"`` (some recorded sources
    are gone, the others unchanged: it cannot be fully checked and is used as it is)."""

    item: CacheItem
    status: str
    reasons: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.status in ("fresh", "unverified")

    def describe(self) -> str:
        return f"{self.item.path}: " + "; ".join(self.reasons or [self.status])


def _when(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))


@dataclass(frozen=True)
class CacheFormat:
    """What a cache file of one kind holds and how it was made.

    name: the kind of cache (``"scannet-scene"``). version: bump it whenever ``build`` changes
    what it writes, so old files are rebuilt. options: the settings that change the content
    (JSON-able values, e.g. ``{"label_source": "nyu40"}``). root: the data root; sources under
    it are recorded relative to it. hash: also record and compare each source's SHA-256 (reads
    every source once more; a file whose time changed but whose content did not then stays
    fresh). fix: the command that rebuilds the cache, quoted in errors
    (``"fastai-sparse prepare scannet-seg --root /data/scannet"``). compressed: ``np.savez_compressed``.
    """

    name: str
    version: int
    options: Mapping[str, Any] = field(default_factory=dict)
    root: Path | None = None
    hash: bool = False
    fix: str | None = None
    compressed: bool = False

    def record(self, item: CacheItem) -> dict[str, Any]:
        """The record of ``item`` as its sources are now."""
        return {
            "format": self.name,
            "version": int(self.version),
            "item": item.id,
            "options": _jsonable(dict(self.options)),
            "sources": [source_state(s, self.root, self.hash) for s in item.sources],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "writer": f"fastai-sparse {_version()}",
        }

    def write(
        self, item: CacheItem, arrays: Mapping[str, np.ndarray], record: Mapping[str, Any] | None = None
    ) -> Path:
        """Write ``arrays`` and the record (``record``, default :meth:`record` now) to
        ``item.path`` atomically. Take the record *before* reading the sources, so a source
        changed during the build makes the file stale rather than wrongly fresh."""
        record = self.record(item) if record is None else dict(record)
        out: dict[str, np.ndarray] = {}
        for k, v in arrays.items():
            if k == RECORD_KEY:
                raise ValueError(f"array name {RECORD_KEY!r} is reserved for the cache record")
            a = np.asarray(v)
            if a.dtype.kind == "O":
                raise DataFormatError(
                    f"array {k!r} holds Python objects, expected numbers or strings", path=item.path
                )
            out[k] = a
        out[RECORD_KEY] = np.array(json.dumps(record, sort_keys=True))
        save = np.savez_compressed if self.compressed else np.savez
        with atomic_path(item.path) as tmp, open(tmp, "wb") as f:
            save(f, **out)
        return item.path

    def compare(self, item: CacheItem, recorded: Mapping[str, Any] | None) -> CacheCheck:
        """Compare a stored record with ``item`` now (see :meth:`check`)."""
        if recorded is None:
            return CacheCheck(
                item, "stale", ["it has no record of its sources (written by an older version)"]
            )
        reasons = []
        if recorded.get("format") != self.name:
            reasons.append(f"it holds a {recorded.get('format')!r} cache, expected {self.name!r}")
        if recorded.get("version") != self.version:
            reasons.append(
                f"it has format version {recorded.get('version')}, this version writes {self.version}"
            )
        if recorded.get("item") != item.id:
            reasons.append(f"it was made for item {recorded.get('item')!r}, expected {item.id!r}")
        want = _jsonable(dict(self.options))
        have = recorded.get("options") or {}
        for k in sorted(set(want) | set(have)):
            if want.get(k) != have.get(k):
                reasons.append(f"it was made with {k}={have.get(k)!r}, asked for {k}={want.get(k)!r}")
        old = {s["path"]: s for s in recorded.get("sources", [])}
        new = {Path(s): _rel(Path(s), self.root) for s in item.sources}
        gone = 0
        for p, rel in new.items():
            o = old.pop(rel, None)
            exists = p.exists()
            if o is None:
                reasons.append(f"source {rel} was not among its sources")
            elif o.get("absent"):
                if exists:
                    reasons.append(f"source {rel} did not exist when it was made, and exists now")
            elif not exists:
                gone += 1
            else:
                st = p.stat()
                if st.st_size == o.get("size") and st.st_mtime_ns == o.get("mtime_ns"):
                    continue
                if st.st_size == o.get("size") and o.get("sha256") and _sha256(p) == o["sha256"]:
                    continue  # touched or copied, same content
                reasons.append(
                    f"source {rel} changed since it was made (size {o.get('size')} -> {st.st_size} bytes, "
                    f"modified {_when(o.get('mtime_ns', 0))} -> {_when(st.st_mtime_ns)})"
                )
        reasons += [f"source {rel} is no longer among its sources" for rel in old]
        if reasons:
            return CacheCheck(item, "stale", reasons)
        if gone:  # nothing changed that can be seen: what is left matches
            present = sum(not s.get("absent") for s in recorded.get("sources", []))
            return CacheCheck(item, "unverified", [f"{gone} of its {present} source files are gone"])
        return CacheCheck(item, "fresh")

    def check(self, item: CacheItem) -> CacheCheck:
        """Whether ``item.path`` exists and matches ``item``'s sources and this format now."""
        if not item.path.is_file():
            return CacheCheck(item, "missing")
        try:
            rec = read_record(item.path)
        except (DataFormatError, OSError) as e:
            return CacheCheck(item, "stale", [f"it is unreadable ({e})"])
        return self.compare(item, rec)

    def load(self, item: CacheItem, *, check: bool = True) -> dict[str, np.ndarray] | None:
        """The arrays of ``item``'s cache file (without the record); None when the file does not
        exist. A file that does not match (see :meth:`check`) raises
        :class:`~fastai_sparse.errors.StaleCacheError` naming the file, why, and :attr:`fix`."""
        path = item.path
        try:
            with np.load(path, allow_pickle=False) as z:
                rec = json.loads(str(z[RECORD_KEY])) if RECORD_KEY in z.files else None
                state = self.compare(item, rec) if check else CacheCheck(item, "fresh")
                if not state.usable:
                    raise self.stale_error(state)
                if state.status == "unverified":
                    _warn_unverified(item.path)
                return {k: z[k] for k in z.files if k != RECORD_KEY}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
            if isinstance(e, StaleCacheError):
                raise
            raise self.stale_error(
                CacheCheck(item, "stale", [f"it is unreadable ({type(e).__name__}: {e})"])
            ) from e

    def stale_error(self, state: CacheCheck) -> StaleCacheError:
        fix = f"run `{self.fix}`" if self.fix else "run the task's `fastai-sparse prepare` again"
        return StaleCacheError(
            "cache file does not match what it was made from: "
            + "; ".join(state.reasons)
            + f"; {fix} to rebuild it (prepare rebuilds exactly the stale files)",
            path=state.item.path,
        )


_UNVERIFIED_WARNED: set[Path] = set()


def _warn_unverified(path: Path) -> None:
    """One warning per cache folder and process: its files are used unchecked."""
    if path.parent not in _UNVERIFIED_WARNED:
        _UNVERIFIED_WARNED.add(path.parent)
        warnings.warn(
            f"{path.parent}: cache files whose source files are gone are used without checking them "
            f"(first: {path.name}); restore the raw files to have them checked",
            stacklevel=3,
        )


def _version() -> str:
    from . import __version__

    return __version__


# ---------------------------------------------------------------------------------------------
# the runner


def _worker_init(parent: int) -> None:  # pragma: no cover - runs in worker processes
    """Workers leave Ctrl-C to the parent and exit when the parent is gone (killed)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="fastai-sparse-parent-watch").start()


def _build_one(build: Callable, fmt: CacheFormat, item: CacheItem) -> tuple[str, BaseException | None]:
    record = fmt.record(item)  # before reading: a source changed meanwhile leaves the file stale
    try:
        arrays = build(item, **dict(fmt.options))
        if not isinstance(arrays, Mapping):
            raise TypeError(f"build({item.id!r}) returned {type(arrays).__name__}, expected a dict of arrays")
        fmt.write(item, arrays, record)
    except _BAD as e:
        return item.id, e
    return item.id, None


def _terminate(pool) -> None:
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(5)


def prepare_items(
    folder: str | Path,
    items: Sequence[CacheItem],
    build: Callable[..., Mapping[str, np.ndarray]],
    fmt: CacheFormat,
    *,
    jobs: int = 2,
    force: bool = False,
    skip_bad: bool = False,
    quiet: bool = False,
    bad: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the cache file of every item that is missing or stale (all of them with
    ``force``), ``jobs`` worker processes at a time (1: in this process), under a lock on
    ``folder``.

    build: ``build(item, **fmt.options) -> {name: array}``, a module-level function (workers
    import it); it gets the format's options, so the options recorded are the ones used.
    skip_bad: leave out items whose build raises a FastaiSparseError or OSError, with one
    warning; otherwise the first one stops the run and is raised (files already written stay,
    and the next run resumes). bad: items the caller already found bad (``{id: message}``),
    counted and listed with the rest. quiet: no progress bar and no messages.

    Returns a summary: ``items``, ``prepared``, ``fresh`` (kept as they were), ``stale`` (of the
    prepared, how many replaced an out-of-date file), ``unverified`` (kept, sources gone),
    ``bad`` (count), ``bad_items`` ({id: message}), ``seconds``, ``out``, ``format``,
    ``version``, ``options``.
    """
    t0 = time.perf_counter()
    folder = Path(folder)
    bad_items: dict[str, str] = dict(bad or {})

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    with folder_lock(folder, log=log):
        for d in sorted({folder, *(it.path.parent for it in items)}):
            remove_dead_temporaries(d)
        todo: list[CacheItem] = []
        counts = {"fresh": 0, "stale": 0, "unverified": 0}
        stale_notes: list[str] = []
        for it in items:
            state = CacheCheck(it, "missing") if force else fmt.check(it)
            if state.status in ("fresh", "unverified"):
                counts[state.status] += 1
                continue
            if state.status == "stale":
                counts["stale"] += 1
                stale_notes.append(f"{it.id}: {state.reasons[0]}")
            todo.append(it)
        if stale_notes:
            more = f" (and {len(stale_notes) - 3} more)" if len(stale_notes) > 3 else ""
            log(
                f"prepare: rebuilding {len(stale_notes)} out-of-date cache file(s): "
                + "; ".join(stale_notes[:3])
                + more
            )
        prepared = 0
        with contextlib.closing(_run(todo, build, fmt, jobs, quiet)) as results:
            for item_id, exc in results:
                if exc is None:
                    prepared += 1
                    continue
                if not skip_bad:
                    raise exc
                bad_items[item_id] = str(exc)
    if bad_items and skip_bad:
        shown = ", ".join(sorted(bad_items)[:10]) + (", ..." if len(bad_items) > 10 else "")
        warnings.warn(
            f"prepare {folder}: skipped {len(bad_items)} bad item(s): {shown}; the summary's bad_items says why",
            stacklevel=2,
        )
    return {
        "out": str(folder),
        "format": fmt.name,
        "version": fmt.version,
        "options": _jsonable(dict(fmt.options)),
        "items": len(items) + len(bad or {}),
        "prepared": prepared,
        "fresh": counts["fresh"],
        "stale": counts["stale"],
        "unverified": counts["unverified"],
        "bad": len(bad_items),
        "bad_items": bad_items,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _run(todo: list[CacheItem], build: Callable, fmt: CacheFormat, jobs: int, quiet: bool):
    """Yield ``(item id, exception or None)`` as items finish."""
    if not todo:
        return
    from fastprogress.fastprogress import progress_bar

    def bar(it):
        return it if quiet else progress_bar(it, total=len(todo))

    if jobs <= 1 or len(todo) == 1:
        for it in bar(todo):
            yield _build_one(build, fmt, it)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(
        max_workers=min(jobs, len(todo)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )
    try:
        futures = [pool.submit(_build_one, build, fmt, it) for it in todo]
        for fut in bar(as_completed(futures)):
            yield fut.result()
    except BaseException:
        _terminate(pool)
        raise
    pool.shutdown(wait=True)
