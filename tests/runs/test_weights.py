"""Weights and exports: safetensors files and model folders round-trip, older .pth weights
still load, and nothing a file holds ever runs (crafted pickles are refused, the marker file
their unpickling would create never appears)."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
import torch

from fastai_sparse.errors import CheckpointError, OutputExistsError, UnsafeFileError
from fastai_sparse.learner import load_learner
from fastai_sparse.prediction import Predictor
from fastai_sparse.weights import read_weights, sniff

from ..trust.builders import crafted_pickle, crafted_torch_file
from .conftest import SMALL, old_save_weights


# -- nothing runs ------------------------------------------------------------------------------
def test_crafted_pickle_export_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    evil = crafted_pickle(tmp_path / "export.pkl", marker)
    with pytest.raises(UnsafeFileError) as err:
        load_learner(evil)
    msg = str(err.value)
    assert "refused" in msg and "runs whatever code" in msg and "unsafe_pickle=True" in msg
    assert "corrupt" not in msg and "\n" not in msg
    assert not marker.exists()


def test_unsafe_pickle_is_the_only_way_to_unpickle(tmp_path):
    """The argument named for the risk really is what lets a pickle run (so the refusal above is
    not an accident of the file)."""
    marker = tmp_path / "ran"
    evil = crafted_pickle(tmp_path / "export.pkl", marker)
    with pytest.raises(CheckpointError):  # it ran, then turned out not to be a Learner
        load_learner(evil, unsafe_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("maker", [crafted_torch_file, crafted_pickle], ids=["torch-save", "raw-pickle"])
def test_crafted_pth_is_refused_everywhere_and_never_runs(tmp_path, maker, rooms_task, rooms_learner):
    marker = tmp_path / "ran"
    evil = maker(tmp_path / "weights.pth", marker)
    loaders = {
        "read_weights": lambda: read_weights(evil),
        "load_learner": lambda: load_learner(evil),
        "Predictor.from_weights": lambda: Predictor.from_weights(rooms_task, evil),
        "learn.load_weights": lambda: rooms_learner.load_weights(evil),
    }
    for name, load in loaders.items():
        with pytest.raises(UnsafeFileError) as err:
            load()
        msg = str(err.value)
        assert msg.startswith(f"{evil}: refused") and re.search(r"it asks for [\w.]*\.open\b", msg), name
        assert "corrupt" not in msg and "\n" not in msg, name
    assert not marker.exists()


def test_other_bad_files_name_what_is_wrong(tmp_path, rooms_learner):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="without fastai-sparse metadata"):
        read_weights(foreign)
    good = rooms_learner.save_weights(tmp_path / "good.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        read_weights(cut)
    huge = tmp_path / "huge.safetensors"  # a header claiming 50 MB that is not there
    huge.write_bytes(struct.pack("<Q", 50_000_000) + b"{}")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        read_weights(huge)
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        read_weights(text)
    with pytest.raises(CheckpointError, match="no such weights file"):
        read_weights(tmp_path / "missing.safetensors")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"a folder without model\.safetensors"):
        read_weights(empty)


# -- round trips -------------------------------------------------------------------------------
def test_export_folder_round_trip(rooms_learner, room, tmp_path):
    rooms_learner.path = tmp_path
    try:
        folder = rooms_learner.export()  # default: the folder "model" under learn.path
    finally:
        rooms_learner.path = rooms_learner.dls.path
    assert folder == tmp_path / "model"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert sniff(folder / "model.safetensors") == "safetensors"
    doc = json.loads((folder / "config.json").read_text())
    assert doc["format"] == "fastai-sparse-model/1" and doc["task"] == "synthetic-rooms-seg"
    assert doc["class_names"] == rooms_learner.class_names and doc["in_channels"] == 3
    assert doc["config"]["dataset"]["options"]["n"] == SMALL["n"]  # what the loaders were made from
    assert doc["config_source"] == "task" and set(doc["metrics"]) >= {"miou", "valid_loss"}
    # the file alone carries the same description
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["fastai_sparse"]) == doc
    expected = rooms_learner.predict(room)
    again = load_learner(folder)
    assert again.task_name == "synthetic-rooms-seg" and len(again.dls.valid_ds) == 0
    np.testing.assert_array_equal(again.predict(room).probs, expected.probs)
    from fastai_sparse import from_pretrained

    np.testing.assert_allclose(from_pretrained(folder).predict(room, tta=1).probs, expected.probs, atol=1e-6)
    one = rooms_learner.save_weights(tmp_path / "one.safetensors")
    np.testing.assert_array_equal(load_learner(one).predict(room).probs, expected.probs)


def test_exports_never_replace_a_file_unless_told(rooms_learner, tmp_path):
    folder = rooms_learner.save_pretrained(tmp_path / "m")
    before = (folder / "model.safetensors").read_bytes()
    with pytest.raises(OutputExistsError, match="already exists"):
        rooms_learner.save_pretrained(tmp_path / "m")
    with pytest.raises(OutputExistsError):
        rooms_learner.save_weights(folder / "model.safetensors")
    assert (folder / "model.safetensors").read_bytes() == before
    rooms_learner.save_pretrained(tmp_path / "m", overwrite=True)


def test_export_to_a_pickle_name_needs_the_flag(rooms_learner, tmp_path):
    with pytest.raises(CheckpointError, match="unsafe_pickle=True"):
        rooms_learner.export(tmp_path / "export.pkl")
    assert not (tmp_path / "export.pkl").exists()
    with pytest.raises(CheckpointError, match=r"name weights files \.safetensors"):
        rooms_learner.save_weights(tmp_path / "weights.bin")


def test_old_pth_weights_keep_loading(rooms_learner, rooms_task, room, tmp_path):
    old = old_save_weights(rooms_learner, tmp_path / "model.pth")
    assert sniff(old) == "torch-zip"
    ckpt = read_weights(old)
    assert ckpt["format"] == "fastai-sparse-weights/1" and ckpt["config"] is None
    expected = rooms_learner.predict(room)
    pred = Predictor.from_weights(rooms_task, old).predict(room, tta=1)
    np.testing.assert_allclose(pred.probs, expected.probs, atol=1e-6)
    learn = load_learner(old)  # the task from the registry by the name the file holds
    np.testing.assert_array_equal(learn.predict(room).probs, expected.probs)
    fresh = rooms_task.learner(rooms_learner.dls)
    fresh.load_weights(old)
    np.testing.assert_array_equal(fresh.predict(room).probs, expected.probs)
    # and the .pth writer, for scripts that still name their weights so, writes the same thing
    again = read_weights(rooms_learner.save_weights(tmp_path / "again.pth"))
    assert again.keys() == ckpt.keys() and again["task"] == ckpt["task"]


def test_a_folder_that_mixes_two_exports_is_refused(rooms_learner, tmp_path):
    folder = rooms_learner.save_pretrained(tmp_path / "m")
    doc = json.loads((folder / "config.json").read_text())
    doc["class_names"] = ["a", "b"]
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="disagree on 'class_names'"):
        read_weights(folder)


def test_weights_of_a_changed_model_load_with_their_own_config(rooms_task, room, tmp_path):
    """Weights trained with model_kwargs.m=8 load through the plain registered task: the stored
    configuration, not the task's defaults, builds the model."""
    changed = rooms_task.from_config({"task": rooms_task.name, "model_kwargs": {"m": 8}})
    dls = changed.dataloaders(bs=2, path=tmp_path, **SMALL)
    learn = changed.learner(dls)
    folder = learn.save_pretrained(tmp_path / "m8")
    pred = Predictor.from_weights(rooms_task, folder)
    assert pred.task.model_kwargs == {"m": 8}
    np.testing.assert_allclose(pred.predict(room, tta=1).probs, learn.predict(room).probs, atol=1e-6)
    with pytest.raises(CheckpointError, match="do not fit"):  # the defaults alone would not fit
        Predictor(rooms_task, state_dict=read_weights(folder)["state_dict"]).predict(room, tta=1)


def test_model_card_describes_the_model(rooms_learner, tmp_path):
    metrics = {"miou": 0.5, "iou_per_class": {"floor": 0.9, "wall": float("nan")}}
    cfg = rooms_learner.task.config(epochs=3, lr=0.02, dataset_options=SMALL)
    folder = rooms_learner.save_pretrained(tmp_path / "m", config=cfg, metrics=metrics)
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: fastai-sparse\n")
    for text in (
        "# synthetic-rooms-seg",
        "| classes (7) | floor, wall, table, chair, cabinet, lamp, box |",
        "Dataset `synthetic-rooms`",
        "`n=4`",
        "Training: 3 epochs, batch size 4, learning rate 0.02, optimizer `adam`, schedule `one-cycle`",
        "| miou | 0.5 |",
        "floor 0.9, wall nan",
        "fastai-sparse predict synthetic-rooms-seg --model",
    ):
        assert text in card, text
    assert "Exported from Python" not in card  # the configuration was the run's
    block = card.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == json.loads(json.dumps(cfg))
