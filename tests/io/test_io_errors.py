"""Bad input to fastai_sparse.io: every case raises DataFormatError naming file and problem."""

from __future__ import annotations

import numpy as np
import plyfile
import pytest

from fastai_sparse import io
from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import Mesh, PointCloud


def _write_raw_ply(path, vertex: np.ndarray, faces: list | None = None, text=False):
    els = [plyfile.PlyElement.describe(vertex, "vertex")]
    if faces is not None:
        f = np.empty(len(faces), dtype=[("vertex_indices", "O")])
        for i, face in enumerate(faces):
            f[i] = (np.asarray(face, np.int32),)
        els.append(plyfile.PlyElement.describe(f, "face"))
    plyfile.PlyData(els, text=text).write(str(path))


def _xyz(n):
    v = np.zeros(n, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    v["x"] = np.arange(n)
    return v


@pytest.mark.parametrize("binary", [True, False])
def test_truncated_ply(tmp_path, binary):
    m = Mesh(np.random.default_rng(0).random((100, 3)), np.arange(150).reshape(50, 3) % 100)
    p = tmp_path / "t.ply"
    io.write_ply(p, m, binary=binary)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"t\.ply") as e:
        io.read_ply(p)
    assert e.value.__cause__ is not None  # plyfile's own error is kept


def test_not_a_ply(tmp_path):
    (tmp_path / "n.ply").write_text("hello\n")
    with pytest.raises(DataFormatError, match=r"n\.ply"):
        io.read_ply(tmp_path / "n.ply")


def test_ply_without_x(tmp_path):
    v = np.zeros(3, dtype=[("y", "f4"), ("z", "f4"), ("red", "u1")])
    _write_raw_ply(tmp_path / "nox.ply", v)
    with pytest.raises(DataFormatError, match=r"nox\.ply.*'x'.*expected x, y and z") as e:
        io.read_ply(tmp_path / "nox.ply")
    assert e.value.field == "x"


def test_ply_partial_normals(tmp_path):
    v = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("nx", "f4")])
    _write_raw_ply(tmp_path / "pn.ply", v)
    with pytest.raises(DataFormatError, match="normals"):
        io.read_ply(tmp_path / "pn.ply")


@pytest.mark.parametrize("faces", [[[0, 1, 5]], [[0, 1, -1]], [[0, 1, 2], [0, 1, 2, 9]]])
def test_ply_faces_out_of_range(tmp_path, faces):
    _write_raw_ply(tmp_path / "f.ply", _xyz(4), faces)
    with pytest.raises(DataFormatError, match=r"f\.ply.*expected indices in 0\.\.3"):
        io.read_ply(tmp_path / "f.ply")


def test_ply_face_with_two_vertices(tmp_path):
    _write_raw_ply(tmp_path / "f2.ply", _xyz(4), [[0, 1, 2], [0, 1]])
    with pytest.raises(DataFormatError, match=r"face 1 has 2 vertex indices, expected at least 3"):
        io.read_ply(tmp_path / "f2.ply")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_ply_nonfinite(tmp_path, bad):
    v = _xyz(5)
    v["y"][3] = bad
    _write_raw_ply(tmp_path / "nan.ply", v, text=True)
    with pytest.raises(DataFormatError, match=r"nan\.ply.*point 3.*finite"):
        io.read_ply(tmp_path / "nan.ply")


def test_ply_fractional_label(tmp_path):
    v = np.zeros(2, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("label", "f4")])
    v["label"] = [1.0, 2.5]
    _write_raw_ply(tmp_path / "l.ply", v)
    with pytest.raises(DataFormatError, match=r"2\.5.*integral"):
        io.read_ply(tmp_path / "l.ply")


