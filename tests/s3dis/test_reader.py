"""Readers on format-exact fixtures: layout, line format, labels against an independent reference,
the matching of annotation points to room points, and the known defects of the download."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse_s3dis import reader
from fastai_sparse_s3dis.constants import CLASSES, DATASET_DIR, IGNORE_INDEX
from fastai_sparse_s3dis.fixtures import HALLWAY6_LINE, make_fixture, make_room, write_room
from fastai_sparse_s3dis.reader import (
    annotation_files,
    dataset_root,
    find_room_file,
    list_rooms,
    match_points,
    read_points,
    read_room,
)

from .conftest import base

LINE = re.compile(rb"^-?\d+\.\d{3} -?\d+\.\d{3} -?\d+\.\d{3} \d{1,3} \d{1,3} \d{1,3}$")


def _reference_labels(room_dir):
    """Independent reference: the class of each room-file line, by looking the line's text up in
    a dict built from the annotation files' lines (class = file name before the last '_')."""
    table = {}
    for p in sorted((room_dir / "Annotations").glob("*.txt")):
        cls = p.stem.rsplit("_", 1)[0]
        cls = "clutter" if cls == "stairs" else cls
        for line in p.read_bytes().replace(b"\x00", b" ").decode().splitlines():
            table.setdefault(line, CLASSES.index(cls))
    room_file = next(p for p in room_dir.glob("*.txt"))
    return np.array([table.get(line, IGNORE_INDEX) for line in room_file.read_text().splitlines()])


def test_fixture_layout_and_line_format(s3dis_root):
    b = s3dis_root / DATASET_DIR
    assert sorted(p.name for p in b.iterdir()) == [f"Area_{k}" for k in range(1, 7)]
    room = b / "Area_1" / "office_1"
    assert (room / "office_1.txt").is_file() and (room / "Annotations").is_dir()
    names = sorted(p.name for p in (room / "Annotations").iterdir())
    assert {
        "ceiling_1.txt",
        "floor_1.txt",
        "wall_1.txt",
        "wall_4.txt",
        "chair_2.txt",
        "clutter_1.txt",
    } <= set(names)
    assert all(re.fullmatch(r"[a-z]+_\d+\.txt", n) for n in names)
    for p in [room / "office_1.txt", room / "Annotations" / "chair_1.txt"]:
        data = p.read_bytes()
        assert b"\r" not in data and data.endswith(b"\n")
        assert all(LINE.match(line) for line in data.splitlines()), p
    # a hallway has stairs, an area left of the origin has negative coordinates
    assert (b / "Area_1" / "hallway_1" / "Annotations" / "stairs_1.txt").is_file()
    assert read_points(b / "Area_3" / "office_2" / "office_2.txt").xyz[:, 0].min() < 0


def test_room_file_is_the_annotations_in_another_order(s3dis_root):
    room = dataset_root(s3dis_root) / "Area_2" / "conferenceRoom_1"
    ann = b"".join(p.read_bytes() for p in (room / "Annotations").glob("*.txt")).splitlines()
    lines = (room / "conferenceRoom_1.txt").read_bytes().splitlines()
    assert len(lines) == len(ann) + 5  # plus five points no annotation covers
    assert set(ann) < set(lines) and lines[: len(ann)] != ann


def test_read_room_labels_match_independent_reference(s3dis_root):
    for d in list_rooms(s3dis_root):
        with pytest.warns(UserWarning) if d.name in ("hallway_6", "copyRoom_1") else _no_warning():
            r = read_room(d)
        np.testing.assert_array_equal(r.labels, _reference_labels(d), err_msg=r.id)
        raw = np.loadtxt(r.path)
        np.testing.assert_array_equal(r.xyz, raw[:, :3].astype(np.float32))  # the room file's order
        np.testing.assert_array_equal(r.rgb, raw[:, 3:])
        assert r.unlabelled == 5 and r.unmatched == 0 and (r.labels == IGNORE_INDEX).sum() == 5
        # objects in natural order, each point's object has the point's class
        assert r.objects == sorted(r.objects, key=lambda s: (s.rsplit("_", 1)[0], int(s.rsplit("_", 1)[1])))
        cls = np.array([CLASSES.index(o.rsplit("_", 1)[0].replace("stairs", "clutter")) for o in r.objects])
        covered = r.instance >= 0
        np.testing.assert_array_equal(cls[r.instance[covered]], r.labels[covered])


class _no_warning:
    def __enter__(self):
        import warnings

        self.cm = warnings.catch_warnings()
        self.cm.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        self.cm.__exit__(*exc)


def test_object_of_every_point_matches_generator(tmp_path):
    info = make_room(tmp_path / "Area_1" / "lounge_1", points=3000, seed=7, extra=9)
    r = read_room(tmp_path / "Area_1" / "lounge_1")
    np.testing.assert_array_equal(r.labels, info["labels"])
    # generator objects are written in generation order; the reader lists them in natural order
    names = [info["objects"][k] if k >= 0 else None for k in info["instance"]]
    assert [r.objects[k] if k >= 0 else None for k in r.instance] == names
    assert r.unlabelled == 9


