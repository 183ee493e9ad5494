"""Experiment logging (``--log``): TensorBoard event files and an offline W&B run read back,
the CSV tables, the record of which loggers ran, and the errors for unknown or missing loggers."""

from __future__ import annotations

import csv
import json
import math

import pytest
from click.testing import CliRunner

from fastai_sparse.cli import main
from fastai_sparse.errors import ConfigError
from fastai_sparse.loggers import LoggerError, MissingLoggerError, parse_loggers


def one_cycle(
    pct: float, lr: float = 1e-2, div: float = 25.0, div_final: float = 1e5, pct_start: float = 0.25
):
    """fastai's one-cycle learning rate at training progress ``pct``, written out by hand:
    cosine from lr/div up to lr over pct_start, then cosine down to lr/div_final."""

    def cos(start, end, pos):
        return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2

    if pct < pct_start:
        return cos(lr / div, lr, pct / pct_start)
    return cos(lr, lr / div_final, (pct - pct_start) / (1 - pct_start))


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6, abs=1e-9)


@pytest.mark.slow
def test_tensorboard_and_csv_logs_read_back(small_run):
    pytest.importorskip(
        "tensorboard", reason='tensorboard not installed: pip install "fastai-sparse[tensorboard]"'
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = small_run("tb", overrides={"epochs": 2}, loggers="csv,tensorboard")
    out = result["out"]
    run = json.loads((out / "run.json").read_text())
    assert run["loggers"] == {
        "csv": {"files": ["history.csv", "schedule.csv", "iou_per_class.csv"]},
        "tensorboard": {"log_dir": "tensorboard"},
    }
    assert json.loads((out / "config.json").read_text())["loggers"] == ["csv", "tensorboard"]

    ea = EventAccumulator(str(out / "tensorboard"))
    ea.Reload()
    # the learning-rate schedule: one value per training batch (2 epochs x 2 batches)
    lrs = [(e.step, e.value) for e in ea.Scalars("lr_0")]
    assert [s for s, _ in lrs] == [0, 1, 2, 3]
    for step, value in lrs:
        assert value == pytest.approx(one_cycle(step / 4), rel=1e-5)
    sched = _csv(out / "schedule.csv")
    assert [int(r["iteration"]) for r in sched] == [0, 1, 2, 3]
    assert [float(r["lr_0"]) for r in sched] == pytest.approx([v for _, v in lrs], rel=1e-6)
    # per-epoch metrics and the per-class IoU table, after each epoch (steps 2 and 4)
    classes = list(result["learner"].dls.target_type.classes)
    table = _csv(out / "iou_per_class.csv")
    assert [int(r["epoch"]) for r in table] == [0, 1]
    for epoch, (row, hist) in enumerate(zip(table, run["history"])):
        step = 2 * (epoch + 1)
        ious = {c: float(row[c]) for c in classes}
        for c in classes:
            tb = {e.step: e.value for e in ea.Scalars(f"iou_per_class/{c}")}
            assert _same(tb[step], ious[c])
        finite = [v for v in ious.values() if not math.isnan(v)]
        assert sum(finite) / len(finite) == pytest.approx(hist["miou"], rel=1e-9)  # the epoch's mIoU
        assert {e.step: e.value for e in ea.Scalars("valid_loss")}[step] == pytest.approx(hist["valid_loss"])
    assert "iou_per_class/text_summary" in ea.Tags()["tensors"]
    assert len(_csv(out / "history.csv")) == 2


@pytest.mark.slow
def test_wandb_offline_run_read_back(small_run, monkeypatch, tmp_path):
    pytest.importorskip("wandb", reason='wandb not installed: pip install "fastai-sparse[wandb]"')
    from .wandb_records import history, read_records, run_record

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    result = small_run("wb", overrides={"epochs": 2}, loggers=["wandb"])
    out = result["out"]
    record = json.loads((out / "run.json").read_text())["loggers"]
    assert set(record) == {"wandb"} and record["wandb"]["mode"] == "offline"
    assert not (out / "history.csv").exists()  # csv was not asked for
    files = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1 and files[0].name == f"run-{record['wandb']['id']}.wandb"
    records = read_records(files[0])
    run = run_record(records)
    assert run.run_id == record["wandb"]["id"] and run.project == "fastai-sparse"
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["task"] == "synthetic-rooms-seg" and config["loggers"] == ["wandb"]
    rows = history(records)
    lrs = [float(r["lr_0"]) for r in rows if "lr_0" in r]
    assert lrs == pytest.approx([one_cycle(i / 4) for i in range(4)], rel=1e-5)
    runs = json.loads((out / "run.json").read_text())["history"]
    epochs = [r for r in rows if "iou_per_class/floor" in r]
    assert len(epochs) == 2
    for row, hist in zip(epochs, runs):
        assert float(row["miou"]) == pytest.approx(hist["miou"])
        ious = [
            float(json.loads(row[f"iou_per_class/{c}"])) for c in result["learner"].dls.target_type.classes
        ]
        finite = [v for v in ious if not math.isnan(v)]
        assert sum(finite) / len(finite) == pytest.approx(hist["miou"], rel=1e-9)
        # the wandb.Table: W&B flattens its reference into iou_per_class_table/*; read the file back
        assert json.loads(row["iou_per_class_table/_type"]) == "table-file"
        table = json.loads(
            (files[0].parent / "files" / json.loads(row["iou_per_class_table/path"])).read_text()
        )
        assert table["columns"] == ["class", "iou"]
        assert [c for c, _ in table["data"]] == list(result["learner"].dls.target_type.classes)
        assert [v for _, v in table["data"]] == pytest.approx(ious, nan_ok=True)


def test_logger_names_are_checked():
    assert parse_loggers(" CSV, tensorboard,csv") == ["csv", "tensorboard"]
    assert parse_loggers(None) == ["csv"] and parse_loggers("") == []
    with pytest.raises(LoggerError, match="unknown logger 'tensorbord'; did you mean 'tensorboard'"):
        parse_loggers("csv,tensorbord")
    res = CliRunner().invoke(main, ["train", "synthetic-rooms-seg", "--log", "csv,mlflow"])
    assert res.exit_code == 2
    assert "Invalid value for '--log': unknown logger 'mlflow'; known: csv, tensorboard, wandb" in res.output
    from fastai_sparse import get_task
    from fastai_sparse.config import apply_overrides

    cfg = get_task("synthetic-rooms-seg").config()
    assert cfg["loggers"] == ["csv"]
    with pytest.raises(ConfigError, match=r"^loggers: unknown logger 'neptune'"):
        apply_overrides(cfg, ['loggers=["csv", "neptune"]'])
    with pytest.raises(ConfigError, match=r"^loggers: expected a list of logger names"):
        apply_overrides(cfg, ["loggers=csv"])


@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_a_missing_logger_package_is_one_line_naming_the_extra(name, monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda mod, *a: None if mod == name else real(mod, *a))
    out = tmp_path / "run"
    res = CliRunner().invoke(
        main, ["train", "synthetic-rooms-seg", "--out", str(out), "--log", f"csv,{name}"]
    )
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        f'Error: --log {name} needs the {name} package: pip install "fastai-sparse[{name}]"'
    ]
    assert not out.exists()  # refused before anything was written
    from fastai_sparse.loggers import logger_callbacks

    with pytest.raises(MissingLoggerError):
        logger_callbacks([name], tmp_path)
