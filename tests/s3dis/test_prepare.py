"""prepare: caches equal to a direct read, parallel = serial, resumable, invalidated when their
sources change, refused when they do not belong to the room; the dataset from cache and raw."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from fastai_sparse.cache import read_record
from fastai_sparse.errors import StaleCacheError
from fastai_sparse.geometry import PointCloud
from fastai_sparse_s3dis.dataset import S3DISRooms, split_areas
from fastai_sparse_s3dis.prepare import cache_check, cache_path, prepare, read_info, room_arrays

from .conftest import base

ARRAYS = ("coords", "colors", "labels", "instance", "objects", "info")


def _caches(out):
    return {p.relative_to(out).as_posix(): np.load(p) for p in sorted(out.glob("*/*.npz"))}


def _assert_same(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        for k in ARRAYS:
            np.testing.assert_array_equal(a[name][k], b[name][k], err_msg=f"{name}:{k}")
            assert a[name][k].dtype == b[name][k].dtype


def _prepare(root, out, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare(root, out=out, quiet=True, **kw)


def _status(root, room, out, **kw):
    return cache_check(root, base(root) / room, out, **kw)


def test_prepare_matches_direct_read_and_reports_defects(s3dis_root, tmp_path):
    with pytest.warns(UserWarning) as rec:
        s = prepare(s3dis_root, out=tmp_path / "c", jobs=1, quiet=True)
    assert s["rooms"] == s["items"] == s["prepared"] == 9 and s["bad"] == 0 and s["fresh"] == 0
    assert s["unlabelled"] == 9 * 5 and s["unmatched"] == 0 and s["skipped_lines"] == 0
    assert s["points"] == sum(len(np.load(p)["coords"]) for p in (tmp_path / "c").glob("*/*.npz"))
    assert sorted(s["notes"]) == ["Area_5/hallway_6", "Area_6/copyRoom_1"]
    assert "line(s) 50: a control character" in s["notes"]["Area_5/hallway_6"][0]
    assert "copy_Room_1.txt, not copyRoom_1.txt" in s["notes"]["Area_6/copyRoom_1"][0]
    assert sum("Area_5/hallway_6" in str(w.message) for w in rec) == 1  # each note shown once
    d = base(s3dis_root) / "Area_1" / "office_1"
    direct = room_arrays(d)
    path = tmp_path / "c" / "Area_1" / "office_1.npz"
    cached = np.load(path)
    for k in ARRAYS:
        np.testing.assert_array_equal(cached[k], direct[k])
    assert cached["coords"].dtype == np.float32 and cached["labels"].dtype == np.int16
    info = read_info(path)
    assert info["room"] == "Area_1/office_1" and info["points"] == len(cached["coords"])
    rec = read_record(path)
    assert (rec["format"], rec["version"], rec["item"]) == ("s3dis-room", 1, "Area_1/office_1")
    assert rec["options"] == {"bad_lines": "skip"}
    assert rec["sources"][0]["path"] == "Area_1/office_1/office_1.txt"
    assert len(rec["sources"]) == 1 + len(list((d / "Annotations").glob("*.txt")))
    assert all(x["size"] == (base(s3dis_root) / x["path"]).stat().st_size for x in rec["sources"])
    # everything is fresh now: nothing is rebuilt, the notes are in the summary but not warned again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = prepare(s3dis_root, out=tmp_path / "c", jobs=1, quiet=True)
    assert again["fresh"] == 9 and again["prepared"] == 0 and again["notes"] == s["notes"]


def test_parallel_equals_serial(s3dis_root, tmp_path):
    a = _prepare(s3dis_root, tmp_path / "serial", jobs=1)
    b = _prepare(s3dis_root, tmp_path / "parallel", jobs=2)
    assert a["prepared"] == b["prepared"] == 9 and a["notes"] == b["notes"]
    _assert_same(_caches(tmp_path / "serial"), _caches(tmp_path / "parallel"))


def test_interrupted_then_resumed_gives_identical_caches(fresh_root, tmp_path):
    full = _prepare(fresh_root, tmp_path / "full", jobs=1, areas=[1, 2, 5])
    assert full["prepared"] == 4
    # interrupt: the third room fails after two are done
    p = base(fresh_root) / "Area_5" / "hallway_1" / "hallway_1.txt"
    good = p.read_bytes()
    p.write_bytes(b"")
    with pytest.raises(Exception, match="hallway_1"):
        _prepare(fresh_root, tmp_path / "part", jobs=1, areas=[1, 2, 5])
    assert sorted(_caches(tmp_path / "part")) == ["Area_1/office_1.npz", "Area_2/office_2.npz"]
    p.write_bytes(good)
    os.utime(p, ns=(1, 1))  # changed mtime: the full run's cache of this room is stale now
    resumed = _prepare(fresh_root, tmp_path / "part", jobs=2, areas=[1, 2, 5])
    assert resumed["fresh"] == 2 and resumed["prepared"] == 2 and resumed["stale"] == 0
    again = _prepare(fresh_root, tmp_path / "full", jobs=1, areas=[1, 2, 5])
    assert again["fresh"] == 3 and again["stale"] == 1 and again["prepared"] == 1
    _assert_same(_caches(tmp_path / "full"), _caches(tmp_path / "part"))


def test_cache_invalidation_rules(fresh_root, tmp_path):
    out = tmp_path / "c"
    _prepare(fresh_root, out, jobs=1, areas=[1, 2, 5])
    room = "Area_1/office_1"
    d = base(fresh_root) / room
    path = cache_path(out, room)
    assert _status(fresh_root, room, out).status == "fresh"
    # an annotation file rewritten (same content, new mtime)
    chair = d / "Annotations" / "chair_1.txt"
    st = chair.stat()
    os.utime(chair, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    state = _status(fresh_root, room, out)
    assert (
        state.status == "stale"
        and "source Area_1/office_1/Annotations/chair_1.txt changed" in state.reasons[0]
    )
    with pytest.raises(StaleCacheError, match=r"office_1\.npz: cache file does not match.*chair_1\.txt changed.*"
                       r"run `fastai-sparse prepare s3dis-seg --root "):  # fmt: skip
        S3DISRooms(fresh_root, rooms=[room], cache=out)[0]
    s = _prepare(fresh_root, out, jobs=1, areas=[1, 2, 5])
    assert s["stale"] == 1 and s["prepared"] == 1 and _status(fresh_root, room, out).status == "fresh"
    # a new annotation file, then a removed one
    (d / "Annotations" / "clutter_9.txt").write_text("0.000 0.000 0.000 1 2 3\n")
    assert "clutter_9.txt was not among its sources" in _status(fresh_root, room, out).reasons[0]
    _prepare(fresh_root, out, jobs=1, areas=[1])
    (d / "Annotations" / "clutter_9.txt").unlink()
    assert "clutter_9.txt is no longer among its sources" in _status(fresh_root, room, out).reasons[0]
    _prepare(fresh_root, out, jobs=1, areas=[1])
    # another room's cache copied under this name; another policy; a cut file
    path.write_bytes(cache_path(out, "Area_2/office_2").read_bytes())
    assert (
        "it was made for item 'Area_2/office_2', expected 'Area_1/office_1'"
        in _status(fresh_root, room, out).reasons
    )
    _prepare(fresh_root, out, jobs=1, areas=[1])
    state = _status(fresh_root, room, out, bad_lines="error")
    assert state.reasons == ["it was made with bad_lines='skip', asked for bad_lines='error'"]
    path.write_bytes(path.read_bytes()[:300])
    assert _status(fresh_root, room, out).status == "stale"
    s = _prepare(fresh_root, out, jobs=1, areas=[1, 2, 5])
    assert s["stale"] == 1 and s["fresh"] == 3 and _status(fresh_root, room, out).status == "fresh"


def test_dataset_from_cache_equals_raw_and_warns_without_cache(s3dis_root, tmp_path):
    with pytest.warns(UserWarning, match="has no cache file .*run `fastai-sparse prepare s3dis-seg"):
        raw = S3DISRooms(s3dis_root, "valid", cache=tmp_path / "none")[0]
    _prepare(s3dis_root, tmp_path / "c", jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = S3DISRooms(s3dis_root, "valid", cache=tmp_path / "c")
        cached = ds[0]
    assert isinstance(cached, PointCloud) and cached.meta["id"] == raw.meta["id"] == "Area_5/hallway_6"
    np.testing.assert_array_equal(cached.xyz, raw.xyz)
    for k in ("rgb", "labels", "instance"):
        np.testing.assert_array_equal(cached.attrs[k], raw.attrs[k])
    assert cached.attrs["labels"].dtype == np.int64 and cached.attrs["rgb"].dtype == np.uint8
    assert cached.meta["path"].endswith("hallway_6/hallway_6.txt") and cached.meta["unlabelled"] == 5
    assert set(ds.cache_report().values()) == {"fresh"}


def test_splits_and_folds(s3dis_root):
    assert split_areas("train") == (1, 2, 3, 4, 6) and split_areas("valid") == (5,)
    assert split_areas("train", fold=2) == (1, 3, 4, 5, 6) and split_areas("val", fold=2) == (2,)
    train, valid = S3DISRooms(s3dis_root, "train"), S3DISRooms(s3dis_root, "valid")
    assert len(train) == 7 and valid.ids == ["Area_5/hallway_6", "Area_5/office_1"]
    assert not set(train.ids) & set(valid.ids)
    fold6 = S3DISRooms(s3dis_root, "valid", fold=6)
    assert fold6.ids == ["Area_6/copyRoom_1", "Area_6/office_3"]
    assert S3DISRooms(s3dis_root, rooms=["Area_2/conferenceRoom_1"]).ids == ["Area_2/conferenceRoom_1"]


@pytest.mark.slow
def test_killed_run_resumes(tmp_path):
    """Kill a real prepare process mid-way; every visible cache is complete and a resume finishes."""
    from fastai_sparse_s3dis.fixtures import make_fixture

    rooms = {"Area_1": [f"office_{k}" for k in range(1, 9)]}
    root = make_fixture(tmp_path / "root", rooms=rooms, points=60_000, defects=())
    out = tmp_path / "cache"
    code = (
        "import warnings; warnings.simplefilter('ignore'); from fastai_sparse_s3dis.prepare import prepare; "
        f"prepare({str(root)!r}, out={str(out)!r}, jobs=1, quiet=True, areas=[1])"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.glob("*/*.npz"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list(out.glob("*/*.npz"))
    assert 2 <= len(done) < 8
    assert all(_status(root, f"Area_1/{p.stem}", out).status == "fresh" for p in done)
    s = _prepare(root, out, jobs=2, areas=[1])
    assert s["fresh"] == len(done) and s["prepared"] == 8 - len(done)
    assert not list(out.glob("**/.*.tmp"))
    _prepare(root, tmp_path / "ref", jobs=1, areas=[1])
    _assert_same(_caches(tmp_path / "ref"), _caches(out))