def _pts(rows):
    a = np.asarray(rows, float)
    return a[:, :3], a[:, 3:].astype(np.int64)


def test_matching_duplicates_overlaps_and_colour_mismatch(tmp_path):
    d = tmp_path / "Area_1" / "office_9"
    (d / "Annotations").mkdir(parents=True)
    # room: point A twice, B once, C once (its colour differs from the annotation), D in no object
    room = ["1.000 2.000 0.500 10 20 30", "1.000 2.000 0.500 10 20 30", "-0.000 1.500 0.000 1 2 3",
            "4.000 4.000 1.000 9 9 9", "7.000 7.000 7.000 5 5 5"]  # fmt: skip
    (d / "office_9.txt").write_text("\n".join(room) + "\n")
    (d / "Annotations" / "chair_2.txt").write_text("1.000 2.000 0.500 10 20 30\n0.000 1.500 0.000 1 2 3\n")
    (d / "Annotations" / "chair_10.txt").write_text(
        "1.000 2.000 0.500 10 20 30\n1.000 2.000 0.500 10 20 30\n"
    )
    (d / "Annotations" / "table_1.txt").write_text("4.000 4.000 1.000 8 8 8\n0.000 1.500 0.000 1 2 3\n")
    r = read_room(d)
    assert r.objects == ["chair_2", "chair_10", "table_1"]  # natural order
    # A: first copy to chair_2, second to chair_10 (chair_10's second A has no room point left);
    # -0.000 is 0.000; C matched on x, y, z in the second pass; D uncovered
    assert r.instance.tolist() == [0, 1, 0, 2, -1]
    assert r.labels.tolist() == [8, 8, 8, 7, IGNORE_INDEX]
    assert r.unlabelled == 1 and r.unmatched == 2  # chair_10's second A and table_1's copy of B


def _naive_match(room, ann):
    """Reference: pair each annotation row with the first unused equal room row (Python dicts)."""
    free = {}
    for i, row in enumerate(map(tuple, room)):
        free.setdefault(row, []).append(i)
    return np.array([free[row].pop(0) if free.get(row) else -1 for row in map(tuple, ann)], np.int64)


@pytest.mark.parametrize("buckets", [None, 16, 1])
def test_match_is_exact_with_duplicates_and_hash_collisions(monkeypatch, buckets):
    """Random rows with many duplicates on both sides; with the real hash, with a hash of 16
    values (collisions everywhere: the colliding groups are matched again by value) and with a
    constant hash."""
    if buckets is not None:
        real = reader._row_hash
        monkeypatch.setattr(reader, "_row_hash", lambda cols: real(cols) % np.uint64(buckets))
    rng = np.random.default_rng(buckets or 0)
    pool = np.round(rng.uniform(-2, 2, (60, 3)), 3)
    pool[0] = [-0.0, 1.0, 2.0]
    room = pool[rng.integers(0, 60, 500)]
    ann = pool[rng.integers(0, 60, 400)]
    ann[ann[:, 0] == -0.0, 0] = 0.0  # -0.0 in one file is 0.0 in the other: the same point
    got = reader._match(list(room.T), list(ann.T))
    np.testing.assert_array_equal(got, _naive_match(room + 0.0, ann + 0.0))
    np.testing.assert_array_equal(reader._match_exact(list(room.T), list(ann.T)), got)


def test_match_points_hash_collision_falls_back_to_values(monkeypatch):
    rng = np.random.default_rng(0)
    room = np.round(rng.uniform(-5, 5, (300, 3)), 3)
    rgb = rng.integers(0, 256, (300, 3))
    pick = rng.permutation(300)[:200]
    ann, argb = room[pick], rgb[pick]
    expected = match_points(room, rgb, ann, argb)
    np.testing.assert_array_equal(expected, pick)
    monkeypatch.setattr(reader, "_row_hash", lambda cols: np.zeros(len(cols[0]), np.uint64))  # all collide
    np.testing.assert_array_equal(match_points(room, rgb, ann, argb), pick)


def test_crlf_and_blank_lines(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"1.000 2.000 3.000 4 5 6\r\n\r\n-1.500 0.000 2.250 255 0 17\r\n")
    pts = read_points(p)
    np.testing.assert_array_equal(pts.xyz, [[1, 2, 3], [-1.5, 0, 2.25]])
    assert pts.rgb.dtype == np.uint8 and pts.rgb.tolist() == [[4, 5, 6], [255, 0, 17]]


def test_dataset_root_accepts_parent_or_dataset_folder(s3dis_root):
    assert dataset_root(s3dis_root) == s3dis_root / DATASET_DIR
    assert dataset_root(s3dis_root / DATASET_DIR) == s3dis_root / DATASET_DIR
    assert [d.name for d in list_rooms(s3dis_root, [5])] == ["hallway_6", "office_1"]
    assert [d.name for d in list_rooms(s3dis_root, ["Area_6"])] == ["copyRoom_1", "office_3"]


