"""Plugin registration, task construction and the conformance kit."""

from __future__ import annotations

import pytest

from fastai_sparse import get_task, list_tasks
from fastai_sparse.errors import FastaiSparseError
from fastai_sparse_classification import MODELNET10_CLASSES, MODELNET40_CLASSES
from fastai_sparse_classification.tasks import mesh_folder_task, modelnet_task


def test_tasks_are_registered():
    names = set(list_tasks())
    assert {"modelnet40-cls", "modelnet10-cls", "mesh-folder-cls", "synthetic-shapes-reg"} <= names
    assert get_task("modelnet40-cls").class_names == list(MODELNET40_CLASSES)
    assert get_task("modelnet10-cls").class_names == list(MODELNET10_CLASSES)
    t = get_task("synthetic-shapes-reg")
    assert t.target.vector and t.metric_names == ["mae", "rmse", "angle-error"]
    assert "modelnet40-cls" in repr(get_task("modelnet40-cls"))


def test_modelnet_needs_root():
    with pytest.raises(FastaiSparseError, match="root"):
        get_task("modelnet40-cls").datasets()


def test_resolution_is_configurable():
    t = modelnet_task("modelnet10", scale=40, points=1024)
    assert t.voxelizer.scale == 40 and t.dataset.defaults["points"] == 1024


def test_mesh_folder_task_takes_classes_from_root(fixture_roots):
    t = mesh_folder_task()
    assert "class folders" in repr(t)
    with pytest.raises(FastaiSparseError, match="classes from the data root"):
        _ = t.target.num_outputs
    ds = t.datasets(fixture_roots["mesh-folder"])
    assert t.class_names == ["box", "cone", "sphere"] and len(ds["train"]) == 12
    fixed = mesh_folder_task(classes=["box", "cone", "sphere", "torus"])
    assert fixed.target.num_outputs == 4


@pytest.mark.slow
def test_check_plugin():
    from fastai_sparse.testing import check_plugin

    summary = check_plugin("classification")
    assert set(summary["tasks"]) == {
        "modelnet40-cls",
        "modelnet10-cls",
        "mesh-folder-cls",
        "synthetic-shapes-reg",
    }
    assert summary["tasks"]["modelnet40-cls"]["valid"]["outputs"] == [2, 40]
    assert summary["registered"]["metric"] == ["angle-error"]
