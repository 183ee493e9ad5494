"""Readers on format-exact fixtures and on the real ScanNet sample."""

from __future__ import annotations

import json

import numpy as np
import plyfile
import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse_scannet.constants import BENCHMARK_IDS, TSV_COLUMNS
from fastai_sparse_scannet.reader import (
    read_aggregation,
    read_axis_alignment,
    read_label_table,
    read_mesh_ply,
    read_scene,
    read_segs,
    read_split,
    scene_files,
)


def _bench_ref(nyu40):
    """Independent reference: benchmark index by dict lookup."""
    lut = {v: i for i, v in enumerate(BENCHMARK_IDS)}
    return np.array([lut.get(int(v), -100) for v in nyu40])


def test_fixture_files_have_exact_scannet_formats(scannet_root):
    f = scene_files(scannet_root / "scans" / "scene0000_00")
    ply = plyfile.PlyData.read(str(f["mesh"]))
    assert not ply.text and ply.byte_order == "<"
    v = ply["vertex"]
    assert [(p.name, p.val_dtype) for p in v.properties] == [
        ("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1"),
    ]  # fmt: skip
    face = ply["face"].properties[0]
    assert (face.name, face.len_dtype, face.val_dtype) == ("vertex_indices", "u1", "i4")
    lab = plyfile.PlyData.read(str(f["labels"]))
    assert [p.name for p in lab["vertex"].properties][-1] == "label"
    assert lab["vertex"].properties[-1].val_dtype == "u2"
    segs = json.loads(f["segs"].read_text())
    assert set(segs) == {"params", "sceneId", "segIndices"} and len(segs["segIndices"]) == v.count
    agg = json.loads(f["aggregation"].read_text())
    assert set(agg) == {"sceneId", "appId", "segGroups", "segmentsFile"}
    assert set(agg["segGroups"][0]) == {"id", "objectId", "segments", "label"}
    header = (scannet_root / "scannetv2-labels.combined.tsv").read_bytes().split(b"\r\n")[0]
    assert tuple(header.decode().split("\t")) == TSV_COLUMNS


def test_read_scene_fixture(scannet_root):
    d = scannet_root / "scans" / "scene0000_00"
    table = read_label_table(scannet_root / "scannetv2-labels.combined.tsv")
    s = read_scene(d, table=table)
    raw = plyfile.PlyData.read(str(scene_files(d)["labels"]))["vertex"]
    assert len(s) == raw.count and s.xyz.dtype == np.float32 and s.rgb.dtype == np.uint8
    np.testing.assert_array_equal(s.nyu40, raw["label"])
    np.testing.assert_array_equal(s.labels, _bench_ref(raw["label"]))
    # instances: vertex -> segment -> object, checked against the JSON directly
    seg = json.loads(scene_files(d)["segs"].read_text())["segIndices"]
    groups = json.loads(scene_files(d)["aggregation"].read_text())["segGroups"]
    seg_to_obj = {s_: g["objectId"] for g in groups for s_ in g["segments"]}
    assert s.instance.tolist() == [seg_to_obj.get(x, -1) for x in seg]
    # aggregation-derived labels agree with the labels PLY on this fixture
    s2 = read_scene(d, table=table, label_source="aggregation")
    np.testing.assert_array_equal(s2.nyu40, s.nyu40)
    assert s.axis_align.shape == (4, 4)


def test_test_scene_has_no_labels(scannet_root):
    s = read_scene(scannet_root / "scans_test" / "scene0707_00")
    assert s.labels is None and s.instance is None and len(s) > 0


def test_axis_alignment_parse(tmp_path):
    p = tmp_path / "scene0000_00.txt"
    vals = np.arange(16, dtype=float) / 7
    p.write_text(
        "colorHeight = 968\naxisAlignment = "
        + " ".join(str(float(v)) for v in vals)
        + "\nsceneType = Bedroom\n"
    )
    np.testing.assert_allclose(read_axis_alignment(p), vals.reshape(4, 4))
    p.write_text("axisAlignment = 1 0 0\n")
    with pytest.raises(DataFormatError, match="16"):
        read_axis_alignment(p)
    p.write_text("sceneType = Bedroom\n")
    assert read_axis_alignment(p) is None


def test_real_sample_counts(real_scannet):
    m = read_mesh_ply(real_scannet / "scans/scene0000_00/scene0000_00_vh_clean_2.ply")
    assert m["xyz"].shape == (81369, 3) and m["faces"].shape == (153587, 3)
    assert m["rgb"].dtype == np.uint8
    ext = m["xyz"].max(0) - m["xyz"].min(0)
    np.testing.assert_allclose(ext, [8.4, 8.7, 3.0], atol=0.1)


def test_real_sample_raw_label_variant_is_reported(real_scannet):
    d = real_scannet / "scans/scene0000_00"
    with pytest.raises(DataFormatError) as e:
        read_scene(d)
    msg = str(e.value)
    assert "scene0000_00" in msg and "labels.ply" in msg and "230" in msg and "raw-id" in msg


def test_real_sample_raw_id_mapping(real_scannet):
    d = real_scannet / "scans/scene0000_00"
    table = read_label_table(real_scannet / "scannetv2-labels.combined.tsv")
    with pytest.warns(UserWarning, match=r"raw category ids \[12\]"):
        s = read_scene(d, label_source="raw-id", table=table)
    raw = plyfile.PlyData.read(str(d / "scene0000_00_vh_clean_2.labels.ply"))["vertex"]["label"]
    assert len(np.unique(raw)) == 32 and raw.max() == 230
    # floor is raw id 3 -> NYU40 2 -> benchmark class 1; wall is raw 1 -> class 0
    assert (s.labels == 1).sum() == (raw == 3).sum() > 0
    assert (s.labels == 0).sum() == (raw == 1).sum() > 0
    assert s.unmapped == (raw == 12).sum()
    with pytest.raises(DataFormatError, match="not in the id column"):
        read_scene(d, label_source="raw-id", table=table, on_unknown="error")


def test_real_label_table_and_splits(real_scannet):
    t = read_label_table(real_scannet / "scannetv2-labels.combined.tsv")
    assert len(t) == 607 and all(len(r) == 17 for r in t.rows)
    assert t.raw_to_nyu40["floor"] == 2 and t.raw_to_nyu40["trash can"] == 39 and t.id_to_nyu40[3] == 2
    sizes = {s: len(read_split(real_scannet, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 1201, "val": 312, "test": 100}
    assert not set(read_split(real_scannet, "train")) & set(read_split(real_scannet, "val"))


def test_missing_split_file_names_it(tmp_path):
    with pytest.raises(DataFormatError) as e:
        read_split(tmp_path, "valid")
    assert "scannetv2_val.txt" in str(e.value) and "validation scenes" in str(e.value)


def test_label_table_bad_header(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("id\traw_category\n1\twall\n")
    with pytest.raises(DataFormatError, match="17 columns"):
        read_label_table(p)


def test_segs_and_aggregation_readers(scannet_root):
    f = scene_files(scannet_root / "scans" / "scene0001_00")
    assert read_segs(f["segs"]).dtype == np.int64
    groups = read_aggregation(f["aggregation"])
    assert {g["label"] for g in groups} >= {"wall", "floor", "bed"}
