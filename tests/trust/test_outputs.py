"""Safe outputs: atomic writes with the user's permissions, output plans that refuse to
destroy inputs or each other, and inputs checked before any work."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from fastai_sparse.errors import InputFileError, OutputConflictError, OutputExistsError
from fastai_sparse.files import atomic_path, check_input_file, output_name, plan_outputs, write_text

from .builders import mode_of, rooms_weights, write_room
from .conftest import invoke


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_atomic_write_gets_the_mode_of_a_new_file(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what any program of the user would create
    ours = write_text(tmp_path / "ours.txt", "x")
    assert mode_of(ours) == mode_of(plain) == 0o666 & ~umask


def test_atomic_write_keeps_the_mode_when_a_writer_recreates_the_file(tmp_path, umask):
    with atomic_path(tmp_path / "out.bin") as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    assert mode_of(tmp_path / "out.bin") == 0o666 & ~umask


def test_predict_outputs_and_write_prediction_get_the_umask(tmp_path, umask):
    """Issue 18: `predict` outputs were -rw------- (mkstemp's mode kept by the rename)."""
    names = rooms_weights(tmp_path)
    src = write_room(tmp_path / "room.ply")
    for fmt in ("ply", "txt", "npz", "json"):
        res = invoke(
            "predict", "synthetic-rooms-seg", "--model", names["weights"], src, "--format", fmt, "--tta", "1"
        )
        assert res.exit_code == 0, res.output
        assert mode_of(tmp_path / f"room.pred.{fmt}") == 0o666 & ~umask, fmt

    from fastai_sparse.io import read_ply
    from fastai_sparse.learner import Prediction, write_prediction

    cloud = read_ply(src)
    labels = np.zeros(len(cloud), np.int64)
    pred = Prediction(
        labels=labels, probs=None, logits=None, confidence=np.ones(len(cloud), np.float32), per="point"
    )
    out = write_prediction(tmp_path / "notebook.ply", cloud, pred, class_names=["a", "b"])
    assert mode_of(out) == 0o666 & ~umask


def test_interrupted_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    old = write_text(tmp_path / "result.txt", "earlier result\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(old) as tmp:
            tmp.write_text("half of the new")
            raise KeyboardInterrupt
    assert old.read_text() == "earlier result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_no_overwrite_holds_even_against_a_concurrent_writer(tmp_path):
    dst = tmp_path / "out.txt"
    with pytest.raises(OutputExistsError, match=r"out\.txt: the output already exists; pass --overwrite"):
        with atomic_path(dst, overwrite=False) as tmp:
            tmp.write_text("ours")
            dst.write_text("theirs, written meanwhile")  # another run got there first
    assert dst.read_text() == "theirs, written meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_temporary_names_are_unique_across_writers(tmp_path):
    """Eight threads write the same destination: every temporary name differs, none is left."""
    seen, errors = [], []

    def write(i):
        try:
            with atomic_path(tmp_path / "same.txt") as tmp:
                seen.append(tmp.name)
                tmp.write_text(str(i))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(seen)) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.txt"]
    assert (tmp_path / "same.txt").read_text() in {str(i) for i in range(8)}


def test_output_names_keep_the_whole_stem():
    assert output_name("room.v1.ply", ".pred.ply") == "room.v1.pred.ply"
    assert output_name("a/scan.pred.ply", ".pred.ply") == "scan.pred.pred.ply"
    assert output_name("x.pts.train", ".seg") == "x.pts.seg"


def test_plan_outputs_rules(tmp_path):
    a, b = tmp_path / "a" / "room.ply", tmp_path / "b" / "room.ply"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text("ply\n")
    assert plan_outputs([a], None, ".pred.ply") == [tmp_path / "a" / "room.pred.ply"]
    assert plan_outputs([a], tmp_path / "x.ply", ".pred.ply") == [tmp_path / "x.ply"]
    assert plan_outputs([a], tmp_path / "b", ".pred.ply") == [b.with_name("room.pred.ply")]
    with pytest.raises(OutputConflictError, match="would both write this output"):
        plan_outputs([a, b], tmp_path / "out", ".pred.ply")
    with pytest.raises(OutputConflictError, match="would replace the input"):
        plan_outputs([a], a, ".pred.ply", overwrite=True)
    (tmp_path / "w.pth").write_bytes(b"PK\x03\x04")
    with pytest.raises(OutputConflictError, match="would replace the input"):
        plan_outputs([a], tmp_path / "w.pth", ".pred.ply", protected=[tmp_path / "w.pth"], overwrite=True)
    (tmp_path / "x.ply").write_text("earlier")
    with pytest.raises(OutputExistsError):
        plan_outputs([a], tmp_path / "x.ply", ".pred.ply")
    assert plan_outputs([a], tmp_path / "x.ply", ".pred.ply", overwrite=True) == [tmp_path / "x.ply"]
    assert not (tmp_path / "out").exists()  # planning writes nothing


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "no such input file"),
        (lambda p: p.mkdir() or p, "is a folder, not a file"),
        (lambda p: os.mkfifo(p) or p, "is a FIFO (named pipe), not a regular file"),
        (lambda p: p.touch() or p, "the input file is empty (0 bytes)"),
        (lambda p: p.write_bytes(b"PK\x03\x04") and p, "does not start like a .ply file"),
    ],
)
def test_check_input_file(tmp_path, make, message):
    with pytest.raises(InputFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_input_file(make(tmp_path / "in.ply"))


def test_check_input_file_never_opens_a_device():
    with pytest.raises(InputFileError, match="character device"):
        check_input_file("/dev/zero")
    assert check_input_file(Path(__file__)) == Path(__file__)
