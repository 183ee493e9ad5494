"""Each kind of bad input: a clear error naming scene and file, or a skip with a warning and a count."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse_scannet.fixtures import write_ply_mesh
from fastai_sparse_scannet.prepare import prepare
from fastai_sparse_scannet.reader import read_label_table, read_mesh_ply, read_scene, scene_files

SCENE = "scene0001_00"


def _files(root):
    return scene_files(root / "scans" / SCENE)


def _missing_labels(root):
    _files(root)["labels"].unlink()
    return "labels.ply", "missing labels PLY"


def _count_mismatch(root):
    f = _files(root)
    m = read_mesh_ply(f["labels"], labels=True)
    write_ply_mesh(f["labels"], m["xyz"][:-5], m["rgb"][:-5], m["faces"][m["faces"].max(1) < len(m["xyz"]) - 5],
                   label=m["label"][:-5])  # fmt: skip
    return "labels.ply", "vertices"


def _unknown_nyu40(root):
    f = _files(root)
    m = read_mesh_ply(f["labels"], labels=True)
    lab = m["label"].copy()
    lab[:3] = 57
    write_ply_mesh(f["labels"], m["xyz"], m["rgb"], m["faces"], label=lab)
    return "labels.ply", "above 40"


def _truncated(root):
    p = _files(root)["mesh"]
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return "_vh_clean_2.ply", "truncated"


def _empty_aggregation(root):
    p = _files(root)["aggregation"]
    obj = json.loads(p.read_text())
    obj["segGroups"] = []
    p.write_text(json.dumps(obj))
    return "aggregation.json", "segGroups is empty"


def _no_folder(root):
    with open(root / "scannetv2_train.txt", "a") as f:
        f.write("scene0999_00\n")
    return "scene0999_00", "no folder"


CASES = [_missing_labels, _count_mismatch, _unknown_nyu40, _truncated, _empty_aggregation]


@pytest.mark.parametrize("damage", CASES, ids=lambda f: f.__name__.strip("_"))
def test_read_scene_error_names_scene_and_file(fresh_root, damage):
    fname, what = damage(fresh_root)
    table = read_label_table(fresh_root / "scannetv2-labels.combined.tsv")
    with pytest.raises(DataFormatError) as e:
        read_scene(fresh_root / "scans" / SCENE, labels=True, table=table)
    msg = str(e.value)
    assert SCENE in msg and fname in msg and what in msg, msg


@pytest.mark.parametrize("damage", [*CASES, _no_folder], ids=lambda f: f.__name__.strip("_"))
def test_prepare_stops_or_skips(fresh_root, damage, tmp_path):
    _, what = damage(fresh_root)
    bad_scene = "scene0999_00" if damage is _no_folder else SCENE
    with pytest.raises(DataFormatError) as e:
        prepare(fresh_root, out=tmp_path / "a", jobs=1, quiet=True)
    assert bad_scene in str(e.value) and what in str(e.value)
    with pytest.warns(UserWarning, match=bad_scene):
        summary = prepare(fresh_root, out=tmp_path / "b", jobs=1, skip_bad=True, quiet=True)
    assert summary["bad"] == 1 and list(summary["bad_scenes"]) == [bad_scene]
    assert summary["prepared"] == (4 if damage is _no_folder else 3)  # every other scene
    assert summary["scenes"] == (5 if damage is _no_folder else 4)
    assert not (tmp_path / "b" / f"{bad_scene}.npz").exists()


def test_prepare_skip_bad_in_worker_processes(fresh_root, tmp_path):
    _truncated(fresh_root)
    with pytest.warns(UserWarning, match=SCENE):
        summary = prepare(fresh_root, out=tmp_path / "c", jobs=2, skip_bad=True, quiet=True)
    assert summary["bad"] == 1 and summary["prepared"] == 3
    assert "truncated" in summary["bad_scenes"][SCENE]


def test_negative_face_index_and_wrong_dtype(tmp_path):
    p = tmp_path / "s_vh_clean_2.ply"
    xyz = np.zeros((4, 3), np.float32)
    write_ply_mesh(p, xyz, np.zeros((4, 3), np.uint8), np.array([[0, 1, 9]]))
    with pytest.raises(DataFormatError, match="face vertex indices"):
        read_mesh_ply(p)
