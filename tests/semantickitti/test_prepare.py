"""prepare: a validation pass over every scan, an index with class counts, resumable runs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from fastai_sparse_semantickitti.config import default_config
from fastai_sparse_semantickitti.prepare import INDEX_NAME, prepare, read_index
from fastai_sparse_semantickitti.reader import read_label


def _label_files(root):
    return sorted((root / "sequences").glob("*/labels/*.label"))


def test_prepare_checks_every_scan_and_counts_classes(kitti_root, tmp_path):
    summary = prepare(kitti_root, out=tmp_path, jobs=1, quiet=True)
    scans = sorted((kitti_root / "sequences").glob("*/velodyne/*.bin"))
    assert summary["scans"] == len(scans) == 25 and summary["validated"] == 25 and summary["bad"] == 0
    assert summary["sequences"] == [f"{i:02d}" for i in range(22)]  # test sequences are there: checked too
    assert summary["points"] == sum(p.stat().st_size for p in scans) // 16
    # class counts against an independent count of the label files
    cfg = default_config()
    counts = np.zeros(19, np.int64)
    ignored = 0
    for f in _label_files(kitti_root):
        c = cfg.to_classes(read_label(f)[0])
        counts += np.bincount(c[c >= 0], minlength=19)
        ignored += int((c < 0).sum())
    assert summary["class_points"] == dict(zip(cfg.class_names, counts.tolist()))
    assert summary["ignored_points"] == ignored > 0
    index = read_index(tmp_path / INDEX_NAME, cfg)
    assert index is not None and len(index["scans"]) == 25
    e = index["scans"]["08/000001"]
    assert e["ok"] and e["points"] == (kitti_root / "sequences/08/velodyne/000001.bin").stat().st_size // 16
    assert index["scans"]["11/000000"]["label"] is None  # test scans: no labels
    # a second run finds nothing to do
    again = prepare(kitti_root, out=tmp_path, jobs=1, quiet=True)
    assert again["validated"] == 0 and again["skipped_existing"] == 25
    assert again["class_points"] == summary["class_points"]


def test_changed_files_and_another_mapping_are_revalidated(small_root, tmp_path):
    seqs = [0, 8, 11]
    prepare(small_root, out=tmp_path, jobs=1, sequences=seqs, quiet=True)
    p = small_root / "sequences" / "00" / "labels" / "000000.label"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    s = prepare(small_root, out=tmp_path, jobs=1, sequences=seqs, quiet=True)
    assert s["validated"] == 1 and s["skipped_existing"] == 3
    data = yaml.safe_load(default_config().path.read_text())
    data["learning_map"][52] = 13
    (small_root / "semantic-kitti.yaml").write_text(yaml.safe_dump(data))
    s = prepare(small_root, out=tmp_path, jobs=1, sequences=seqs, quiet=True)
    assert s["validated"] == 4  # the index was made with another mapping


def test_worker_processes_give_the_same_index(kitti_root, tmp_path):
    a = prepare(kitti_root, out=tmp_path / "a", jobs=1, splits=["train", "valid"], quiet=True)
    b = prepare(kitti_root, out=tmp_path / "b", jobs=2, splits=["train", "valid"], quiet=True)
    assert a["scans"] == b["scans"] == 13 and a["class_points"] == b["class_points"]
    ia = json.loads((tmp_path / "a" / INDEX_NAME).read_text())
    ib = json.loads((tmp_path / "b" / INDEX_NAME).read_text())
    assert ia == ib
    assert not list((tmp_path / "b").glob(".*.tmp"))  # no temporary file left behind


def test_cli_prepare(kitti_root, tmp_path):
    from click.testing import CliRunner

    from fastai_sparse.cli import main

    r = CliRunner().invoke(
        main, ["prepare", "semantickitti-seg", "--root", str(kitti_root), "--out", str(tmp_path), "-j", "1"]
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert summary["scans"] == 25 and summary["bad"] == 0
    assert (tmp_path / INDEX_NAME).is_file()


def test_an_unreadable_index_is_rebuilt(small_root, tmp_path):
    (tmp_path / INDEX_NAME).write_text("{ not json")
    s = prepare(small_root, out=tmp_path, jobs=1, sequences=[0, 8, 11], quiet=True)
    assert s["validated"] == 4
    assert read_index(tmp_path / INDEX_NAME) is not None


@pytest.mark.parametrize("split", ["train", "valid"])
def test_prepared_root_trains_from_the_same_files(kitti_root, tmp_path, split):
    from fastai_sparse_semantickitti.dataset import SemanticKittiScans

    prepare(kitti_root, out=tmp_path, jobs=1, splits=[split], quiet=True)
    with_index = SemanticKittiScans(kitti_root, split, cache=tmp_path)
    without = SemanticKittiScans(kitti_root, split, cache=tmp_path / "none")
    assert [s.id for s in with_index.scans] == [s.id for s in without.scans]


def test_cli_prepare_options(kitti_root, tmp_path):
    from click.testing import CliRunner

    from fastai_sparse.cli import main

    base = ["prepare", "semantickitti-seg", "--root", str(kitti_root), "-j", "1", "--quiet"]
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a"), "-O", "splits=valid"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{") :])["scans"] == 2
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "b"), "-O", "sequences=08,11-12", "--force"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert summary["scans"] == 5 and summary["sequences"] == ["08", "11", "12"]
    r = CliRunner().invoke(main, [*base, "-O", "limit=2"])  # limit is a training option
    assert r.exit_code == 2 and "unknown option 'limit'" in r.output and "splits=str" in r.output
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("labels: {0: x}\n")
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "c"), "-O", f"config={cfg}"])
    assert (
        r.exit_code == 1
        and "Error:" in r.output
        and "missing key(s) ['learning_map', 'learning_map_inv']" in r.output
    )


def test_train_options_reach_the_dataset(kitti_root):
    from fastai_sparse import get_task

    task = get_task("semantickitti-seg")
    opts = task.parse_options(["limit=1", f"config={default_config().path}"], "train")
    assert opts["limit"] == 1
    ds = task.datasets(kitti_root, **opts)
    assert len(ds["train"]) == len(ds["valid"]) == 1
