"""prepare: caches equal to a direct read, resumable after an interruption, never half files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

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
    assert sorted(p.name for p in (tmp_path / "part").iterdir()) == ["scene0000_00.npz", "scene0001_00.npz"]
    val.write_bytes(good)
    resumed = prepare(fresh_root, out=tmp_path / "part", jobs=2, quiet=True)
    assert resumed["skipped_existing"] == 2 and resumed["prepared"] == 2
    _assert_same(_caches(tmp_path / "full"), _caches(tmp_path / "part"))
    # a changed option makes the caches stale: they are rebuilt, not reused
    again = prepare(fresh_root, out=tmp_path / "part", jobs=1, normals=True, quiet=True)
    assert again["prepared"] == 4


def test_half_written_file_is_not_taken_as_done(fresh_root, tmp_path):
    out = tmp_path / "c"
    prepare(fresh_root, out=out, jobs=1, quiet=True)
    p = out / "scene0000_00.npz"
    p.write_bytes(p.read_bytes()[:200])  # e.g. copied by hand and cut
    (out / ".scene0001_00.npz.abc.tmp").write_bytes(b"junk")  # left by a killed run
    s = prepare(fresh_root, out=out, jobs=1, quiet=True)
    assert s["prepared"] == 1 and s["skipped_existing"] == 3
    assert read_cache(p) is not None and not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_killed_run_resumes(tmp_path):
    """Kill a real prepare process mid-way; no partial file remains and a resume completes it."""
    from fastai_sparse_scannet.fixtures import make_fixture

    ids = [f"scene{i:04d}_00" for i in range(8)]
    root = make_fixture(tmp_path / "root", scenes={"train": ids, "val": []}, vertices=20000)
    out = tmp_path / "cache"
    code = f"from fastai_sparse_scannet.prepare import prepare; prepare({str(root)!r}, out={str(out)!r}, jobs=1, quiet=True)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.npz"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list(out.glob("*.npz"))
    assert 2 <= len(done) < 8
    assert all(read_cache(p) is not None for p in done)  # every visible file is complete
    s = prepare(root, out=out, jobs=2, quiet=True)
    assert s["skipped_existing"] == len(done) and s["prepared"] == 8 - len(done)
    ref = prepare(root, out=tmp_path / "ref", jobs=1, quiet=True)
    assert ref["prepared"] == 8
    _assert_same(_caches(tmp_path / "ref"), _caches(out))
