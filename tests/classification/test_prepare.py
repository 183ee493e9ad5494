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
    with pytest.raises(DataFormatError, match=r"(?s)1 file\(s\) could not be read.*chair_0009\.off"):
        prepare_modelnet(root, jobs=1, points=100)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        summary = prepare_modelnet(root, jobs=2, points=100, skip_bad=True, out=tmp_path / "cache")
    assert summary["counts"] == {"train": 6, "test": 3}
    assert [p for p, _ in summary["bad"]] == [str(broken)]
    assert len(ModelNet(tmp_path / "cache", "train")) == 6
    with pytest.raises(DataFormatError, match="modelnet40"):
        ModelNet(tmp_path / "cache", "train", variant="modelnet10")
