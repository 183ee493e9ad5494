"""``fastai-sparse prepare`` for ModelNet: cache, bad files, resume, and reading the cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse_classification import ModelNet
from fastai_sparse_classification.prepare import prepare_modelnet


def test_prepare_writes_a_cache_the_dataset_reads(fixture_roots, tmp_path):
    root = tmp_path / "mn"
    shutil.copytree(fixture_roots["modelnet-off"], root)
    summary = prepare_modelnet(root, jobs=1, points=300)
    out = root / "modelnet40-prepared"
    assert summary["counts"] == {"train": 6, "test": 3} and summary["bad"] == []
    assert json.loads((out / "prepared.json").read_text())["points"] == 300
    assert len(list(out.glob("*/*/*.npz"))) == 9
    raw = ModelNet(root, "train", points=300, prepared=False)
    cached = ModelNet(root, "train", points=300)
    assert [it.id for it in cached.items] == [it.id for it in raw.items]
    assert cached.items[0].path.suffix == ".npz"
    a, b = raw[0], cached[0]
    assert a.target == b.target and a.meta["category"] == b.meta["category"]
    # the cache holds the points the raw reader samples (same seed), in the same order
    assert np.allclose(np.sort(a.xyz, axis=0), np.sort(b.xyz, axis=0), atol=1e-6)
    # resumable: a second run rewrites nothing
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*/*/*.npz")}
    prepare_modelnet(root, jobs=1, points=300)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/*.npz")} == stamp


def test_prepare_reports_bad_files(fixture_roots, tmp_path):
    root = tmp_path / "mn"
    shutil.copytree(fixture_roots["modelnet-off"], root)
    broken = root / "ModelNet40" / "chair" / "train" / "chair_0009.off"
    broken.write_text("OFF\n3 1 0\n0 0 0\n")
    with pytest.raises(DataFormatError, match=r"chair_0009\.off"):
        prepare_modelnet(root, jobs=1, points=100, quiet=True)
    assert not (root / "modelnet40-prepared" / "prepared.json").exists()  # not complete: not used
    with pytest.warns(UserWarning, match=r"skipped 1 bad item\(s\): chair_0009"):
        summary = prepare_modelnet(
            root, jobs=2, points=100, skip_bad=True, out=tmp_path / "cache", quiet=True
        )
    assert summary["counts"] == {"train": 6, "test": 3}
    assert [p for p, _ in summary["bad"]] == [str(broken)]
    assert json.loads((tmp_path / "cache" / "prepared.json").read_text())["bad"][0][0] == str(broken)
    assert len(ModelNet(tmp_path / "cache", "train")) == 6
    with pytest.raises(DataFormatError, match="modelnet40"):
        ModelNet(tmp_path / "cache", "train", variant="modelnet10")


def test_edited_source_is_refused_then_rebuilt(fixture_roots, tmp_path):
    from fastai_sparse.errors import StaleCacheError
    from fastai_sparse_classification.fixtures import primitive, write_off

    root = tmp_path / "mn"
    shutil.copytree(fixture_roots["modelnet-off"], root)
    first = prepare_modelnet(root, jobs=1, points=200, quiet=True)
    assert (first["prepared"], first["fresh"]) == (9, 0)
    ds = ModelNet(root, "train", points=100)
    i = next(k for k, it in enumerate(ds.items) if it.id == "chair_0002")
    before = ds[i].xyz
    m = primitive("box", np.random.default_rng(7))
    write_off(ds.items[i].source, m.vertices, m.faces)  # the shape replaced after prepare
    with pytest.raises(StaleCacheError) as e:
        ds[i]
    msg = str(e.value)
    assert "chair_0002.npz" in msg and "chair_0002.off changed" in msg
    assert f"fastai-sparse prepare modelnet40-cls --root {root}" in msg
    again = prepare_modelnet(root, jobs=1, points=200, quiet=True)
    assert (again["prepared"], again["stale"], again["fresh"]) == (1, 1, 8)
    assert not np.allclose(ModelNet(root, "train", points=100)[i].xyz, before)
    other = prepare_modelnet(root, jobs=1, points=300, quiet=True)  # another option: all rebuilt
    assert (other["prepared"], other["stale"]) == (9, 9)
    assert prepare_modelnet(root, jobs=1, points=300, quiet=True, force=True)["prepared"] == 9


def test_new_raw_file_after_prepare_is_read_raw(fixture_roots, tmp_path):
    from fastai_sparse_classification.fixtures import primitive, write_off

    root = tmp_path / "mn"
    shutil.copytree(fixture_roots["modelnet-off"], root)
    prepare_modelnet(root, jobs=1, points=200, quiet=True)
    m = primitive("cylinder", np.random.default_rng(3))
    write_off(root / "ModelNet40" / "chair" / "train" / "chair_0099.off", m.vertices, m.faces)
    ds = ModelNet(root, "train", points=100)
    assert len(ds) == 7  # the new file is not silently left out
    i = next(k for k, it in enumerate(ds.items) if it.id == "chair_0099")
    assert len(ds[i]) == 100 and not ds.items[i].path.exists()


def test_cli_prepare_modelnet_options_and_force(fixture_roots, tmp_path):
    from click.testing import CliRunner

    from fastai_sparse.cli import main

    root = tmp_path / "mn"
    shutil.copytree(fixture_roots["modelnet-off"], root)
    args = ["prepare", "modelnet40-cls", "--root", str(root), "-j", "1", "--quiet", "-O", "points=64"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["prepared"], s["points"]) == (9, 64)
    assert json.loads(CliRunner().invoke(main, args).stdout)["fresh"] == 9
    assert json.loads(CliRunner().invoke(main, [*args, "--force"]).stdout)["prepared"] == 9
