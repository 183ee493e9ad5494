"""Resumable training runs: checkpoints every epoch, resume without losing finished epochs."""

from __future__ import annotations

import json

import pytest
import torch
from fastai.callback.core import Callback

from fastai_sparse.errors import FastaiSparseError
from fastai_sparse.training import train_task

from .conftest import SMALL_ROOMS


class Interrupt(Callback):
    """Simulates Ctrl-C after the checkpoint of a given epoch was written."""

    order = 200

    def __init__(self, after_epoch: int):
        self.after = after_epoch

    def after_epoch(self):
        if self.epoch == self.after:
            raise KeyboardInterrupt


def weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_run_folder_contents(trained_rooms):
    out = trained_rooms["out"]
    run = json.loads((out / "run.json").read_text())
    assert run["finished_epochs"] == 2 and len(run["history"]) == 2
    assert {"train_loss", "valid_loss", "miou"} <= set(run["history"][-1])
    assert (out / "history.csv").read_text().count("\n") == 3  # header + 2 epochs
    assert (out / "checkpoint.pth").is_file() and (out / "model" / "model.safetensors").is_file()
    assert json.loads((out / "metrics.json").read_text())["metrics"] == run["history"][-1]


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(rooms_task, tmp_path):
    kw = dict(epochs=3, bs=2, lr=1e-2, quiet=True, dataset_kwargs=SMALL_ROOMS)
    straight = train_task(rooms_task, out=tmp_path / "straight", **kw)
    with pytest.raises(KeyboardInterrupt):
        train_task(rooms_task, out=tmp_path / "cut", cbs=[Interrupt(after_epoch=1)], **kw)
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert run["finished_epochs"] == 2 and not (tmp_path / "cut" / "model").exists()
    resumed = train_task(
        rooms_task, out=tmp_path / "cut", resume=True, quiet=True, dataset_kwargs=SMALL_ROOMS
    )
    assert resumed["resumed_from"] == 2
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert [h["epoch"] for h in run["history"]] == [0, 1, 2]
    a, b = weights(straight["weights"]), weights(resumed["weights"])
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=f"tensor {k} differs after resume")


def test_an_unfinished_run_is_not_overwritten(rooms_task, tmp_path):
    (tmp_path / "run.json").write_text(
        json.dumps({"task": rooms_task.name, "epochs": 5, "finished_epochs": 2})
    )
    with pytest.raises(FastaiSparseError, match=r"unfinished run .* pass --resume"):
        train_task(rooms_task, out=tmp_path, epochs=5, quiet=True, dataset_kwargs=SMALL_ROOMS)


def test_resume_errors(rooms_task, tmp_path):
    with pytest.raises(FastaiSparseError, match="nothing to resume"):
        train_task(rooms_task, out=tmp_path / "empty", resume=True)
    (tmp_path / "run.json").write_text(json.dumps({"task": "other-task", "epochs": 5, "finished_epochs": 2}))
    with pytest.raises(FastaiSparseError, match="holds a run of task 'other-task'"):
        train_task(rooms_task, out=tmp_path, resume=True)
    (tmp_path / "run.json").write_text(
        json.dumps(
            {"task": rooms_task.name, "epochs": 5, "bs": 2, "lr": 0.01, "seed": 0, "finished_epochs": 2}
        )
    )
    with pytest.raises(FastaiSparseError, match=r"started with lr=0\.01"):
        train_task(rooms_task, out=tmp_path, resume=True, lr=0.1)


def test_predicting_after_training_leaves_the_run_folder_alone(trained_rooms):
    out = trained_rooms["out"]
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    from fastai_sparse.builtin.synthetic import SyntheticRooms

    learn = trained_rooms["learner"]
    learn.predict(SyntheticRooms(n=1, split="test", points=500)[0])
    learn.get_preds()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_relative_run_folder_holds_everything(rooms_task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = train_task(rooms_task, out="runs/rooms", epochs=1, bs=2, quiet=True, dataset_kwargs=SMALL_ROOMS)
    out = tmp_path / "runs" / "rooms"
    assert res["weights"].resolve() == (out / "model").resolve()
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pth",
        "config.json",
        "history.csv",
        "iou_per_class.csv",
        "metrics.json",
        "model",
        "run.json",
        "schedule.csv",
    ]
