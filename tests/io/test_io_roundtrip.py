"""Round trips and format details of fastai_sparse.io, on fixtures written by the tests."""

from __future__ import annotations

import struct

import numpy as np
import plyfile
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastai_sparse import io
from fastai_sparse.geometry import Boxes, Keypoints, Mesh, PointCloud


def _cloud(n=50, seed=0) -> PointCloud:
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return PointCloud(
        rng.normal(size=(n, 3)).astype(np.float32),
        {
            "rgb": rng.integers(0, 256, (n, 3)).astype(np.uint8),
            "normals": normals.astype(np.float32),
            "labels": rng.integers(0, 40, n),
            "intensity": rng.random(n).astype(np.float32),
            "instance": rng.integers(-1, 100000, n),
            "feat": rng.random((n, 4)).astype(np.float64),
        },
        meta={"id": "c0"},
    )


def _mesh(seed=0) -> Mesh:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(30, 3)).astype(np.float32)
    f = rng.integers(0, 30, (40, 3))
    return Mesh(
        v,
        f,
        {"rgb": rng.integers(0, 256, (30, 3)).astype(np.uint8), "labels": rng.integers(0, 300, 30)},
        {"labels": rng.integers(0, 5, 40), "quality": rng.random(40).astype(np.float32)},
        meta={"id": "m0"},
    )


def _assert_attrs_equal(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype or k in ("labels", "instance"), (k, a[k].dtype, b[k].dtype)
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_cloud_roundtrip(tmp_path, binary):
    c = _cloud()
    p = tmp_path / "c.ply"
    io.write_ply(p, c, binary=binary)
    r = io.read_ply(p)
    assert isinstance(r, PointCloud)
    np.testing.assert_array_equal(r.xyz, c.xyz)
    _assert_attrs_equal(r.attrs, c.attrs)
    assert r.attrs["labels"].dtype == np.int64 and r.attrs["instance"].dtype == np.int64
    assert r.attrs["rgb"].dtype == np.uint8
    assert r.meta["path"] == str(p)
    # the file itself is a standard PLY with the usual property names and types
    ply = plyfile.PlyData.read(str(p))
    props = {pr.name: pr.val_dtype for pr in ply["vertex"].properties}
    assert props["red"] == "u1" and props["label"] == "u2" and props["instance"] == "i4"
    assert {"nx", "ny", "nz", "feat_0", "feat_3"} <= set(props)
    assert ply.text is (not binary)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_mesh_roundtrip_with_overrides(tmp_path, binary):
    m = _mesh()
    p = tmp_path / "m.ply"
    labels = np.arange(30) * 3000  # > 65535 -> stored as int
    extra = {"confidence": np.linspace(0, 1, 30, dtype=np.float32)}
    io.write_ply(p, m, binary=binary, labels=labels, extra=extra)
    r = io.read_ply(p)
    assert isinstance(r, Mesh)
    np.testing.assert_array_equal(r.vertices, m.vertices)
    np.testing.assert_array_equal(r.faces, m.faces)
    np.testing.assert_array_equal(r.vertex_attrs["labels"], labels)
    np.testing.assert_array_equal(r.vertex_attrs["confidence"], extra["confidence"])
    np.testing.assert_array_equal(r.vertex_attrs["rgb"], m.vertex_attrs["rgb"])
    _assert_attrs_equal(r.face_attrs, m.face_attrs)
    assert plyfile.PlyData.read(str(p))["vertex"].ply_property("label").val_dtype == "i4"
    # the input object is untouched by the overrides
    assert "confidence" not in m.vertex_attrs


def test_ply_negative_labels_and_float_colours(tmp_path):
    c = PointCloud(
        np.zeros((3, 3), np.float32),
        {"labels": np.array([-100, 0, 5]), "rgb": np.array([[0.5, 1, 2]] * 3, np.float32)},
    )
    io.write_ply(tmp_path / "a.ply", c)
    r = io.read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(r.attrs["labels"], [-100, 0, 5])
    assert r.attrs["rgb"].dtype == np.float32
    np.testing.assert_array_equal(r.attrs["rgb"], c.attrs["rgb"])


def test_ply_big_endian_and_alpha_and_polygons(tmp_path):
    """A big-endian file written byte by byte (not by write_ply): alpha, a quad, ``vertex_index``.

    (plyfile's writer emits list rows in native order even for byte_order=">", so the fixture is
    packed with struct.)"""
    header = (
        "ply\nformat binary_big_endian 1.0\nelement vertex 4\n"
        + "".join(f"property float {c}\n" for c in "xyz")
        + "".join(f"property uchar {c}\n" for c in ("red", "green", "blue", "alpha"))
        + "property ushort label\nelement face 2\nproperty list uchar int vertex_index\nproperty int label\n"
        "end_header\n"
    )
    rows = [
        (0, 0, 0, 1, 2, 3, 255, 7),
        (1, 0, 0, 4, 5, 6, 128, 8),
        (1, 1, 0, 7, 8, 9, 0, 9),
        (0, 1, 0, 1, 1, 1, 1, 7),
    ]
    body = b"".join(struct.pack(">fffBBBBH", *r) for r in rows)
    body += struct.pack(">B4ii", 4, 0, 1, 2, 3, 11) + struct.pack(">B3ii", 3, 0, 2, 3, 12)
    p = tmp_path / "be.ply"
    p.write_bytes(header.encode() + body)
    r = io.read_ply(p)
    np.testing.assert_array_equal(r.vertex_attrs["rgb"], [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 1]])
    np.testing.assert_array_equal(r.vertex_attrs["alpha"], [255, 128, 0, 1])
    np.testing.assert_array_equal(r.vertex_attrs["labels"], [7, 8, 9, 7])
    # quad fan-triangulated around its first corner; its face label copied to both triangles
    np.testing.assert_array_equal(r.faces, [[0, 1, 2], [0, 2, 3], [0, 2, 3]])
    np.testing.assert_array_equal(r.face_attrs["labels"], [11, 11, 12])
    assert r.meta["triangulated_from"] == 2
    # native byte order after reading, so writing back works and round trips
    io.write_ply(tmp_path / "le.ply", r)
    r2 = io.read_ply(tmp_path / "le.ply")
    np.testing.assert_array_equal(r2.faces, r.faces)
    _assert_attrs_equal(r2.vertex_attrs, r.vertex_attrs)


