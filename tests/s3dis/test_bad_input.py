"""Each kind of bad input: a one-line DataFormatError naming the file, the line and the field, and
saying what to do; prepare stops at it, or skips the room with a warning and a count."""

from __future__ import annotations

import shutil

import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse_s3dis.dataset import S3DISRooms
from fastai_sparse_s3dis.prepare import prepare
from fastai_sparse_s3dis.reader import dataset_root, read_room

from .conftest import base

ROOM = "Area_1/office_1"


def _room(root):
    return base(root) / ROOM


def _wrong_columns(root):
    p = _room(root) / "Annotations" / "chair_1.txt"
    lines = p.read_text().splitlines()
    lines[3] = " ".join(lines[3].split()[:5])
    p.write_text("\n".join(lines) + "\n")
    return "chair_1.txt", "line 4: found 5 values", "columns"


def _not_a_number(root):
    p = _room(root) / "office_1.txt"
    lines = p.read_text().splitlines()
    x, _y, *rest = lines[6].split()
    lines[6] = " ".join([x, "1.2.3", *rest])
    p.write_text("\n".join(lines) + "\n")
    return "office_1.txt", "line 7: found '1.2.3', expected a number", "y"


def _colour_out_of_range(root):
    p = _room(root) / "Annotations" / "table_1.txt"
    lines = p.read_text().splitlines()
    *head, _b = lines[0].split()
    lines[0] = " ".join([*head, "256"])
    p.write_text("\n".join(lines) + "\n")
    return "table_1.txt", "line 1: found 256, expected an integer colour 0..255", "blue"


def _empty_annotation(root):
    (_room(root) / "Annotations" / "sofa_1.txt").write_text("")
    return "sofa_1.txt", "empty file", None


def _unknown_class(root):
    a = _room(root) / "Annotations"
    (a / "chair_2.txt").rename(a / "lamp_1.txt")
    return "lamp_1.txt", "unknown class 'lamp'", "class"


def _bad_annotation_name(root):
    a = _room(root) / "Annotations"
    (a / "chair_2.txt").rename(a / "chair.txt")
    return "chair.txt", "is not <class>_<number>.txt", "class"


def _no_annotations(root):
    shutil.rmtree(_room(root) / "Annotations")
    return "Annotations", "room has no Annotations folder", None


def _no_room_file(root):
    (_room(root) / "office_1.txt").unlink()
    return "office_1.txt", "no room file", None


def _two_candidate_room_files(root):
    d = _room(root)
    (d / "office_1.txt").rename(d / "office_1_a.txt")
    (d / "notes.txt").write_text("1 2 3 4 5 6\n")
    return "office_1", "several other .txt files", None


CASES = [
    _wrong_columns,
    _not_a_number,
    _colour_out_of_range,
    _empty_annotation,
    _unknown_class,
    _bad_annotation_name,
    _no_annotations,
    _no_room_file,
    _two_candidate_room_files,
]


@pytest.mark.parametrize("damage", CASES, ids=lambda f: f.__name__.strip("_"))
def test_read_room_error_names_file_line_field(fresh_root, damage):
    fname, what, fld = damage(fresh_root)
    with pytest.raises(DataFormatError) as e:
        read_room(_room(fresh_root), bad_lines="repair")
    msg = str(e.value)
    assert fname in msg and what in msg and "\n" not in msg, msg
    assert e.value.field == fld


@pytest.mark.parametrize("damage", CASES[:3], ids=lambda f: f.__name__.strip("_"))
def test_damaged_line_is_left_out_with_skip(fresh_root, damage):
    damage(fresh_root)
    with pytest.warns(UserWarning, match=r"cannot be read \(a damaged value\): 1 point\(s\) left out"):
        r = read_room(_room(fresh_root), bad_lines="skip")
    assert r.skipped_lines == 1


@pytest.mark.parametrize(
    "damage", [_unknown_class, _no_annotations, _wrong_columns], ids=lambda f: f.__name__.strip("_")
)
def test_prepare_stops_or_skips(fresh_root, damage, tmp_path):
    fname, what, _ = damage(fresh_root)
    kwargs = {"bad_lines": "repair"} if damage is _wrong_columns else {}
    with pytest.raises(DataFormatError) as e:
        prepare(fresh_root, out=tmp_path / "a", jobs=1, quiet=True, areas=[1, 2, 5], **kwargs)
    assert fname in str(e.value) and what in str(e.value)
    with pytest.warns(UserWarning, match=f"skipped 1 bad item.*{ROOM}"):
        s = prepare(
            fresh_root, out=tmp_path / "b", jobs=1, skip_bad=True, quiet=True, areas=[1, 2, 5], **kwargs
        )
    assert s["bad"] == 1 and list(s["bad_items"]) == [ROOM] and what in s["bad_items"][ROOM]
    assert s["prepared"] == 3 and s["rooms"] == 4
    assert not (tmp_path / "b" / f"{ROOM}.npz").exists()


def test_missing_area(fresh_root):
    with pytest.raises(DataFormatError) as e:
        S3DISRooms(fresh_root, "train")  # fold 5 trains on Areas 1-4 and 6; 3, 4, 6 are missing
    msg = str(e.value)
    assert "area folder Area_3 is missing (found Area_1, Area_2, Area_5)" in msg and "Area_3" in msg
    assert "\n" not in msg
    with pytest.raises(DataFormatError, match="Area_4 is missing"):
        prepare(fresh_root, areas=[4], quiet=True)
    assert len(S3DISRooms(fresh_root, "train", areas=[1, 2])) == 2


def test_no_areas_at_all(tmp_path):
    with pytest.raises(DataFormatError, match=r"no S3DIS areas found: expected folders Area_1, .*Area_6"):
        dataset_root(tmp_path)


def test_bad_fold_and_split(fresh_root):
    with pytest.raises(ValueError, match=r"option fold=7: expected 1\.\.6"):
        S3DISRooms(fresh_root, "train", fold=7)
    with pytest.raises(ValueError, match="unknown S3DIS split 'tests'"):
        S3DISRooms(fresh_root, "tests")