def test_off_fewer_lines_than_counts(tmp_path):
    (tmp_path / "short.off").write_text("OFF\n4 1 0\n0 0 0\n1 0 0\n0 1 0\n")
    with pytest.raises(DataFormatError, match=r"short\.off.*line 5 after 3 vertex lines, expected 4"):
        io.read_off(tmp_path / "short.off")
    (tmp_path / "shortf.off").write_text("OFF\n3 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(DataFormatError, match=r"line 6 after 1 face lines, expected 2"):
        io.read_off(tmp_path / "shortf.off")


@pytest.mark.parametrize(
    "text,match",
    [
        ("PLY\n", "expected the header 'OFF'"),
        ("OFF\n3 x 0\n", "expected integer counts"),
        ("OFF\n3 1 0\n0 0\n1 0 0\n0 1 0\n3 0 1 2\n", r"line 3: found 2 values"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", r"line 6: found vertex index 3, expected 0\.\.2"),
        ("OFF\n3 1 0\n0 0 0\n1 0 nan\n0 1 0\n3 0 1 2\n", r"line 4.*finite"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 1 2\n", r"line 7.*after the 1 declared faces"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n", r"line 6.*n >= 3"),
    ],
)
def test_off_malformed(tmp_path, text, match):
    (tmp_path / "bad.off").write_text(text)
    with pytest.raises(DataFormatError, match=match) as e:
        io.read_off(tmp_path / "bad.off")
    assert "bad.off" in str(e.value)


def test_obj_bad_reference(tmp_path):
    (tmp_path / "b.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 3\nv 0 1 0\n")
    with pytest.raises(DataFormatError, match=r"b\.obj.*line 3.*3 points outside the 2 vertices"):
        io.read_obj(tmp_path / "b.obj")


def test_txt_short_line_names_line(tmp_path):
    (tmp_path / "s.txt").write_text("0,0,0,1,0,0\n1,1,1,0,1,0\n\n2,2,2,0,0\n")
    with pytest.raises(DataFormatError, match=r"s\.txt.*line 4: found 5 values, expected 6"):
        io.read_points_txt(tmp_path / "s.txt")


def test_txt_bad_values(tmp_path):
    (tmp_path / "f.txt").write_text("0 0 0 1\n1 1 1 2.5\n")
    with pytest.raises(DataFormatError, match=r"line 2: found 2\.5, expected an integral value"):
        io.read_points_txt(tmp_path / "f.txt")
    (tmp_path / "w.txt").write_text("0 0 0\n1 one 1\n")
    with pytest.raises(DataFormatError, match=r"line 2: found 'one', expected a number"):
        io.read_points_txt(tmp_path / "w.txt")
    (tmp_path / "n.txt").write_text("0 0 0\n1 nan 1\n")
    with pytest.raises(DataFormatError, match=r"line 2.*finite"):
        io.read_points_txt(tmp_path / "n.txt")
    (tmp_path / "c5.txt").write_text("0 0 0 0 0\n")
    with pytest.raises(DataFormatError, match=r"found 5 columns, expected 3, 4, 6 or 7"):
        io.read_points_txt(tmp_path / "c5.txt")
    (tmp_path / "e.txt").write_text("\n# only a comment\n")
    with pytest.raises(DataFormatError, match="no data lines"):
        io.read_points_txt(tmp_path / "e.txt")


def test_bin_wrong_size(tmp_path):
    np.zeros(10, np.float32).tofile(tmp_path / "k.bin")  # 40 bytes, not a multiple of 16
    with pytest.raises(DataFormatError, match=r"k\.bin.*40 bytes is not a multiple of 16"):
        io.read_bin(tmp_path / "k.bin")


def test_unknown_extension(tmp_path):
    (tmp_path / "x.foo").write_text("")
    with pytest.raises(DataFormatError, match=r"x\.foo.*'\.foo', expected one of .*\.ply"):
        io.load(tmp_path / "x.foo")
    with pytest.raises(DataFormatError, match=r"expected one of"):
        io.save(tmp_path / "x.bin", PointCloud(np.zeros((1, 3))))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "absent.ply")


def test_npz_unserialisable_meta_and_target(tmp_path):
    c = PointCloud(np.zeros((2, 3)), meta={"obj": object()})
    with pytest.raises(DataFormatError, match="meta"):
        io.write_npz(tmp_path / "m.npz", c)
    with pytest.raises(DataFormatError, match="target of type dict"):
        io.write_npz(tmp_path / "t.npz", PointCloud(np.zeros((2, 3)), target={"a": 1}))
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "t.npz").exists()


def test_write_ply_label_range(tmp_path):
    c = PointCloud(np.zeros((2, 3)), {"labels": np.array([0, 2**40])})
    with pytest.raises(DataFormatError, match="int32"):
        io.write_ply(tmp_path / "big.ply", c)
