"""A run is reproducible from its own record: config.json holds everything it depends on, and
`train --config` of a finished run gives the same weights bit for bit (CPU, one thread)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from click.testing import CliRunner

from fastai_sparse.cli import main
from fastai_sparse.errors import FastaiSparseError
from fastai_sparse.training import train_task

from .conftest import SMALL

SMALL_SETS = ["dataset.options.n=4", "dataset.options.points=1500", "epochs=2", "bs=2"]


def tensors(run):
    from safetensors.torch import load_file

    return load_file(run / "model" / "model.safetensors")


def identical(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def set_args(assignments) -> list[str]:
    return [word for a in assignments for word in ("--set", a)]


def cli(*args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CliRunner().invoke(main, list(args))


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_run_record_holds_the_whole_configuration(rooms_task, tmp_path):
    res = train_task(
        rooms_task, out=tmp_path / "run", epochs=1, bs=2, seed=5, quiet=True, dataset_kwargs=SMALL
    )
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg == json.loads(json.dumps(res["config"]))
    assert cfg["task"] == "synthetic-rooms-seg" and (cfg["epochs"], cfg["bs"], cfg["seed"]) == (1, 2, 5)
    assert cfg["dataset"]["name"] == "synthetic-rooms" and cfg["dataset"]["options"]["n"] == 4
    assert cfg["train_transforms"][2] == {
        "type": "RandomRotate",
        "axis": "z",
        "angle": [0.0, 6.283185307179586],
    }
    assert (
        cfg["voxelizer"]["type"] == "Voxelizer"
        and cfg["model"] == "unet-m16"
        and cfg["model_kwargs"]["m"] == 16
    )
    assert cfg["head"] == "seg-linear" and cfg["loss"].endswith("CrossEntropyLoss")
    assert cfg["optimizer"]["name"] == "adam" and cfg["schedule"]["name"] == "one-cycle"
    assert {"fastai-sparse", "torch", "fastai", "numpy", "python", "plugins"} <= set(cfg["versions"])
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"] == "config.json" and run["finished_epochs"] == 1
    model_doc = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert model_doc["config"] == cfg and model_doc["config_source"] == "run"
    assert model_doc["metrics"] == run["history"][-1]


def test_rerunning_a_finished_runs_config_gives_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a run with changed components (so they are constructed from the config, not reused) ...
    sets = [*SMALL_SETS, "train_transforms.0.sigma=0.08", "model_kwargs.m=8", "optimizer.wd=0.05"]
    first = cli("train", "synthetic-rooms-seg", *set_args(sets), "--out", "a", "--quiet")
    assert first.exit_code == 0, first.output
    # ... run again from its own record, from the command line and from Python
    again = cli("train", "--config", "a/config.json", "--out", "b", "--quiet")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads(first.stdout)
    train_task(config=tmp_path / "a" / "config.json", out=tmp_path / "c", quiet=True)
    a, b, c = (tensors(tmp_path / r) for r in "abc")
    assert identical(a, b) and identical(a, c)
    cfg_a, cfg_b = (json.loads((tmp_path / r / "config.json").read_text()) for r in "ab")
    assert cfg_a == cfg_b
    # the configuration matters: one value changed, other weights
    other = cli(
        "train",
        "--config",
        "a/config.json",
        "--set",
        "train_transforms.0.sigma=0.02",
        "--out",
        "d",
        "--quiet",
    )
    assert other.exit_code == 0, other.output
    assert not identical(a, tensors(tmp_path / "d"))


def test_train_config_options_and_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = cli("config", "synthetic-rooms-seg", *set_args(SMALL_SETS))
    assert cfg.exit_code == 0
    (tmp_path / "small.json").write_text(cfg.stdout)
    wrong = cli("train", "synthetic-shapes-cls", "--config", "small.json")
    assert (
        wrong.exit_code == 1
        and "the config is for task 'synthetic-rooms-seg', not 'synthetic-shapes-cls'" in wrong.stderr
    )
    bad = cli("train", "--config", "small.json", "--set", "model_kwargs.mm=3", "--out", "x")
    assert bad.exit_code == 1 and bad.stderr.startswith(
        "Error: model_kwargs.mm: unknown key; did you mean 'm'?"
    )
    assert not (tmp_path / "x").exists()  # nothing written before the config is known to be good
    (tmp_path / "broken.json").write_text(cfg.stdout.replace('"m": 16', '"m": "sixteen"'))
    broken = cli("train", "--config", "broken.json", "--out", "x")
    assert broken.exit_code == 1 and broken.stderr.startswith(
        "Error: broken.json: model_kwargs.m: expected an integer"
    )
    neither = cli("train")
    assert neither.exit_code == 2 and "name a TASK or pass --config FILE" in neither.output


@pytest.mark.slow
def test_resume_keeps_the_recorded_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from fastai.callback.core import Callback

    class Interrupt(Callback):
        order = 200

        def after_epoch(self):
            if self.epoch == 0:
                raise KeyboardInterrupt

    sets = [*SMALL_SETS, "model_kwargs.m=8"]
    overrides = dict(s.split("=") for s in sets)
    overrides = {k: json.loads(v) for k, v in overrides.items()}
    with pytest.raises(KeyboardInterrupt):
        train_task(
            config={"task": "synthetic-rooms-seg"},
            overrides=overrides,
            out="cut",
            quiet=True,
            cbs=[Interrupt()],
        )
    # resuming by task name alone continues the recorded run (m=8), not the task's defaults
    res = cli("train", "synthetic-rooms-seg", "--out", "cut", "--resume", "--quiet")
    assert res.exit_code == 0, res.output
    assert (
        json.loads((tmp_path / "cut" / "model" / "config.json").read_text())["config"]["model_kwargs"]["m"]
        == 8
    )
    clash = cli("train", "synthetic-rooms-seg", "--out", "cut", "--resume", "--set", "model_kwargs.m=16")
    assert (
        clash.exit_code == 1
        and "started with model_kwargs.m=8; resuming with model_kwargs.m=16" in clash.stderr
    )
    with pytest.raises(FastaiSparseError, match="started with epochs=2"):
        train_task(config="cut/config.json", out="cut", resume=True, epochs=3)