# -- the known defects of the download ----------------------------------------------------------
@pytest.fixture(scope="module")
def hallway6(tmp_path_factory):
    """Area_5/hallway_6 with the NUL on line 180389 of ceiling_1.txt, exactly as downloaded."""
    root = make_fixture(tmp_path_factory.mktemp("h6"), rooms={"Area_5": ["hallway_6"]}, points=2000)
    return base(root) / "Area_5" / "hallway_6"


def test_hallway6_defect_is_reproduced_exactly(hallway6):
    p = hallway6 / "Annotations" / "ceiling_1.txt"
    lines = p.read_bytes().split(b"\n")
    bad = lines[HALLWAY6_LINE - 1]
    assert bad.count(b"\x00") == 1 and len(bad.replace(b"\x00", b" ").split()) == 6
    assert re.fullmatch(rb"\S+ \S+ \S+ \d+\x00\d+ \d+", bad)  # between red and green
    assert all(b"\x00" not in ln for i, ln in enumerate(lines) if i != HALLWAY6_LINE - 1)
    with pytest.raises(ValueError, match=f"from 6 to 5 at row {HALLWAY6_LINE}"):
        np.loadtxt(p)  # what other tools meet


def test_hallway6_is_repaired_and_reported(hallway6):
    with pytest.warns(UserWarning, match=rf"ceiling_1\.txt: line\(s\) {HALLWAY6_LINE}: a control character"):
        r = read_room(hallway6)
    np.testing.assert_array_equal(r.labels, _reference_labels(hallway6))
    assert r.unlabelled == 0 and r.unmatched == 0 and r.skipped_lines == 0
    assert any(str(HALLWAY6_LINE) in n for n in r.notes)
    with pytest.raises(DataFormatError) as e:
        read_points(hallway6 / "Annotations" / "ceiling_1.txt", bad_lines="error")
    msg = str(e.value)
    assert f"line {HALLWAY6_LINE}" in msg and "'\\x00'" in msg and "ceiling_1.txt" in msg and "\n" not in msg


def test_copy_room_file_name_defect(s3dis_root):
    d = dataset_root(s3dis_root) / "Area_6" / "copyRoom_1"
    assert sorted(p.name for p in d.glob("*.txt")) == ["copy_Room_1.txt"]
    notes = []
    with pytest.warns(UserWarning, match="copy_Room_1.txt, not copyRoom_1.txt"):
        assert find_room_file(d, notes) == d / "copy_Room_1.txt"
    assert len(notes) == 1
    with pytest.warns(UserWarning):
        r = read_room(d)
    assert r.id == "Area_6/copyRoom_1" and r.unmatched == 0


def test_control_character_inside_a_number(tmp_path):
    p = tmp_path / "hallway_2.txt"
    p.write_bytes(
        b"19.276 -9.160 1.684 139 130 99\n19.302 -9.1\x160 1.785 146 137 106\n19.242 -9.160 1.790 146 134 108\n"
    )
    for policy in ("error", "repair"):
        with pytest.raises(DataFormatError, match=r"line 2: found '-9\.1\\x160', expected a number") as e:
            read_points(p, bad_lines=policy)
        assert e.value.field == "y"
    with pytest.warns(UserWarning, match=r"line\(s\) 2 cannot be read"):
        pts = read_points(p, bad_lines="skip")
    assert len(pts) == 2 and pts.skipped == [2]


def test_identical_copy_of_annotation_is_skipped(fresh_root):
    d = base(fresh_root) / "Area_1" / "office_1" / "Annotations"
    shutil.copy(d / "wall_3.txt", d / "wall_3 (1).txt")
    notes = []
    with pytest.warns(UserWarning, match=r"wall_3 \(1\)\.txt: a byte-identical copy of wall_3\.txt"):
        files = annotation_files(d.parent, notes)
    assert "wall_3 (1).txt" not in [p.name for p in files]
    with pytest.warns(UserWarning):
        r = read_room(d.parent)
    assert r.unmatched == 0
    # a copy with other content is an object of its own
    (d / "wall_3 (1).txt").write_text("0.000 0.000 0.000 1 1 1\n")
    assert "wall_3 (1).txt" in [p.name for p in annotation_files(d.parent)]


def test_write_room_round_trip(tmp_path):
    a, ca = _pts([[0, 0, 0, 1, 2, 3], [1.25, -2, 3, 255, 0, 9]])
    b, cb = _pts([[5, 5, 5, 7, 7, 7]])
    info = write_room(tmp_path / "Area_4" / "WC_1", [("board_1", a, ca), ("stairs_1", b, cb)], seed=3)
    r = read_room(tmp_path / "Area_4" / "WC_1")
    np.testing.assert_array_equal(r.labels, info["labels"])
    assert sorted(r.labels.tolist()) == [CLASSES.index("board")] * 2 + [CLASSES.index("clutter")]
