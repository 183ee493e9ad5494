"""The conformance kit: passes the example plugin (its author's three-line test file, run as
they would run it), and fails deliberately broken plugins with messages that say what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from fastai_sparse import Factory, PointCloud, Segmentation, Task, Voxelizer
from fastai_sparse.errors import ConformanceError
from fastai_sparse.testing import check_plugin, registry_with

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


# -- contracts checked where they break (a plugin's and the object's name in every message) --


def _per_point_accuracy(pred, targ):
    """A plain metric function: the fraction of rows whose argmax is the target."""
    return (pred.argmax(1) == targ).float().mean()


def metric_plugin(name, factory, metric="my-metric"):
    def register_metrics(register):
        register(Factory(metric, factory))

    def register_tasks(register):
        register(
            Task(
                name=f"{name}-task",
                dataset=Factory("x", blobs),
                target=Segmentation(["low", "high"]),
                voxelizer=Voxelizer(scale=10, features=("ones",)),
                model="unet-small",
                metrics=["miou", metric],
            )
        )

    return make_plugin(name, register_metrics=register_metrics, register_tasks=register_tasks)


def fixture_plugin(name, fixture):
    def register_tasks(register):
        register(
            Task(
                name=f"{name}-task",
                dataset=Factory("x", blobs),
                target=Segmentation(["low", "high"]),
                voxelizer=Voxelizer(scale=10, features=("ones",)),
                model="unet-small",
                needs_root=True,
                fixture=fixture,
            )
        )

    return make_plugin(name, register_tasks=register_tasks)


def returns_nothing(directory):
    (directory / "data.txt").write_text("1 2 3\n")


def returns_a_file(directory):
    (directory / "data.txt").write_text("1 2 3\n")
    return directory / "data.txt"


@pytest.mark.parametrize(
    "plugin, message",
    [
        (
            # an encoder as a segmentation backbone: fewer voxels, at stride 4
            task_plugin("encoder", model="resnet-sparse-small"),
            "plugin 'encoder': task 'bad-task': backbone 'resnet-sparse-small' (plugin 'builtin') returned ",
        ),
        (
            metric_plugin("noiface", lambda target_type: 42),
            "plugin 'noiface': task 'noiface-task': building its metrics failed: metric 'my-metric' "
            "(plugin 'noiface') (PluginError: plugin 'noiface': metric 'my-metric': its factory "
            "returned int, which has no reset, accumulate, value",
        ),
        (
            metric_plugin("plainfn", _per_point_accuracy),
            "plugin 'plainfn': failed to load: PluginError: metric 'my-metric': its factory "
            "_per_point_accuracy(pred, targ) cannot be called as factory(target_type)",
        ),
        (
            fixture_plugin("nofix", returns_nothing),
            "plugin 'nofix': task 'nofix-task': its fixture returns_nothing returned None; a fixture "
            "writes a small dataset into the folder it is given and returns the dataset root",
        ),
        (
            fixture_plugin("filefix", returns_a_file),
            "its fixture returns_a_file returned '",
        ),
    ],
    ids=["backbone-changes-points", "metric-without-interface", "plain-function-as-factory",
         "fixture-returns-nothing", "fixture-returns-a-file"],
)  # fmt: skip
def test_broken_contracts_name_the_plugin_and_the_object(plugin, message):
    with pytest.raises(ConformanceError) as exc:
        check_plugin(plugin)
    assert message in str(exc.value), str(exc.value)


def test_backbone_that_changes_the_points_fails_at_once_in_training_too():
    from fastai_sparse.errors import ShapeError

    reg = registry_with(task_plugin("encoder", model="resnet-sparse-small"))
    task = reg.get("task", "bad-task")
    ds = task.datasets(registry=reg)["train"]
    pipe = task.pipeline(train=True)
    from fastai_sparse.batch import collate

    x, _ = collate([pipe(ds[0], np.random.default_rng(0))], task.target)
    model = task.build_model(int(x["feats"].shape[1]), registry=reg)
    with pytest.raises(
        ShapeError, match=r"backbone SparseResNet returned \d+ rows at stride 4 for \d+ input voxels"
    ):
        model(x)


def test_a_factory_returning_a_plain_function_works_as_an_epoch_metric():
    import torch

    summary = check_plugin(metric_plugin("fnmetric", lambda target_type: _per_point_accuracy))
    assert summary["registered"]["metric"] == ["my-metric"]
    reg = registry_with(metric_plugin("fnmetric", lambda target_type: _per_point_accuracy))
    m = reg.build_metric("my-metric", Segmentation(["a", "b"]))
    assert m.name == "my_metric"
    # two batches of 2 and 6 rows, 1/2 and 6/6 right: 7 of 8 rows over the epoch (not (0.5 + 1) / 2)
    m.reset()
    for pred, targ in [([[1.0, 0], [1.0, 0]], [0, 1]), ([[0, 1.0]] * 6, [1] * 6)]:
        m.accumulate(SimpleNamespace(pred=torch.tensor(pred), yb=(torch.tensor(targ),)))
    assert m.value == pytest.approx(7 / 8)


def test_function_metric_is_the_explicit_way_to_register_a_plain_function():
    from fastai_sparse.metrics import FunctionMetric, function_metric

    plugin = metric_plugin("explicit", function_metric(_per_point_accuracy, "point_acc"))
    assert check_plugin(plugin)["registered"]["metric"] == ["my-metric"]
    m = registry_with(plugin).build_metric("my-metric", Segmentation(["a", "b"]))
    assert isinstance(m, FunctionMetric) and m.name == "point_acc"


def test_unused_metric_without_interface_is_found_too():
    def register_metrics(register):
        register(Factory("lonely-metric", lambda target_type: "not a metric"))

    with pytest.raises(
        ConformanceError, match=r"plugin 'lonely': metric 'lonely-metric': its factory returned str"
    ):
        check_plugin(make_plugin("lonely", register_metrics=register_metrics))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"fixture": "fixtures/"}, "task 'bad-task': fixture must be a function fixture(directory) -> the dataset root, got str"),
        ({"read_input": 3}, "read_input must be a function read_input(path) -> PointCloud | Mesh"),
        ({"metrics": "miou"}, "metrics must be a list of registered metric names, got 'miou'"),
        ({"splits": ("train",)}, "splits must be two split names (training, validation)"),
        ({"prepare": "prepare.py"}, "prepare must be a function prepare(root, out=None, jobs=2"),
    ],
    ids=["fixture", "read_input", "metrics", "splits", "prepare"],
)  # fmt: skip
def test_task_fields_are_checked_at_registration(fields, message):
    with pytest.raises(ConformanceError) as exc:
        check_plugin(task_plugin("fields", **fields))
    assert "plugin 'fields': failed to load: PluginError: " in str(exc.value)
    assert message in str(exc.value), str(exc.value)


# -- the pytest fixtures of the kit (entry point pytest11) ------------------------------------


def test_sparse_registry_builds_a_private_registry(sparse_registry, fresh_registry):
    reg = sparse_registry(task_plugin("private"))
    assert reg.owner("task", "bad-task") == "private"
    assert "bad-task" not in fresh_registry.list_tasks()  # the process-wide registry is untouched


def test_sparse_task_root_takes_a_task_or_its_name(sparse_task_root, sparse_registry):
    def fixture(directory):
        root = directory / "data"
        (root / "rooms").mkdir(parents=True)
        (root / "rooms" / "a.txt").write_text("0 0 0\n")
        return root

    reg = sparse_registry(fixture_plugin("named", fixture))
    task = reg.get("task", "named-task")
    by_task = sparse_task_root(task)
    by_name = sparse_task_root("named-task", registry=reg)
    assert by_task != by_name  # a fresh folder each call
    for root in (by_task, by_name):
        assert root.name == "data" and (root / "rooms" / "a.txt").read_text() == "0 0 0\n"


def test_sparse_task_root_errors_are_clear(sparse_task_root, sparse_registry):
    from fastai_sparse.errors import UnknownNameError

    reg = sparse_registry(fixture_plugin("nofix", returns_nothing))
    with pytest.raises(ConformanceError, match="its fixture returns_nothing returned None"):
        sparse_task_root("nofix-task", registry=reg)
    with pytest.raises(UnknownNameError, match="no-such-task"):
        sparse_task_root("no-such-task", registry=reg)
    with pytest.raises(ConformanceError, match="defines no `fixture`"):
        sparse_task_root(reg.get("task", "synthetic-rooms-seg"))
    with pytest.raises(TypeError, match="expected a Task or a task name, got int"):
        sparse_task_root(3)
