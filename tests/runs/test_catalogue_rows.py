"""Bad weights and configs from the command line: one row per case, each checked for its exit
code, its message fragment, one ``Error:`` line and no traceback, and the paths that must not
exist afterwards (the marker a crafted pickle would create, a run folder a bad config must not
start).

(These rows move into the project's catalogue table, ``tests/trust/test_catalogue.py``, once it
exists; the row format is the one of ``tests/trust/test_data_catalogue.py``.)
"""

from __future__ import annotations

import json
import shlex
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from fastai_sparse.cli import main

from .conftest import crafted_pickle, crafted_torch_file


@dataclass(frozen=True)
class Row:
    id: str
    args: str
    fragment: str
    code: int = 1
    build: tuple[Callable[[Path], dict], ...] = ()
    absent: tuple[str, ...] = ()


# -- builders: tmp -> {name: path} ------------------------------------------------------------
def room(tmp: Path) -> dict:
    from fastai_sparse import io
    from fastai_sparse.builtin.synthetic import SyntheticRooms

    io.save(tmp / "room.ply", SyntheticRooms(n=1, split="test", points=300)[0])
    return {"room": str(tmp / "room.ply")}


def rooms_model(tmp: Path) -> dict:
    """An (untrained) rooms model folder, written in the format train writes."""
    from fastai_sparse import get_task
    from fastai_sparse.weights import model_document, write_model_folder

    task = get_task("synthetic-rooms-seg")
    doc = model_document(task=task.name, class_names=task.class_names, config=task.config(), in_channels=3)
    folder = write_model_folder(tmp / "run" / "model", task.build_model(3).state_dict(), doc)
    return {"model": str(folder), "run": str(tmp / "run")}


def evil_pickle(tmp: Path) -> dict:
    return {"evil_pkl": str(crafted_pickle(tmp / "export.pkl", tmp / "ran")), "marker": str(tmp / "ran")}


def evil_pth(tmp: Path) -> dict:
    return {"evil_pth": str(crafted_torch_file(tmp / "model.pth", tmp / "ran")), "marker": str(tmp / "ran")}


