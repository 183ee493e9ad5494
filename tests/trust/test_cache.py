"""fastai_sparse.cache: records, freshness, atomic writes, locks, the parallel resumable runner."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fastai_sparse.cache import (
    RECORD_KEY,
    CacheFormat,
    CacheItem,
    atomic_path,
    folder_lock,
    prepare_items,
    read_record,
    remove_dead_temporaries,
)
from fastai_sparse.errors import DataFormatError, FastaiSparseError, StaleCacheError

from . import cache_builders


def _root(tmp_path, n=4) -> Path:
    root = tmp_path / "root"
    (root / "rooms").mkdir(parents=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        table = np.c_[rng.random((50, 3)), rng.integers(0, 5, 50)]
        np.savetxt(root / "rooms" / f"room{i}.txt", table, fmt="%.6f")
    return root


def _items(root, out):
    return [CacheItem(p.stem, out / f"{p.stem}.npz", (p,)) for p in sorted((root / "rooms").glob("*.txt"))]


def _fmt(root, **options):
    return CacheFormat(
        "test-room", 1, options, root=root, fix=f"fastai-sparse prepare test-seg --root {root}"
    )


def test_prepare_writes_arrays_and_record(tmp_path):
    root = _root(tmp_path)
    out = tmp_path / "cache"
    s = prepare_items(
        out, _items(root, out), cache_builders.build_room, _fmt(root, scale=2), jobs=1, quiet=True
    )
    assert (s["items"], s["prepared"], s["fresh"], s["bad"]) == (4, 4, 0, 0)
    table = np.loadtxt(root / "rooms" / "room1.txt")
    arrays = _fmt(root, scale=2).load(_items(root, out)[1])
    np.testing.assert_array_equal(arrays["xyz"], (table[:, :3] * 2).astype(np.float32))
    np.testing.assert_array_equal(arrays["labels"], table[:, 3].astype(np.int64))
    assert RECORD_KEY not in arrays
    rec = read_record(out / "room1.npz")
    st = (root / "rooms" / "room1.txt").stat()
    assert rec["item"] == "room1" and rec["format"] == "test-room" and rec["version"] == 1
    assert rec["options"] == {"scale": 2}
    assert rec["sources"] == [{"path": "rooms/room1.txt", "size": st.st_size, "mtime_ns": st.st_mtime_ns}]
    again = prepare_items(
        out, _items(root, out), cache_builders.build_room, _fmt(root, scale=2), jobs=1, quiet=True
    )
    assert (again["prepared"], again["fresh"]) == (0, 4)


def test_edited_source_is_refused_by_load_and_rebuilt_by_prepare(tmp_path):
    root = _root(tmp_path)
    out = tmp_path / "cache"
    fmt = _fmt(root)
    prepare_items(out, _items(root, out), cache_builders.build_room, fmt, jobs=1, quiet=True)
    src = root / "rooms" / "room2.txt"
    table = np.loadtxt(src)
    table[:, 3] = 4  # labels edited after prepare
    np.savetxt(src, table, fmt="%.6f")
    item = _items(root, out)[2]
    assert fmt.check(item).status == "stale"
    with pytest.raises(StaleCacheError) as e:
        fmt.load(item)
    msg = str(e.value)
    assert str(out / "room2.npz") in msg and "rooms/room2.txt changed" in msg
    assert f"fastai-sparse prepare test-seg --root {root}" in msg
    s = prepare_items(out, _items(root, out), cache_builders.build_room, fmt, jobs=1, quiet=True)
    assert (s["prepared"], s["stale"], s["fresh"]) == (1, 1, 3)
    assert (fmt.load(item)["labels"] == 4).all()


def test_mtime_only_change_with_hash_stays_fresh(tmp_path):
    root = _root(tmp_path)
    out = tmp_path / "cache"
    fmt = CacheFormat("test-room", 1, root=root, hash=True)
    plain = CacheFormat("test-room", 1, root=root)
    prepare_items(out, _items(root, out), cache_builders.build_room, fmt, jobs=1, quiet=True)
    prepare_items(
        tmp_path / "plain",
        _items(root, tmp_path / "plain"),
        cache_builders.build_room,
        plain,
        jobs=1,
        quiet=True,
    )
    src = root / "rooms" / "room0.txt"
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    assert fmt.check(_items(root, out)[0]).status == "fresh"
    assert plain.check(_items(root, tmp_path / "plain")[0]).status == "stale"
    src.write_text(src.read_text().replace("1", "2"))
    assert fmt.check(_items(root, out)[0]).status == "stale"


@pytest.mark.parametrize(
    "change, reason",
    [
        (
            lambda root, f: (CacheFormat("test-room", 2, root=root), None),
            "format version 1, this version writes 2",
        ),
        (lambda root, f: (CacheFormat("test-room", 1, {"scale": 3}, root=root), None), "asked for scale=3"),
        (lambda root, f: (CacheFormat("other", 1, root=root), None), "'test-room' cache, expected 'other'"),
        (lambda root, f: (f, (root / "extra.tsv").write_text("x")), "source extra.tsv did not exist"),
    ],
)
def test_stale_reasons(tmp_path, change, reason):
    root = _root(tmp_path, 1)
    out = tmp_path / "cache"
    fmt = CacheFormat("test-room", 1, root=root)
    item = CacheItem("room0", out / "room0.npz", (root / "rooms" / "room0.txt", root / "extra.tsv"))
    prepare_items(out, [item], cache_builders.build_room, fmt, jobs=1, quiet=True)
    new_fmt, _ = change(root, fmt)
    state = new_fmt.check(item)
    assert state.status == "stale" and any(reason in r for r in state.reasons), state.reasons


def test_old_cache_without_record_and_damaged_file_are_stale(tmp_path):
    root = _root(tmp_path, 2)
    out = tmp_path / "cache"
    out.mkdir()
    items = _items(root, out)
    np.savez(items[0].path, xyz=np.zeros((1, 3)))  # an older cache: no record
    items[1].path.write_bytes(b"PK\x03\x04 cut")
    fmt = _fmt(root)
    assert "no record" in fmt.check(items[0]).reasons[0]
    assert "unreadable" in fmt.check(items[1]).reasons[0]
    with pytest.raises(StaleCacheError, match="unreadable"):
        fmt.load(items[1])
    s = prepare_items(out, items, cache_builders.build_room, fmt, jobs=1, quiet=True)
    assert (s["prepared"], s["stale"]) == (2, 2)


def test_deleted_sources_keep_the_cache_usable(tmp_path):
    """Raw data removed after prepare: the cache cannot be checked, is used and never deleted."""
    root = _root(tmp_path, 2)
    out = tmp_path / "cache"
    fmt = _fmt(root)
    prepare_items(out, _items(root, out), cache_builders.build_room, fmt, jobs=1, quiet=True)
    items = _items(root, out)
    for it in items:
        it.sources[0].unlink()
    assert fmt.check(items[0]).status == "unverified"
    assert fmt.load(items[0])["xyz"].shape == (50, 3)
    s = prepare_items(out, items, cache_builders.build_room, fmt, jobs=1, quiet=True)
    assert (s["unverified"], s["prepared"]) == (2, 0) and items[0].path.is_file()


def test_missing_cache_loads_as_none(tmp_path):
    root = _root(tmp_path, 1)
    assert _fmt(root).load(_items(root, tmp_path / "nowhere")[0]) is None


def test_bad_item_stops_or_is_skipped(tmp_path):
    root = _root(tmp_path)
    (root / "rooms" / "room2.txt").write_text("1 2\n")  # two columns, not four
    out = tmp_path / "cache"
    fmt = _fmt(root)
    with pytest.raises(DataFormatError, match=r"room2\.txt.*expected 4 columns"):
        prepare_items(out, _items(root, out), cache_builders.build_room, fmt, jobs=1, quiet=True)
    assert not (out / "room2.npz").exists()
    with pytest.warns(UserWarning, match=r"skipped 1 bad item\(s\): room2"):
        s = prepare_items(
            out, _items(root, out), cache_builders.build_room, fmt, jobs=2, skip_bad=True, quiet=True
        )
    assert s["bad"] == 1 and "expected 4 columns" in s["bad_items"]["room2"]
    assert s["prepared"] + s["fresh"] == 3
    assert sorted(p.name for p in out.iterdir()) == [".prepare.lock", "room0.npz", "room1.npz", "room3.npz"]


def test_parallel_equals_serial(tmp_path):
    root = _root(tmp_path, 6)
    fmt = _fmt(root)
    for jobs, out in ((1, tmp_path / "a"), (3, tmp_path / "b")):
        s = prepare_items(out, _items(root, out), cache_builders.build_room, fmt, jobs=jobs, quiet=True)
        assert s["prepared"] == 6
    for a, b in zip(_items(root, tmp_path / "a"), _items(root, tmp_path / "b")):
        x, y = fmt.load(a), fmt.load(b)
        assert sorted(x) == sorted(y)
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_bug_in_build_is_raised_not_skipped(tmp_path):
    root = _root(tmp_path, 2)
    out = tmp_path / "cache"
    with pytest.raises(ZeroDivisionError):
        prepare_items(
            out, _items(root, out), cache_builders.build_buggy, _fmt(root), jobs=1, skip_bad=True, quiet=True
        )


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert p.read_bytes() == b"old" and sorted(x.name for x in tmp_path.iterdir()) == ["a.bin"]


def test_temporaries_of_dead_processes_only_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    mine = tmp_path / f".a.npz.{os.getpid()}-ab12cd34.tmp"
    gone = tmp_path / f".b.npz.{dead_pid}-cd34ef56.tmp"
    user = tmp_path / ".d.npz.notours.tmp"
    other = tmp_path / f"e.npz.{dead_pid}-cd34ef56.tmp"  # not hidden: not a temporary of ours
    for p in (mine, gone, user, other):
        p.write_bytes(b"x")
    assert remove_dead_temporaries(tmp_path) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (mine, user, other))


def test_folder_lock_excludes_a_second_holder(tmp_path):
    pytest.importorskip("fcntl")
    code = textwrap.dedent(
        f"""
        import sys, time
        from fastai_sparse.cache import folder_lock
        with folder_lock({str(tmp_path)!r}):
            print("locked", flush=True)
            time.sleep(30)
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            FastaiSparseError, match=rf"another prepare is running on this folder \(pid {holder.pid} "
        ):
            with folder_lock(tmp_path, wait=False):
                pass
    finally:
        holder.kill()
        holder.wait()
    t = time.time()
    with folder_lock(tmp_path, wait=False):  # released by the system when the holder died
        pass
    assert time.time() - t < 5


