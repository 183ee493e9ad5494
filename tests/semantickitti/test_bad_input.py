"""Each kind of bad input: one line naming the file, what is wrong and what to do, from the
dataset and from prepare (which can also skip the scan and record it)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fastai_sparse import DataFormatError
from fastai_sparse_semantickitti.dataset import SemanticKittiScans
from fastai_sparse_semantickitti.prepare import prepare
from fastai_sparse_semantickitti.reader import read_label, write_label

SEQS = [0, 8, 11]


def _seq(root, s="00"):
    return root / "sequences" / s


def _truncated(root):
    p = _seq(root) / "velodyne" / "000001.bin"
    p.write_bytes(p.read_bytes()[:-6])
    return "velodyne/000001.bin", "not a multiple of 16"


def _empty(root):
    (_seq(root) / "velodyne" / "000001.bin").write_bytes(b"")
    return "velodyne/000001.bin", "the scan is empty"


def _nan(root):
    p = _seq(root) / "velodyne" / "000001.bin"
    a = np.fromfile(p, "<f4")
    a[4 * 7 + 2] = np.nan
    a.tofile(p)
    return "velodyne/000001.bin", "point 7 is"


def _count_mismatch(root):
    p = _seq(root) / "labels" / "000001.label"
    sem, inst = read_label(p)
    write_label(p, sem[:-3], inst[:-3])
    return "labels/000001.label", "but its scan 000001.bin has"


def _label_truncated(root):
    p = _seq(root) / "labels" / "000001.label"
    p.write_bytes(p.read_bytes()[:-2])
    return "labels/000001.label", "not a multiple of 4"


def _unknown_raw_id(root):
    p = _seq(root) / "labels" / "000001.label"
    sem, inst = read_label(p)
    sem[:5] = 12
    write_label(p, sem, inst)
    return "labels/000001.label", "raw semantic ids [12] that are not in the learning_map"


CASES = [_truncated, _empty, _nan, _count_mismatch, _label_truncated, _unknown_raw_id]


@pytest.mark.parametrize("damage", CASES, ids=lambda f: f.__name__.strip("_"))
def test_reading_the_scan_names_file_and_problem(small_root, damage):
    fname, what = damage(small_root)
    ds = SemanticKittiScans(small_root, "train", sequences=[0])
    ds[0]  # the undamaged scan reads
    with pytest.raises(DataFormatError) as e:
        ds[1]
    msg = str(e.value)
    assert fname in msg and what in msg and "\n" not in msg, msg


@pytest.mark.parametrize("damage", CASES, ids=lambda f: f.__name__.strip("_"))
def test_prepare_stops_or_skips_and_the_dataset_leaves_it_out(small_root, damage, tmp_path):
    fname, what = damage(small_root)
    with pytest.raises(DataFormatError) as e:
        prepare(small_root, out=tmp_path / "a", jobs=1, sequences=SEQS, quiet=True)
    assert fname in str(e.value) and what in str(e.value)
    with pytest.warns(UserWarning, match="skipping scan 00/000001"):
        summary = prepare(small_root, out=tmp_path / "b", jobs=1, skip_bad=True, sequences=SEQS, quiet=True)
    assert summary["bad"] == 1 and list(summary["bad_scans"]) == ["00/000001"]
    assert summary["scans"] == 4 and summary["validated"] == 3
    assert what in summary["bad_scans"]["00/000001"]
    with pytest.warns(UserWarning, match=r"1 of 2 scans are left out: prepare marked them bad \(00/000001\)"):
        ds = SemanticKittiScans(small_root, "train", sequences=[0], cache=tmp_path / "b")
    assert [s.id for s in ds.scans] == ["00/000000"]


def test_a_fixed_scan_is_used_again(small_root, tmp_path):
    p = _seq(small_root) / "labels" / "000001.label"
    good = p.read_bytes()
    _unknown_raw_id(small_root)
    with pytest.warns(UserWarning):
        prepare(small_root, out=tmp_path, jobs=1, skip_bad=True, sequences=SEQS, quiet=True)
    p.write_bytes(good)  # the user fixes the file: its size / mtime change
    summary = prepare(small_root, out=tmp_path, jobs=1, sequences=SEQS, quiet=True)
    assert summary["bad"] == 0 and summary["validated"] == 1 and summary["skipped_existing"] == 3
    assert len(SemanticKittiScans(small_root, "train", sequences=[0], cache=tmp_path)) == 2


def _missing_sequence(root):
    shutil.rmtree(_seq(root, "08"))
    return "sequences", "sequences ['08'] are missing", {"split": "valid"}


def _missing_velodyne(root):
    shutil.rmtree(_seq(root, "08") / "velodyne")
    return "08/velodyne", "sequence 08 has no velodyne/ folder", {"split": "valid"}


def _empty_velodyne(root):
    for p in (_seq(root, "08") / "velodyne").iterdir():
        p.unlink()
    return "08/velodyne", "velodyne/ holds no .bin scans", {"split": "valid"}


def _missing_labels(root):
    shutil.rmtree(_seq(root, "08") / "labels")
    return "08/labels", "sequence 08 has no labels/ folder", {"split": "valid"}


def _missing_label_file(root):
    (_seq(root) / "labels" / "000001.label").unlink()
    return "labels/000001.label", "1 scans have no label file, first 000001.bin", {"sequences": [0]}


def _config_without_keys(root):
    (root / "semantic-kitti.yaml").write_text("labels: {0: unlabeled}\ncolor_map: {0: [0, 0, 0]}\n")
    return "semantic-kitti.yaml", "missing key(s) ['learning_map', 'learning_map_inv']", {"split": "valid"}


def _not_a_root(root):
    shutil.rmtree(root / "sequences")
    return str(root), "no sequences/ folder", {"split": "valid"}


LAYOUT = [
    _missing_sequence,
    _missing_velodyne,
    _empty_velodyne,
    _missing_labels,
    _missing_label_file,
    _config_without_keys,
    _not_a_root,
]


@pytest.mark.parametrize("damage", LAYOUT, ids=lambda f: f.__name__.strip("_"))
def test_layout_problems_are_found_when_the_dataset_is_built(small_root, damage):
    where, what, kwargs = damage(small_root)
    split = kwargs.pop("split", "train")
    with pytest.raises(DataFormatError) as e:
        SemanticKittiScans(small_root, split, **kwargs)
    msg = str(e.value)
    assert where in msg and what in msg and "\n" not in msg, msg


def test_the_train_split_needs_every_train_sequence(small_root):
    with pytest.raises(
        DataFormatError, match=r"sequences \['01', '02', .*'10'\] are missing.*pass sequences="
    ):
        SemanticKittiScans(small_root, "train")
