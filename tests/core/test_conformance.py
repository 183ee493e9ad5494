"""The conformance kit: passes the example plugin (its author's three-line test file, run as
they would run it), and fails deliberately broken plugins with messages that say what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fastai_sparse import Factory, PointCloud, Segmentation, Task, Voxelizer
from fastai_sparse.errors import ConformanceError
from fastai_sparse.testing import check_plugin

from ..conftest import EXAMPLE_PLUGIN
from .plugin_factory import make_plugin


def test_example_plugin_test_file_passes_as_its_author_runs_it(example_plugin_dir, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(example_plugin_dir), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::FutureWarning",
            str(EXAMPLE_PLUGIN / "test_example_plugin.py"),
            "--rootdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_check_plugin_summary(example_plugin_on_path):
    summary = check_plugin("example")
    assert summary["registered"] == {"dataset": ["example-blobs"], "task": ["example-blobs-seg"]}
    train = summary["tasks"]["example-blobs-seg"]["train"]
    assert train["outputs"] == [train["points"], 2]


def blobs(split="train", root=None, n=2, bad=None):
    rng = np.random.default_rng(0)
    clouds = []
    for _ in range(n):
        xyz = rng.uniform(0, 1, (200, 3))
        labels = (xyz[:, 2] > 0.5).astype(np.int64)
        if bad == "labels":
            labels[:5] = 7  # outside the 2 classes
        clouds.append(PointCloud(xyz, {"labels": labels}, meta={"path": f"blob-{split}.ply"}))
    return [] if bad == "empty" else clouds


def task_plugin(name, **task_kw):
    def register_tasks(register):
        kw = dict(
            name="bad-task",
            dataset=Factory("x", blobs),
            target=Segmentation(["low", "high"]),
            voxelizer=Voxelizer(scale=10, features=("ones",)),
            model="unet-small",
        )
        kw.update(task_kw)
        register(Task(**kw))

    return make_plugin(name, register_tasks=register_tasks)


@pytest.mark.parametrize(
    "plugin, message",
    [
        (make_plugin("nothing"), "registered nothing"),
        (make_plugin("typo", register_task=lambda register: None), "did you mean 'register_tasks'"),
        (
            make_plugin(
                "lazy", register_models=lambda register: register(Factory("lazy-net", "no_such_pkg.mod:Net"))
            ),
            "model 'lazy-net': its factory 'no_such_pkg.mod:Net' cannot be imported",
        ),
        (task_plugin("empty", dataset=Factory("x", blobs, bad="empty")), "the train dataset is empty"),
        (
            task_plugin("labels", dataset=Factory("x", blobs, bad="labels")),
            "train item 0 does not pass its pipeline (DataFormatError: blob-train.ply",
        ),
        (
            task_plugin("feats", voxelizer=Voxelizer(scale=10, features=("rgb",))),
            "does not pass its pipeline",
        ),
        (
            task_plugin("model", model="no-such-model"),
            "building model 'no-such-model' + head 'seg-linear' failed",
        ),
        (task_plugin("head", head="cls-pool"), "model output must be [400, 2] (one row per point"),
        (task_plugin("root", needs_root=True), "needs a data root but defines no `fixture`"),
        (task_plugin("metric", metrics=["miou", "no-such-metric"]), "building its metrics failed"),
    ],
    ids=lambda v: v.__name__ if hasattr(v, "__name__") else None,
)
def test_check_plugin_fails_bad_plugins_with_a_clear_message(plugin, message):
    with pytest.raises(ConformanceError) as exc:
        check_plugin(plugin)
    assert message in str(exc.value), str(exc.value)
