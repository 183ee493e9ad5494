"""One prediction path: ``learn.predict``, ``Predictor`` and ``fastai-sparse predict`` read a user's
file the same way, with the task's ``read_input``, for a task whose reader differs from the
default one.

The task reads rooms as six-column text ``x y z r g b``. The default reader
(:func:`fastai_sparse.io.load`) reads the same file as ``x y z nx ny nz``: colours would become
normals and the model, which needs ``rgb``, would see none.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from click.testing import CliRunner

from fastai_sparse import Mesh, PluginError, PointCloud, Segmentation, Task, Voxelizer, hookimpl, io
from fastai_sparse.cli import main
from fastai_sparse.learner import load_input
from fastai_sparse.plugins import discover
from fastai_sparse.prediction import Predictor
from fastai_sparse.registry import Registry

from .learner_helpers import CLASSES, make_cloud


def read_rgb_text(path) -> PointCloud:
    """The task's reader: ``x y z r g b`` per line (colours 0-255)."""
    table = np.loadtxt(path, ndmin=2)
    return PointCloud(table[:, :3], {"rgb": table[:, 3:6].astype(np.float32)}, meta={"path": str(path)})


def rooms(split="train", root=None):
    return [make_cloud(i + (0 if split == "train" else 100), n=200) for i in range(2)]


TASK = Task(
    name="rgb-text-seg",
    target=Segmentation(CLASSES),
    dataset=rooms,
    voxelizer=Voxelizer(scale=8, features=("rgb",)),
    model="unet-small",
    read_input=read_rgb_text,
)


@pytest.fixture
def registry_with_task(monkeypatch):
    """The default registry holds the task (as if its plugin were installed)."""
    from fastai_sparse import registry

    plugin = types.ModuleType("rgbtext")
    plugin.register_tasks = hookimpl(lambda register: register(TASK))
    plugin.register_tasks.__name__ = "register_tasks"
    reg = Registry.from_plugins(discover(set(), extra=[("rgbtext", plugin)]), warn=False)
    monkeypatch.setattr(registry, "_default", reg)
    return reg


@pytest.fixture
def room_file(tmp_path):
    cloud = make_cloud(7, n=300)
    path = tmp_path / "room.txt"
    np.savetxt(path, np.c_[cloud.xyz, cloud.attrs["rgb"]], fmt="%.6f")
    return path


def test_learn_predictor_and_cli_read_a_file_with_the_tasks_reader(registry_with_task, room_file, tmp_path):
    # the default reader would read these colours as normals, with no rgb for the model
    default = io.load(room_file)
    assert "rgb" not in default.attrs and "normals" in default.attrs

    dls = TASK.dataloaders(bs=2, path=tmp_path)
    learn = TASK.learner(dls)
    assert learn.read_input is read_rgb_text
    from_file = learn.predict(room_file)
    from_cloud = learn.predict(read_rgb_text(room_file))
    np.testing.assert_allclose(from_file.cloud.attrs["rgb"], np.loadtxt(room_file)[:, 3:], atol=1e-5)
    np.testing.assert_allclose(from_file.logits, from_cloud.logits, rtol=1e-5, atol=1e-6)

    weights = learn.save_weights(tmp_path / "model.pth")
    by_predictor = Predictor.from_weights(TASK, weights).predict(room_file, tta=1)
    np.testing.assert_allclose(by_predictor.logits, from_file.logits, rtol=1e-4, atol=1e-5)

    out = tmp_path / "labels.txt"
    res = CliRunner().invoke(
        main, ["predict", TASK.name, "--model", str(weights), str(room_file), "-o", str(out), "--tta", "1"]
    )
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(np.loadtxt(out, dtype=np.int64), from_file.labels)


def test_a_reader_that_returns_no_cloud_is_named():
    def read_nothing(path):
        return None

    with pytest.raises(PluginError, match=r"read_input .*read_nothing returned NoneType for 'x.txt'"):
        load_input("x.txt", read_nothing)


def test_clouds_and_meshes_are_used_as_they_are():
    cloud = make_cloud(0, n=10)
    assert load_input(cloud, read_rgb_text) == (cloud, cloud)
    mesh = Mesh(np.eye(3, dtype=np.float32), np.array([[0, 1, 2]]))
    points, original = load_input(mesh, read_rgb_text)
    assert original is mesh and isinstance(points, PointCloud)
    np.testing.assert_array_equal(points.xyz, mesh.vertices)
