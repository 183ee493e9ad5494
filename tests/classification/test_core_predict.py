"""Core's `fastai-sparse predict` on classification tasks: mesh inputs are sampled on their surface
(the task's read_input), and a task whose classes come from its folders takes them from the weights."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("fastai_sparse_classification")

from fastai_sparse import get_task
from fastai_sparse.cli import main
from fastai_sparse_classification.fixtures import make_fixture


def save_weights(task, path):
    model = task.build_model(4)  # features: ones + normals
    torch.save(
        {
            "format": "fastai-sparse-weights/1",
            "task": task.name,
            "class_names": task.class_names,
            "model": "SparseModel",
            "state_dict": model.state_dict(),
        },
        path,
    )
    return path


def test_mesh_folder_prediction_takes_classes_from_the_weights(tmp_path):
    root = make_fixture(tmp_path / "shapes", "mesh-folder")
    task = get_task("mesh-folder-cls")
    assert task.class_names is None  # unknown until a root or weights are given
    trained = task.with_classes(sorted(p.name for p in root.iterdir() if p.is_dir()))
    weights = save_weights(trained, tmp_path / "w.pth")
    mesh = next(p for p in sorted(root.rglob("*.off")))
    res = CliRunner().invoke(
        main,
        [
            "predict",
            "mesh-folder-cls",
            "--model",
            str(weights),
            str(mesh),
            "-o",
            str(tmp_path / "out.json"),
            "--tta",
            "1",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    payload = json.loads((tmp_path / "out.json").read_text())
    assert payload["label"] in trained.class_names
    assert payload["top"][0]["class"] == payload["label"]


def test_meshes_are_sampled_on_their_surface_for_prediction(tmp_path):
    from fastai_sparse import io
    from fastai_sparse.prediction import Predictor

    root = make_fixture(tmp_path / "mn", "modelnet-off", variant="modelnet10")
    task = get_task("modelnet10-cls")
    weights = save_weights(task, tmp_path / "w.pth")
    mesh_path = next(iter(sorted(root.rglob("*.off"))))
    result = Predictor.from_weights(task, weights).predict(mesh_path, tta=1)
    assert len(result.cloud) == 2048 != len(io.load(mesh_path).vertices)
    assert result.probs.shape == (10,) and abs(result.probs.sum() - 1) < 1e-5
