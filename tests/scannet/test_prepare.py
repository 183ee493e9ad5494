"""prepare: caches equal to a direct read, resumable after an interruption, never half files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse_scannet.prepare import prepare, read_cache, scene_arrays
from fastai_sparse_scannet.reader import read_label_table


def _caches(out):
    return {p.name: read_cache(p) for p in sorted(out.glob("*.npz"))}


def _assert_same(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert sorted(a[name]) == sorted(b[name]), name
        for k in a[name]:
            np.testing.assert_array_equal(a[name][k], b[name][k], err_msg=f"{name}:{k}")
            assert a[name][k].dtype == b[name][k].dtype


def test_prepare_matches_direct_read(scannet_root, tmp_path):
    summary = prepare(scannet_root, out=tmp_path / "c", jobs=1, normals=True, quiet=True)
    assert summary["prepared"] == 4 and summary["bad"] == 0
    table = read_label_table(scannet_root / "scannetv2-labels.combined.tsv")
    direct = scene_arrays(scannet_root / "scans" / "scene0000_00", table=table, normals=True, labels=True)
    cached = read_cache(tmp_path / "c" / "scene0000_00.npz")
    for k in direct:
        np.testing.assert_array_equal(cached[k], direct[k])
    assert cached["labels"].dtype == np.int16 and cached["coords"].dtype == np.float32
    n = np.linalg.norm(cached["normals"], axis=1)
    np.testing.assert_allclose(n, 1, atol=1e-5)
    test = read_cache(tmp_path / "c" / "scene0707_00.npz")
    assert "labels" not in test and len(test["coords"]) > 0


def test_interrupted_then_resumed_gives_identical_caches(fresh_root, tmp_path):
    full = prepare(fresh_root, out=tmp_path / "full", jobs=1, quiet=True)
    assert full["prepared"] == 4
    # interrupt: the third scene (val) fails after two are done
    val = fresh_root / "scans" / "scene0002_00" / "scene0002_00_vh_clean_2.ply"
    good = val.read_bytes()
    val.write_bytes(good[:100])
    with pytest.raises(Exception, match="scene0002_00"):
        prepare(fresh_root, out=tmp_path / "part", jobs=1, quiet=True)
    files = sorted(p.name for p in (tmp_path / "part").iterdir())
    assert files == [".prepare.lock", "scene0000_00.npz", "scene0001_00.npz"]
    val.write_bytes(good)
    resumed = prepare(fresh_root, out=tmp_path / "part", jobs=2, quiet=True)
    assert resumed["skipped_existing"] == 2 and resumed["prepared"] == 2
    _assert_same(_caches(tmp_path / "full"), _caches(tmp_path / "part"))
    # a changed option makes the caches stale: they are rebuilt, not reused
    again = prepare(fresh_root, out=tmp_path / "part", jobs=1, normals=True, quiet=True)
    assert again["prepared"] == 4 and again["stale"] == 4


def test_half_written_file_is_not_taken_as_done(fresh_root, tmp_path):
    out = tmp_path / "c"
    prepare(fresh_root, out=out, jobs=1, quiet=True)
    p = out / "scene0000_00.npz"
    p.write_bytes(p.read_bytes()[:200])  # e.g. copied by hand and cut
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (out / f".scene0001_00.npz.{int(dead.stdout)}-0a1b2c3d.tmp").write_bytes(b"junk")  # left by a killed run
    s = prepare(fresh_root, out=out, jobs=1, quiet=True)
    assert s["prepared"] == 1 and s["skipped_existing"] == 3 and s["stale"] == 1
    assert read_cache(p) is not None and not list(out.glob(".*.tmp"))


def test_labels_edited_after_prepare_are_refused_then_rebuilt(fresh_root, tmp_path):
    from fastai_sparse.errors import StaleCacheError
    from fastai_sparse_scannet.dataset import ScanNetScenes
    from fastai_sparse_scannet.fixtures import write_ply_mesh
    from fastai_sparse_scannet.reader import read_mesh_ply

    out = tmp_path / "c"
    prepare(fresh_root, out=out, jobs=1, quiet=True)
    ds = ScanNetScenes(fresh_root, "train", cache=out)
    before = ds[1].attrs["labels"].copy()
    labels = fresh_root / "scans" / "scene0001_00" / "scene0001_00_vh_clean_2.labels.ply"
    m = read_mesh_ply(labels, labels=True)
    edited = np.where(m["label"] == 1, 0, m["label"])  # the walls un-annotated by hand
    write_ply_mesh(labels, m["xyz"], m["rgb"], m["faces"], label=edited)
    with pytest.raises(StaleCacheError) as e:
        ds[1]
    msg = str(e.value)
    assert "scene0001_00.npz" in msg and "scene0001_00_vh_clean_2.labels.ply changed" in msg
    assert f"fastai-sparse prepare scannet-seg --root {fresh_root}" in msg
    np.testing.assert_array_equal(
        ds[0].attrs["labels"], ScanNetScenes(fresh_root, "train", cache=tmp_path / "none")[0].attrs["labels"]
    )
    s = prepare(fresh_root, out=out, jobs=1, quiet=True)
    assert (s["prepared"], s["stale"], s["skipped_existing"]) == (1, 1, 3)
    after = ds[1].attrs["labels"]
    assert (before == 0).sum() > 0 and (after == -100).sum() > (before == -100).sum()
    np.testing.assert_array_equal(
        after, ScanNetScenes(fresh_root, "train", cache=tmp_path / "none")[1].attrs["labels"]
    )
    forced = prepare(fresh_root, out=out, jobs=1, quiet=True, force=True)
    assert (forced["prepared"], forced["skipped_existing"]) == (4, 0)


def test_dataset_refuses_cache_made_with_other_options(fresh_root, tmp_path):
    from fastai_sparse.errors import StaleCacheError
    from fastai_sparse_scannet.dataset import ScanNetScenes

    prepare(fresh_root, out=tmp_path / "c", jobs=1, quiet=True)
    ds = ScanNetScenes(fresh_root, "train", cache=tmp_path / "c", normals=True)
    with pytest.raises(
        StaleCacheError, match=r"made with normals=False, asked for normals=True.*-O normals=true"
    ):
        ds[0]


def test_cache_of_deleted_raw_scene_is_used_with_one_warning(fresh_root, tmp_path):
    import shutil

    from fastai_sparse_scannet.dataset import ScanNetScenes

    out = tmp_path / "c"
    prepare(fresh_root, out=out, jobs=1, quiet=True)
    expected = ScanNetScenes(fresh_root, "train", cache=out)[0].attrs["labels"]
    shutil.rmtree(fresh_root / "scans" / "scene0000_00")
    ds = ScanNetScenes(fresh_root, "train", cache=out)
    with pytest.warns(UserWarning, match="used without checking"):
        got = ds[0].attrs["labels"]
    np.testing.assert_array_equal(got, expected)
    s = prepare(fresh_root, out=out, jobs=1, quiet=True)
    assert (s["unverified"], s["skipped_existing"], s["prepared"]) == (1, 3, 0)
    assert (out / "scene0000_00.npz").is_file()  # never deleted
    with pytest.raises(DataFormatError, match=r"scene0000_00.*missing mesh PLY"):
        prepare(fresh_root, out=out, jobs=1, quiet=True, force=True)  # cannot be rebuilt
    np.testing.assert_array_equal(read_cache(out / "scene0000_00.npz")["labels"], expected)


def _start(root, out, jobs):
    code = (
        "import json; from fastai_sparse_scannet.prepare import prepare; "
        f"print(json.dumps(prepare({str(root)!r}, out={str(out)!r}, jobs={jobs}, quiet=True)))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.slow
def test_two_concurrent_prepare_processes_both_finish(tmp_path):
    """Two real `prepare` processes on one root: both succeed and every cache is complete and fresh
    (before the cache module one deleted the other's temporary files and crashed)."""
    import json

    from fastai_sparse_scannet.fixtures import make_fixture
    from fastai_sparse_scannet.prepare import cache_format, scene_item

    ids = [f"scene{i:04d}_00" for i in range(6)]
    root = make_fixture(tmp_path / "root", scenes={"train": ids, "val": []}, vertices=20000)
    out = tmp_path / "cache"
    procs = [_start(root, out, 2), _start(root, out, 2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in results]
    a, b = (json.loads(o) for o, _ in results)
    assert a["prepared"] + b["prepared"] == 6 and a["prepared"] + a["skipped_existing"] == 6
    fmt = cache_format(root)
    for s in ids:
        item = scene_item(root, s, root / "scans" / s, out, labelled=True)
        assert fmt.check(item).status == "fresh"
    assert sorted(p.name for p in out.iterdir()) == [".prepare.lock", *(f"{s}.npz" for s in ids)]


@pytest.mark.slow
def test_killed_run_resumes(tmp_path):
    """Kill a real prepare process mid-way: no partial file remains, no worker process stays
    behind, and a resume completes it."""
    psutil = pytest.importorskip("psutil")
    from fastai_sparse_scannet.fixtures import make_fixture

    # enough scenes that a fast machine cannot finish them all between two polls
    n = 16
    ids = [f"scene{i:04d}_00" for i in range(n)]
    root = make_fixture(tmp_path / "root", scenes={"train": ids, "val": []}, vertices=20000)
    out = tmp_path / "cache"
    proc = _start(root, out, 2)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.npz"))) < 1:
        time.sleep(0.005)
    workers = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "worker processes left behind"
    done = list(out.glob("*.npz"))
    assert 1 <= len(done) < n, f"{len(done)} of {n} scenes prepared before the kill"
    assert all(read_cache(p) is not None for p in done)  # every visible file is complete
    s = prepare(root, out=out, jobs=2, quiet=True)
    assert s["skipped_existing"] == len(done) and s["prepared"] == n - len(done)
    ref = prepare(root, out=tmp_path / "ref", jobs=1, quiet=True)
    assert ref["prepared"] == n
    _assert_same(_caches(tmp_path / "ref"), _caches(out))
    assert not list(out.glob(".*.tmp"))
