"""What a training run records besides its weights: every epoch's IoU per class (run.json,
iou_per_class.csv, metrics.json) and the CPU threads it ran with and why."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fastai_sparse.metrics import confusion_matrix, iou_from_confusion


def test_per_class_tables_of_every_epoch(trained_rooms, rooms_task):
    out, learn = trained_rooms["out"], trained_rooms["learner"]
    run = json.loads((out / "run.json").read_text())
    names = list(rooms_task.class_names)
    tables = [h["iou_per_class"] for h in run["history"]]
    assert len(tables) == 2 and all(list(t) == names for t in tables)
    rows = list(csv.reader((out / "iou_per_class.csv").open()))  # written by fastai_sparse.loggers
    assert rows[0] == ["epoch", *names] and [r[0] for r in rows[1:]] == ["0", "1"]
    for row, table in zip(rows[1:], tables):
        assert [float(c) for c in row[1:]] == pytest.approx(
            [np.nan if table[n] is None else table[n] for n in names], abs=1e-6, nan_ok=True
        )
    # the last table is the final model's, measured again here from its predictions
    preds, targs = learn.get_preds()
    ref = iou_from_confusion(confusion_matrix(preds, targs, len(names), rooms_task.target.ignore_index))
    last = tables[-1]
    assert [np.nan if last[n] is None else last[n] for n in names] == pytest.approx(list(ref), nan_ok=True)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["iou_per_class"] == last


def test_run_json_says_which_threads_and_why(trained_rooms):
    run = json.loads((trained_rooms["out"] / "run.json").read_text())
    t = run["threads"]
    assert t["threads"] >= 1 and t["line"].startswith(f"threads: {t['threads']} of ")
    assert t["source"] in ("asked", "env", "policy", "torch") and t["reason"]
