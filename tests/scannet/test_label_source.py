"""A labels PLY whose ids contradict the declared label source is reported with the fix, both ways
(NYU40 ids read as raw ids, raw ids read as NYU40), with and without the aggregation; the real
sample (raw ids) is read both ways."""

from __future__ import annotations

import numpy as np
import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse_scannet.fixtures import write_ply_mesh
from fastai_sparse_scannet.prepare import prepare
from fastai_sparse_scannet.reader import (
    check_label_source,
    read_label_table,
    read_mesh_ply,
    read_scene,
    scene_files,
)

SCENE = "scene0001_00"
#: NYU40 id -> raw category id of the fixture's categories (the fixture's label table rows)
NYU40_TO_RAW = {1: 1, 5: 2, 2: 3, 7: 4, 39: 56, 18: 13, 3: 7, 4: 11}


def _files(root):
    return scene_files(root / "scans" / SCENE)


def _rewrite_labels(root, convert):
    f = _files(root)["labels"]
    m = read_mesh_ply(f, labels=True)
    write_ply_mesh(f, m["xyz"], m["rgb"], m["faces"], label=convert(m["label"]))
    return m["label"]


def _to_raw(nyu40, keep_above_40=True):
    raw = np.array([NYU40_TO_RAW.get(int(v), 0) for v in nyu40])
    return raw if keep_above_40 else np.where(raw > 40, 0, raw)


def _no_aggregation(root):
    for k in ("aggregation", "segs"):
        _files(root)[k].unlink()


def _table(root):
    return read_label_table(root / "scannetv2-labels.combined.tsv")


@pytest.mark.parametrize("aggregation", [True, False], ids=["with-aggregation", "labels-only"])
def test_nyu40_file_read_as_raw_id_is_reported(fresh_root, aggregation):
    if not aggregation:
        _no_aggregation(fresh_root)
    with pytest.raises(DataFormatError) as e:
        read_scene(fresh_root / "scans" / SCENE, label_source="raw-id", table=_table(fresh_root))
    msg = str(e.value)
    assert (
        SCENE in msg
        and "labels.ply" in msg
        and "label_source='nyu40'" in msg
        and "-O label_source=nyu40" in msg
    )
    assert ("agree with the aggregation" if aggregation else "floor") in msg


@pytest.mark.parametrize("aggregation", [True, False], ids=["with-aggregation", "labels-only"])
def test_raw_ids_up_to_40_read_as_nyu40_are_reported(fresh_root, aggregation):
    """Raw ids that all happen to be <= 40 pass the range check; the aggregation or the floor
    still tell them apart."""
    _rewrite_labels(fresh_root, lambda nyu: _to_raw(nyu, keep_above_40=False))
    if not aggregation:
        _no_aggregation(fresh_root)
    with pytest.raises(
        DataFormatError, match=r"label_source='raw-id' \(on the command line: -O label_source=raw-id\)"
    ):
        read_scene(fresh_root / "scans" / SCENE, table=_table(fresh_root))


def test_raw_ids_above_40_read_as_nyu40_are_reported(fresh_root):
    _rewrite_labels(fresh_root, _to_raw)
    with pytest.raises(DataFormatError, match=r"above 40 .* max 56.*label_source='raw-id'"):
        read_scene(fresh_root / "scans" / SCENE, table=_table(fresh_root))


@pytest.mark.parametrize("aggregation", [True, False], ids=["with-aggregation", "labels-only"])
def test_correct_sources_read_the_same_labels(fresh_root, aggregation):
    d = fresh_root / "scans" / SCENE
    table = _table(fresh_root)
    if not aggregation:
        _no_aggregation(fresh_root)
    as_nyu40 = read_scene(d, table=table)
    _rewrite_labels(fresh_root, _to_raw)
    as_raw = read_scene(d, table=table, label_source="raw-id")
    np.testing.assert_array_equal(as_raw.nyu40, as_nyu40.nyu40)
    assert as_raw.unmapped == 0 and len(np.unique(as_nyu40.nyu40)) >= 6


def test_check_labels_false_reads_as_declared(fresh_root):
    d = fresh_root / "scans" / SCENE
    table = _table(fresh_root)
    nyu40 = read_mesh_ply(_files(fresh_root)["labels"], labels=True)["label"]
    with pytest.warns(UserWarning, match="not in the id column"):
        s = read_scene(d, table=table, label_source="raw-id", check_labels=False)
    assert (s.nyu40 != nyu40).mean() > 0.3  # what the check protects from


def test_prepare_reports_it_and_the_option_fixes_it(fresh_root, tmp_path):
    for s in ("scene0000_00", "scene0001_00", "scene0002_00"):
        f = scene_files(fresh_root / "scans" / s)["labels"]
        m = read_mesh_ply(f, labels=True)
        write_ply_mesh(f, m["xyz"], m["rgb"], m["faces"], label=_to_raw(m["label"]))
    with pytest.raises(DataFormatError, match="-O label_source=raw-id"):
        prepare(fresh_root, out=tmp_path / "c", jobs=1, quiet=True)
    s = prepare(fresh_root, out=tmp_path / "c", jobs=1, quiet=True, label_source="raw-id")
    assert (s["prepared"], s["bad"], s["options"]["label_source"]) == (4, 0, "raw-id")


def test_floor_check_needs_enough_floor(fresh_root):
    """No floor in either reading: nothing to judge, no error."""
    m = read_mesh_ply(_files(fresh_root)["labels"], labels=True)
    table = _table(fresh_root)
    no_floor = np.where(m["label"] == 2, 0, m["label"])
    check_label_source(no_floor, "nyu40", table, m["xyz"])
    check_label_source(_to_raw(no_floor), "raw-id", table, m["xyz"])


# -- the real sample: a labels PLY holding RAW category ids ----------------------------------
def test_real_raw_file_read_both_ways(real_scannet):
    d = real_scannet / "scans" / "scene0000_00"
    table = read_label_table(real_scannet / "scannetv2-labels.combined.tsv")
    with pytest.raises(DataFormatError, match=r"above 40 .*max 230.*-O label_source=raw-id"):
        read_scene(d, table=table)
    with pytest.warns(UserWarning, match=r"raw category ids \[12\]"):
        s = read_scene(d, table=table, label_source="raw-id")
    raw = read_mesh_ply(d / "scene0000_00_vh_clean_2.labels.ply", labels=True)["label"]
    assert (s.nyu40 == 2).sum() == (raw == 3).sum() > 0  # raw 3 = floor = NYU40 2
    # the same labels converted to NYU40 (as a v2 download holds them) and read with each source
    nyu40 = s.nyu40
    check_label_source(nyu40, "nyu40", table, s.xyz)
    with pytest.raises(DataFormatError, match=r"floor vertices are not at the bottom.*label_source='nyu40'"):
        check_label_source(nyu40, "raw-id", table, s.xyz, path=d, scene="scene0000_00")
    # and the raw ids that are <= 40 only (the range check cannot see those): still told apart
    with pytest.raises(DataFormatError, match=r"no vertex is floor.*label_source='raw-id'"):
        check_label_source(np.where(raw > 40, 0, raw), "nyu40", table, s.xyz)
