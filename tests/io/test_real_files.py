"""The readers on real files from the public datasets (skipped when the samples are absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastai_sparse import io
from fastai_sparse.geometry import Mesh, PointCloud

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def _need(rel: str) -> Path:
    p = REAL / rel
    if not p.exists():
        pytest.skip(f"real sample {p} is absent")
    return p


SCENE = "scannet/scans/scene0000_00/scene0000_00_vh_clean_2"


def test_scannet_mesh():
    m = io.load(_need(SCENE + ".ply"))
    assert isinstance(m, Mesh)
    assert m.vertices.shape == (81369, 3) and m.faces.shape == (153587, 3)
    assert m.vertex_attrs["rgb"].dtype == np.uint8 and m.vertex_attrs["rgb"].shape == (81369, 3)
    assert "alpha" in m.vertex_attrs and "labels" not in m.vertex_attrs
    assert m.faces.min() == 0 and m.faces.max() == 81368
    extent = m.vertices.max(0) - m.vertices.min(0)
    np.testing.assert_allclose(extent, [8.4, 8.7, 3.0], atol=0.1)


def test_scannet_labels_and_roundtrip(tmp_path):
    p = _need(SCENE + ".labels.ply")
    m = io.read_ply(p)
    lab = m.vertex_attrs["labels"]
    assert lab.dtype == np.int64 and lab.shape == (81369,)
    assert lab.max() == 230 and len(np.unique(lab)) == 32  # raw ScanNet ids (README of the samples)
    # write back (binary) and read: identical arrays; the file is a standard ScanNet-like PLY
    io.write_ply(tmp_path / "s.ply", m)
    r = io.read_ply(tmp_path / "s.ply")
    np.testing.assert_array_equal(r.vertices, m.vertices)
    np.testing.assert_array_equal(r.faces, m.faces)
    for k in m.vertex_attrs:
        np.testing.assert_array_equal(r.vertex_attrs[k], m.vertex_attrs[k])
    # same property layout as the original, so the binary payload is byte-identical
    body = p.read_bytes().split(b"end_header\n", 1)[1]
    assert (tmp_path / "s.ply").read_bytes().split(b"end_header\n", 1)[1] == body


def test_modelnet_off():
    files = sorted((REAL / "modelnet" / "off").glob("*.off")) if (REAL / "modelnet" / "off").exists() else []
    if not files:
        pytest.skip(f"{REAL / 'modelnet' / 'off'} is absent")
    expected = {"bed_0001.off": (2095, 1807), "chair_0890.off": (1658, 2996), "stool_0002.off": (547, 344)}
    for f in files:
        m = io.load(f)
        if f.name in expected:
            assert (len(m.vertices), len(m.faces)) == expected[f.name], f.name


def test_modelnet_glued_header_variant(tmp_path):
    """None of the three real samples has the glued header; glue one and read it again."""
    src = _need("modelnet/off/chair_0890.off")
    text = src.read_text()
    assert text.startswith("OFF\n")
    glued = tmp_path / "chair_glued.off"
    glued.write_text("OFF" + text[4:])  # "OFF1658 2996 0\n..."
    a, b = io.read_off(src), io.read_off(glued)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)


def test_modelnet_normal_resampled():
    c = io.load(_need("modelnet/normal_resampled/chair/chair_0391.txt"))
    assert isinstance(c, PointCloud) and c.xyz.shape == (10000, 3) and c.attrs["normals"].shape == (10000, 3)
    np.testing.assert_allclose(c.xyz[0], [-0.0842, -0.5803, -0.07181], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(c.attrs["normals"], axis=1), 1, atol=2e-3)


def test_kitti_bin():
    c = io.load(_need("kitti/000000.bin"))
    assert c.xyz.shape == (123389, 3) and c.attrs["intensity"].shape == (123389,)


def test_3dmatch_fragment():
    c = io.load(_need("3dmatch/redkitchen_000.ply"))
    assert isinstance(c, PointCloud) and c.xyz.shape == (258342, 3) and c.attrs == {}
