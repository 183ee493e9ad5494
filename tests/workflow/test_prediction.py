"""Inference from a weights file: one prediction per original point, the CLI, output formats,
and clear errors for wrong models and inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastai_sparse import io
from fastai_sparse.builtin.synthetic import SyntheticRooms
from fastai_sparse.cli import main
from fastai_sparse.errors import DataFormatError
from fastai_sparse.learner import CheckpointError
from fastai_sparse.prediction import Predictor, output_values, predict_files


@pytest.fixture(scope="module")
def room():
    return SyntheticRooms(n=1, split="test", points=1200)[0]


def test_predictor_matches_the_learner(trained_rooms, rooms_task, room, device):
    learn = trained_rooms["learner"]  # on the CPU: the reference
    predictor = Predictor.from_weights(rooms_task, trained_rooms["weights"], device=device)
    for tta in (1, 2):
        ours = predictor.predict(room, tta=tta)
        assert {p.device for p in predictor.model.parameters()} == {device}
        theirs = learn.predict(room, tta=tta)
        assert ours.labels.shape == (len(room),) and ours.probs.shape == (len(room), 7)
        np.testing.assert_allclose(ours.logits, theirs.logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(ours.labels, ours.probs.argmax(1))
        np.testing.assert_allclose(ours.confidence, ours.probs.max(1), rtol=1e-6)


def test_predict_files_writes_every_point_in_each_format(trained_rooms, rooms_task, room, tmp_path):
    src = tmp_path / "room.ply"
    io.write_ply(src, room)
    pred = Predictor.from_weights(rooms_task, trained_rooms["weights"]).predict(src, tta=1)
    for fmt in ("ply", "txt", "npz"):
        [(s, dst)] = list(
            predict_files(rooms_task, trained_rooms["weights"], [src], out=tmp_path / f"out.{fmt}", tta=1)
        )
        assert s == src and dst == tmp_path / f"out.{fmt}"
        if fmt == "ply":
            back = io.read_ply(dst)
            np.testing.assert_array_equal(back.attrs["labels"], pred.labels)
            np.testing.assert_allclose(back.xyz, room.xyz)
            assert back.attrs["rgb"].dtype == np.uint8 and "confidence" in back.attrs
        elif fmt == "txt":
            np.testing.assert_array_equal(np.loadtxt(dst, dtype=np.int64), pred.labels)
        else:
            with np.load(dst) as z:
                np.testing.assert_array_equal(z["labels"], pred.labels)
                assert z["probs"].shape == (len(room), 7)


def test_label_values_are_what_files_hold(rooms_task):
    import dataclasses

    mapped = dataclasses.replace(rooms_task, label_values=[10, 20, 30, 40, 50, 60, 70])
    assert output_values(mapped, np.array([0, 6, 2])).tolist() == [10, 70, 30]
    assert output_values(rooms_task, np.array([0, 6, 2])).tolist() == [0, 6, 2]


class _ClassCounts:
    """A task-defined output format: the number of points of each class, in a layout of its own."""

    def path(self, src, out, several):
        return (out if out is not None else src.parent) / "counts" / f"{src.stem}.counts"

    def write(self, task, result, original, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(str(c) for c in np.bincount(result.labels, minlength=7)))
        return path


def test_task_output_format(trained_rooms, rooms_task, room, tmp_path):
    import dataclasses

    from fastai_sparse.errors import FastaiSparseError

    weights = trained_rooms["weights"]
    task = dataclasses.replace(
        rooms_task,
        output_formats={"counts": _ClassCounts()},
        defaults={**rooms_task.defaults, "format": "counts"},
    )
    src = tmp_path / "room.ply"
    io.write_ply(src, room)
    labels = Predictor.from_weights(task, weights).predict(src, tta=1).labels
    [(_, dst)] = predict_files(task, weights, [src], out=tmp_path / "o", tta=1)  # the task's default format
    assert dst == tmp_path / "o" / "counts" / "room.counts"
    assert dst.read_text().split() == [str(c) for c in np.bincount(labels, minlength=7)]
    [(_, dst)] = predict_files(task, weights, [src], out=tmp_path / "o.txt", tta=1)  # core formats still work
    np.testing.assert_array_equal(np.loadtxt(dst, dtype=np.int64), labels)
    with pytest.raises(FastaiSparseError, match=r"unknown output format 'nope'.*counts"):
        list(predict_files(task, weights, [src], out=tmp_path / "x", fmt="nope"))
    assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(
        main, ["predict", "synthetic-rooms-seg", "--model", str(weights), str(src), "--format", "counts"]
    )
    assert res.exit_code == 2 and "'counts' is not a format of task 'synthetic-rooms-seg'" in res.output
    assert "ply, txt, npz, json" in res.output


def test_cli_predict(trained_rooms, room, tmp_path):
    src = tmp_path / "scan.ply"
    io.write_ply(src, room)
    res = CliRunner().invoke(
        main,
        ["predict", "synthetic-rooms-seg", "--model", str(trained_rooms["weights"]), str(src), "--tta", "1"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "scan.pred.ply"
    assert f"{src} -> {out}" in res.output
    assert len(io.read_ply(out).attrs["labels"]) == len(room)


def test_weights_of_another_task_are_refused(trained_rooms, tmp_path):
    from fastai_sparse import get_task

    with pytest.raises(
        CheckpointError, match="trained for task 'synthetic-rooms-seg', not 'synthetic-shapes-cls'"
    ):
        Predictor.from_weights(get_task("synthetic-shapes-cls"), trained_rooms["weights"])


def test_missing_and_corrupt_weights(rooms_task, tmp_path):
    with pytest.raises(CheckpointError, match="no such weights file"):
        Predictor.from_weights(rooms_task, tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        Predictor.from_weights(rooms_task, bad)
    other = tmp_path / "other.pth"
    torch.save({"weights": 1}, other)
    with pytest.raises(CheckpointError, match="expected a fastai-sparse weights file"):
        Predictor.from_weights(rooms_task, other)


def test_input_without_the_features_the_task_needs(trained_rooms, rooms_task, room):
    no_colour = room.replace(attrs={k: v for k, v in room.attrs.items() if k != "rgb"})
    with pytest.raises(DataFormatError, match="rgb"):
        Predictor.from_weights(rooms_task, trained_rooms["weights"]).predict(no_colour, tta=1)


def test_per_sample_task_writes_top_classes_as_json(tmp_path):
    from fastai_sparse import get_task
    from fastai_sparse.builtin.synthetic import SyntheticShapes

    task = get_task("synthetic-shapes-cls")
    model = task.build_model(1)
    weights = tmp_path / "shapes.pth"
    torch.save(
        {
            "format": "fastai-sparse-weights/1",
            "task": task.name,
            "class_names": task.class_names,
            "model": "SparseModel",
            "state_dict": model.state_dict(),
        },
        weights,
    )
    shape = SyntheticShapes(n=1, split="test", points=500)[0]
    src = tmp_path / "shape.npz"
    io.save(src, shape)
    [(_, dst)] = list(predict_files(task, weights, [src], tta=2))
    assert dst.name == "shape.pred.json"
    payload = json.loads(dst.read_text())
    assert payload["label"] in task.class_names and len(payload["top"]) == 5
    probs = [t["probability"] for t in payload["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