def cut_weights(tmp: Path) -> dict:
    src = Path(rooms_model(tmp / "src")["model"]) / "model.safetensors"
    data = src.read_bytes()
    (tmp / "cut.safetensors").write_bytes(data[: len(data) // 2])
    return {"cut": str(tmp / "cut.safetensors")}


def foreign_weights(tmp: Path) -> dict:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(tmp / "foreign.safetensors"))
    return {"foreign": str(tmp / "foreign.safetensors")}


def mixed_folder(tmp: Path) -> dict:
    names = rooms_model(tmp)
    doc_path = Path(names["model"]) / "config.json"
    doc = json.loads(doc_path.read_text())
    doc["task"] = "synthetic-shapes-cls"
    doc_path.write_text(json.dumps(doc))
    return names


def _config(tmp: Path, name: str, change: Callable[[dict], None]) -> dict:
    from fastai_sparse import get_task

    cfg = json.loads(json.dumps(get_task("synthetic-rooms-seg").config()))
    change(cfg)
    (tmp / name).write_text(json.dumps(cfg))
    return {name.split(".")[0]: str(tmp / name)}


def cfg_unknown_key(tmp):
    return _config(tmp, "unknown_key.json", lambda c: c["model_kwargs"].update(mm=3))


def cfg_wrong_type(tmp):
    return _config(tmp, "wrong_type.json", lambda c: c["model_kwargs"].update(m="sixteen"))


def cfg_code(tmp):
    return _config(
        tmp, "code.json", lambda c: c["train_transforms"].insert(0, {"type": "os:system", "command": "id"})
    )


def cfg_fine(tmp):
    return _config(tmp, "fine.json", lambda c: None)


def cfg_not_json(tmp: Path) -> dict:
    (tmp / "broken.json").write_text('{"task": "synthetic-rooms-seg", "lr": }')
    return {"broken": str(tmp / "broken.json")}


PREDICT = "predict synthetic-rooms-seg {room} -o {tmp}/out.ply --model"
TRAIN = "train --out {tmp}/new --quiet --config"

ROWS: list[Row] = [
    # -- weights that would run code, or are not weights -----------------------------------------
    Row("predict-crafted-pickle-refused", PREDICT + " {evil_pkl}", "refused: the file holds pickled Python objects", 1,
        (room, evil_pickle), absent=("{marker}", "{tmp}/out.ply")),
    Row("predict-crafted-pth-refused", PREDICT + " {evil_pth}", "loading it could run code", 1, (room, evil_pth),
        absent=("{marker}", "{tmp}/out.ply")),
    Row("predict-truncated-safetensors", PREDICT + " {cut}", "not a readable safetensors file", 1, (room, cut_weights),
        absent=("{tmp}/out.ply",)),
    Row("predict-foreign-safetensors", PREDICT + " {foreign}", "a safetensors file without fastai-sparse metadata", 1,
        (room, foreign_weights)),
    Row("predict-run-folder-names-its-model", PREDICT + " {run}", "it looks like a run folder: its model is", 1,
        (room, rooms_model)),
    Row("predict-missing-model", PREDICT + " {tmp}/nope", "nope: no such model folder or weights file", 2, (room,)),
    Row("predict-folder-mixing-two-exports", PREDICT + " {model}", "config.json and model.safetensors disagree on 'task'", 1,
        (room, mixed_folder)),
    Row("predict-model-of-another-task", "predict synthetic-shapes-cls {room} -o {tmp}/out.json --model {model}",
        "trained for task 'synthetic-rooms-seg', not 'synthetic-shapes-cls'", 1, (room, rooms_model)),
    # -- configs ---------------------------------------------------------------------------------
    Row("train-config-unknown-key", TRAIN + " {unknown_key}", "model_kwargs.mm: unknown key; did you mean 'm'?", 1,
        (cfg_unknown_key,), absent=("{tmp}/new",)),
    Row("train-config-wrong-type", TRAIN + " {wrong_type}", "model_kwargs.m: expected an integer, got \"sixteen\"", 1,
        (cfg_wrong_type,), absent=("{tmp}/new",)),
    Row("train-config-names-code", TRAIN + " {code}", "'os:system' is outside fastai-sparse and its installed plugins", 1,
        (cfg_code,), absent=("{tmp}/new",)),
    Row("train-config-not-json", TRAIN + " {broken}", "not valid JSON (line 1", 1, (cfg_not_json,), absent=("{tmp}/new",)),
    Row("train-config-missing", TRAIN + " {tmp}/nope.json", "nope.json: no such config file", 2, absent=("{tmp}/new",)),
    Row("train-config-of-another-task", "train synthetic-shapes-cls --config {fine} --out {tmp}/new",
        "the config is for task 'synthetic-rooms-seg', not 'synthetic-shapes-cls'", 1, (cfg_fine,), absent=("{tmp}/new",)),
    Row("train-set-wrong-type", TRAIN + " {fine} --set lr=abc", 'lr: expected a number, got "abc"', 1, (cfg_fine,),
        absent=("{tmp}/new",)),
    Row("train-set-epochs-zero", TRAIN + " {fine} --set epochs=0", "epochs: must be at least 1, got 0", 1, (cfg_fine,),
        absent=("{tmp}/new",)),
    Row("train-set-without-value", TRAIN + " {fine} --set lr", "--set 'lr': expected KEY=VALUE", 1, (cfg_fine,),
        absent=("{tmp}/new",)),
    Row("train-set-index-out-of-range", TRAIN + " {fine} --set train_transforms.9.sigma=1",
        "train_transforms.9: index out of range: the list has 6 entries", 1, (cfg_fine,), absent=("{tmp}/new",)),
    Row("train-neither-task-nor-config", "train --out {tmp}/new", "name a TASK or pass --config FILE", 2,
        absent=("{tmp}/new",)),
    Row("config-unknown-model", "config synthetic-rooms-seg --set model=unet-m99", "model: unknown model 'unet-m99'", 1),
    Row("config-unknown-task", "config synthetic-roms-seg", "unknown task 'synthetic-roms-seg'", 1),
]  # fmt: skip


def test_rows_have_unique_ids():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_runs_catalogue(row: Row, tmp_path, monkeypatch):
    monkeypatch.delenv("FASTAI_SPARSE_DEBUG", raising=False)
    names: dict[str, str] = {"tmp": str(tmp_path)}
    for build in row.build:
        names.update(build(tmp_path) or {})
    args = [word.format(**names) for word in shlex.split(row.args)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(main, args, catch_exceptions=False)
    shown = f"$ fastai-sparse {' '.join(args)}\n--- stdout\n{res.stdout}--- stderr\n{res.stderr}"
    assert res.exit_code == row.code, shown
    assert row.fragment.format(**names) in res.stdout + res.stderr, shown
    assert "Traceback" not in res.stdout + res.stderr, shown
    if row.code == 1:
        assert len([ln for ln in res.stderr.splitlines() if ln.startswith("Error: ")]) == 1, shown
    for path in row.absent:
        assert not Path(path.format(**names)).exists(), shown
