"""PLY element counts that disagree with the body, either way, in ASCII and binary files, are an
error naming the file, the element, the declared and the found counts; only whitespace may
follow the last element."""

from __future__ import annotations

import numpy as np
import plyfile
import pytest

from fastai_sparse import io
from fastai_sparse.errors import DataFormatError

HEADER = "ply\nformat ascii 1.0\nelement vertex {v}\nproperty float x\nproperty float y\nproperty float z\n"
FACES = "element face {f}\nproperty list uchar int vertex_indices\n"
VERTS = ["0 0 0", "1 0 0", "0 1 0", "0 0 1", "1 1 1"]


def _ascii(path, v, f, vert_lines, face_lines=(), tail=""):
    head = HEADER.format(v=v) + (FACES.format(f=f) if f is not None else "") + "end_header\n"
    path.write_text(head + "".join(ln + "\n" for ln in [*vert_lines, *face_lines]) + tail)
    return path


@pytest.mark.parametrize(
    "v, f, verts, faces, tail, message",
    [
        (3, None, VERTS, (), "", r"declares 3 vertex rows, the body holds 5"),  # silently cut before
        (5, None, VERTS[:3], (), "", r"declares 5 vertex rows, the body holds 3 \(the file ends there\)"),
        (3, 1, VERTS[:4], ["3 0 1 2"], "", r"declares 3 vertex rows, the body holds 4"),
        (
            4,
            1,
            VERTS[:3],
            ["3 0 1 2"],
            "",
            r"declares 4 vertex rows, the body holds 3 \(then a line that is no row",
        ),
        (4, 2, VERTS[:4], ["3 0 1 2"], "", r"declares 2 face rows, the body holds 1 \(the file ends there\)"),
        (4, 1, VERTS[:4], ["3 0 1 2", "3 0 2 3"], "", r"declares 1 face rows, the body holds 2"),
        (3, None, VERTS[:3], (), "garbage here\n", r"1 line\(s\) follow the last element 'vertex'"),
    ],
    ids=[
        "vertex-more",
        "vertex-fewer",
        "mesh-vertex-more",
        "mesh-vertex-fewer",
        "face-fewer",
        "face-more",
        "garbage",
    ],
)
def test_ascii_counts(tmp_path, v, f, verts, faces, tail, message):
    p = _ascii(tmp_path / "c.ply", v, f, verts, faces, tail)
    with pytest.raises(
        DataFormatError, match=r"c\.ply: field '(vertex|face)': (the header )?" + message
    ) as e:
        io.read_ply(p)
    assert "must match the body" in str(e.value)


def test_ascii_trailing_whitespace_is_fine(tmp_path):
    p = _ascii(tmp_path / "ok.ply", 3, 1, VERTS[:3], ["3 0 1 2"], tail="\n\n  \n")
    m = io.read_ply(p)
    assert m.faces.tolist() == [[0, 1, 2]] and len(m.vertices) == 3


def _binary(path, n, faces=None, byte_order="<"):
    v = np.zeros(n, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    v["x"] = np.arange(n)
    els = [plyfile.PlyElement.describe(v, "vertex")]
    if faces is not None:
        f = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
        f["vertex_indices"] = faces
        els.append(plyfile.PlyElement.describe(f, "face"))
    plyfile.PlyData(els, text=False, byte_order=byte_order).write(str(path))
    return path


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_binary_extra_rows_and_bytes(tmp_path, byte_order):
    p = _binary(tmp_path / "b.ply", 3, byte_order=byte_order)
    good = p.read_bytes()
    p.write_bytes(good + np.zeros(6, ">f4" if byte_order == ">" else "<f4").tobytes())  # two more rows
    with pytest.raises(
        DataFormatError, match=r"b\.ply: field 'vertex': the header declares 3 vertex rows, the body holds 5"
    ):
        io.read_ply(p)
    p.write_bytes(good + b"xyz")
    with pytest.raises(
        DataFormatError, match=r"3 bytes follow the last element 'vertex' \(the header declares 3 vertex"
    ):
        io.read_ply(p)
    p.write_bytes(good)
    assert io.read_ply(p).xyz[:, 0].tolist() == [0, 1, 2]


def test_binary_truncated_names_element_and_rows(tmp_path):
    p = _binary(tmp_path / "t.ply", 5)
    p.write_bytes(p.read_bytes()[:-20])  # 1 row and 8 bytes short
    with pytest.raises(
        DataFormatError,
        match=r"t\.ply: field 'vertex': the header declares 5 vertex rows, the body holds 3 \(the file ends in row 3",
    ):
        io.read_ply(p)


def test_binary_mesh_trailing_bytes(tmp_path):
    p = _binary(tmp_path / "m.ply", 4, faces=[[0, 1, 2], [0, 2, 3]])
    assert io.read_ply(p).faces.shape == (2, 3)
    p.write_bytes(p.read_bytes() + b"\x00" * 13)
    with pytest.raises(
        DataFormatError,
        match=r"13 bytes follow the last element 'face' \(the header declares 4 vertex, 2 face",
    ):
        io.read_ply(p)


def test_read_plydata_for_plugin_readers(tmp_path):
    p = _ascii(tmp_path / "c.ply", 3, None, VERTS)
    with pytest.raises(DataFormatError, match="declares 3 vertex rows, the body holds 5"):
        io.read_plydata(p)
    ply = io.read_plydata(_ascii(tmp_path / "ok.ply", 5, None, VERTS))
    assert ply["vertex"].count == 5


def test_scannet_labels_ply_with_more_rows(tmp_path):
    """The ScanNet reader uses the same check and names the scene."""
    pytest.importorskip("fastai_sparse_scannet")
    from fastai_sparse_scannet.fixtures import make_fixture
    from fastai_sparse_scannet.reader import read_scene, scene_files

    root = make_fixture(tmp_path / "root", scenes={"train": ["scene0000_00"]}, vertices=300)
    f = scene_files(root / "scans" / "scene0000_00")
    f["labels"].write_bytes(f["labels"].read_bytes() + b"\x01\x02\x03")
    with pytest.raises(
        DataFormatError,
        match=r"labels\.ply: field 'face': scene scene0000_00: 3 bytes follow the last element 'face'",
    ):
        read_scene(root / "scans" / "scene0000_00")