def test_ply_faces_empty_gives_cloud(tmp_path):
    m = Mesh(np.eye(3, dtype=np.float32), np.zeros((0, 3), np.int64))
    io.write_ply(tmp_path / "e.ply", m)
    assert isinstance(io.read_ply(tmp_path / "e.ply"), PointCloud)


def test_write_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "keep.ply"
    io.write_ply(p, _cloud())
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plyfile.PlyData, "write", boom)
    with pytest.raises(RuntimeError):
        io.write_ply(p, _cloud(seed=1))
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["keep.ply"]  # no temp file left


def test_off_roundtrip(tmp_path):
    m = _mesh()
    io.write_off(tmp_path / "m.off", m)
    r = io.read_off(tmp_path / "m.off")
    np.testing.assert_array_equal(r.vertices, m.vertices)
    np.testing.assert_array_equal(r.faces, m.faces)


def test_off_modelnet_glued_header_comments_polygons(tmp_path):
    text = "OFF4 2 0\n# a comment\n\n0 0 0\n1 0 0  # trailing comment\n1 1 0\n0 1 0\n4 0 1 2 3\n3 0 1 3\n"
    (tmp_path / "g.off").write_text(text)
    r = io.read_off(tmp_path / "g.off")
    np.testing.assert_array_equal(r.vertices, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(r.faces, [[0, 1, 2], [0, 2, 3], [0, 1, 3]])
    # counts on the header line, separated by a space, and a face colour on every line
    (tmp_path / "s.off").write_text("OFF 3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2 255 0 0\n")
    r = io.read_off(tmp_path / "s.off")
    np.testing.assert_array_equal(r.face_attrs["rgb"], [[255, 0, 0]])


def test_obj_roundtrip_and_forms(tmp_path):
    m = _mesh()
    m = m.replace(vertex_attrs={})
    io.write_obj(tmp_path / "m.obj", m)
    r = io.read_obj(tmp_path / "m.obj")
    np.testing.assert_array_equal(r.vertices, m.vertices)
    np.testing.assert_array_equal(r.faces, m.faces)
    text = (
        "mtllib x.mtl\no thing\n"
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
        "vt 0 0\nvn 0 0 1\n"
        "f 1/1/1 2/1/1 3/1/1\n"
        "f -4//1 -2//1 -1//1\n"  # relative: vertices 0, 2, 3
        "usemtl a\nf 1/1 2/1 3/1 4/1\n"  # quad
    )
    (tmp_path / "f.obj").write_text(text)
    r = io.read_obj(tmp_path / "f.obj")
    np.testing.assert_array_equal(r.faces, [[0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 2, 3]])


def test_obj_colours(tmp_path):
    m = Mesh(
        np.eye(3, dtype=np.float32),
        [[0, 1, 2]],
        {"rgb": np.array([[255, 0, 0], [0, 51, 0], [0, 0, 1]], np.uint8)},
    )
    io.write_obj(tmp_path / "c.obj", m)
    r = io.read_obj(tmp_path / "c.obj")
    np.testing.assert_allclose(r.vertex_attrs["rgb"], m.vertex_attrs["rgb"], atol=1e-4)


@pytest.mark.parametrize(
    "delimiter,columns,width",
    [
        (" ", None, 3),
        (",", None, 4),
        (" ", None, 6),
        ("\t", None, 7),
        (",", ("x", "y", "z", "red", "green", "blue"), 6),
    ],
)
def test_points_txt_layouts(tmp_path, delimiter, columns, width):
    rng = np.random.default_rng(width)
    table = np.round(rng.normal(size=(20, width)), 6)
    if width in (4, 7):
        table[:, -1] = rng.integers(0, 50, 20)
    lines = [delimiter.join(f"{x:.6f}" for x in row) for row in table]
    (tmp_path / "p.txt").write_text("\n".join(lines) + "\n")
    r = io.read_points_txt(tmp_path / "p.txt", columns=columns)
    np.testing.assert_array_equal(r.xyz, table[:, :3].astype(np.float32))
    if width in (4, 7):
        assert r.attrs["labels"].dtype == np.int64
        np.testing.assert_array_equal(r.attrs["labels"], table[:, -1].astype(np.int64))
    if width in (6, 7) and columns is None:
        np.testing.assert_array_equal(r.attrs["normals"], table[:, 3:6].astype(np.float32))
    if columns is not None:
        np.testing.assert_array_equal(r.attrs["rgb"], table[:, 3:6].astype(np.float32))


def test_points_txt_writer_roundtrip(tmp_path):
    c = _cloud()
    c = c.replace(attrs={"normals": c.attrs["normals"], "labels": c.attrs["labels"]})
    io.save(tmp_path / "c.txt", c)
    r = io.load(tmp_path / "c.txt")
    np.testing.assert_array_equal(r.xyz, c.xyz)
    _assert_attrs_equal(r.attrs, c.attrs)


def test_bin_roundtrip(tmp_path):
    t = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    t.tofile(tmp_path / "s.bin")
    r = io.load(tmp_path / "s.bin")
    np.testing.assert_array_equal(r.xyz, t[:, :3])
    np.testing.assert_array_equal(r.attrs["intensity"], t[:, 3])
    r = io.read_bin(tmp_path / "s.bin", columns=("x", "y", "z", "a", "b", "c", "d", "e"))
    assert len(r) == 50


@pytest.mark.parametrize(
    "target",
    [
        None,
        7,
        2.5,
        np.array([1.0, 2.0], np.float32),
        Boxes([[0, 0, 0]], [[1, 2, 3]], [0.3], [4]),
        Keypoints([[1, 2, 3], [0, 0, 1]], axes=[[0, 0, 1], [1, 0, 0]], labels=[3, 4]),
    ],
)
def test_npz_roundtrip(tmp_path, target):
    c = _cloud().replace(target=target, meta={"id": "x", "category": "chair", "nested": {"a": [1, 2]}})
    c = c.replace(vector_attrs=("normals", "feat"))
    io.save(tmp_path / "c.npz", c)
    r = io.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(r.xyz, c.xyz)
    _assert_attrs_equal(r.attrs, c.attrs)
    assert r.vector_attrs == ("normals", "feat")
    assert r.meta == {**c.meta, "path": str(tmp_path / "c.npz")}
    if target is None or isinstance(target, (int, float)):
        assert r.target == target and type(r.target) is type(target)
    elif isinstance(target, np.ndarray):
        np.testing.assert_array_equal(r.target, target)
        assert r.target.dtype == target.dtype
    else:
        for f in ("centers", "sizes", "yaw", "labels", "points", "axes"):
            if hasattr(target, f):
                np.testing.assert_array_equal(getattr(r.target, f), getattr(target, f))


def test_npz_mesh_roundtrip(tmp_path):
    m = _mesh().replace(target=3)
    io.write_npz(tmp_path / "m.npz", m)
    r = io.read_npz(tmp_path / "m.npz")
    assert isinstance(r, Mesh) and r.target == 3
    np.testing.assert_array_equal(r.faces, m.faces)
    _assert_attrs_equal(r.vertex_attrs, m.vertex_attrs)
    _assert_attrs_equal(r.face_attrs, m.face_attrs)


def test_stl_via_trimesh(tmp_path):
    import trimesh

    box = trimesh.creation.box()
    box.export(tmp_path / "b.stl")
    r = io.load(tmp_path / "b.stl")
    assert isinstance(r, Mesh) and len(r.faces) == 12
    np.testing.assert_allclose(
        r.vertices[r.faces].reshape(-1, 3), box.vertices[box.faces].reshape(-1, 3), atol=1e-6
    )


def test_ply_ply_roundtrip_through_save_load(tmp_path):
    m = _mesh()
    io.save(tmp_path / "m.PLY", m)  # extension case-insensitive
    r = io.load(tmp_path / "m.PLY")
    np.testing.assert_array_equal(r.faces, m.faces)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(0, 40),
    binary=st.booleans(),
    label_hi=st.sampled_from([1, 255, 65535, 2**31 - 1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_ply_roundtrip_property(tmp_path, n, binary, label_hi, seed):
    """Any cloud of finite float32 points with colours, labels (any int32 range), normals and a
    float attribute survives write_ply -> read_ply exactly, ascii or binary."""
    rng = np.random.default_rng(seed)
    xyz = (rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-6, 6)).astype(np.float32)
    c = PointCloud(
        xyz,
        {
            "rgb": rng.integers(0, 256, (n, 3)).astype(np.uint8),
            "labels": rng.integers(-label_hi if label_hi > 2**16 else 0, label_hi, n, endpoint=True),
            "normals": rng.normal(size=(n, 3)).astype(np.float32),
            "w": rng.normal(size=n),
        },
    )
    p = tmp_path / f"h{seed}_{binary}.ply"
    io.write_ply(p, c, binary=binary)
    r = io.read_ply(p)
    np.testing.assert_array_equal(r.xyz, c.xyz)
    _assert_attrs_equal(r.attrs, c.attrs)