# -- real processes: concurrent runs, killed and interrupted runs ---------------------------------
def _start(root, out, jobs, delay):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEST_BUILD_DELAY": str(delay)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.trust.cache_builders", str(root), str(out), str(jobs)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _children(pid: int) -> list[int]:
    psutil = pytest.importorskip("psutil")
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _wait_gone(pids, timeout=10.0) -> list[int]:
    psutil = pytest.importorskip("psutil")
    deadline = time.time() + timeout
    alive = list(pids)
    while alive and time.time() < deadline:
        alive = [
            p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        time.sleep(0.1)
    return alive


def _states(root, out):
    fmt = CacheFormat("test-room", 1, root=root)
    return [fmt.check(it).status for it in _items(root, out)]


def _listing(out, n):
    return [".prepare.lock", *sorted(f"room{i}.npz" for i in range(n))]


@pytest.mark.slow
def test_two_concurrent_runs_both_finish(tmp_path):
    import json

    root = _root(tmp_path, 8)
    out = tmp_path / "cache"
    a, b = _start(root, out, 2, 0.2), _start(root, out, 2, 0.2)
    (oa, ea), (ob, eb) = a.communicate(timeout=300), b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, ea + eb
    sa, sb = json.loads(oa), json.loads(ob)
    assert sa["prepared"] + sb["prepared"] == 8
    assert sa["prepared"] + sa["fresh"] == 8 == sb["prepared"] + sb["fresh"]
    assert _states(root, out) == ["fresh"] * 8
    assert sorted(p.name for p in out.iterdir()) == _listing(out, 8)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_no_half_file_no_process_and_resumes(tmp_path, sig):
    import json
    import signal

    root = _root(tmp_path, 12)
    out = tmp_path / "cache"
    proc = _start(root, out, 2, 0.4)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.npz"))) < 2:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert workers, "the run should have worker processes"
    os.kill(proc.pid, getattr(signal, sig))
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert _wait_gone(workers) == [], f"worker processes left behind after {sig}"
    done = len(list(out.glob("*.npz")))
    assert 2 <= done < 12
    states = _states(root, out)
    assert states.count("fresh") == done and set(states) <= {"fresh", "missing"}  # no half file
    resumed = _start(root, out, 2, 0.0)
    o, e = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, e
    s = json.loads(o)
    assert (s["prepared"], s["fresh"]) == (12 - done, done)
    assert sorted(p.name for p in out.iterdir()) == _listing(out, 12)  # dead temporaries removed
