"""Configurations: every registered task round-trips through its config, components rebuilt from
their parameters behave like the originals, overrides change what they name, bad keys and values
are one-line errors naming the key, and only known classes are ever constructed."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from fastai_sparse import get_task, list_tasks
from fastai_sparse.config import (
    CONFIG_FORMAT,
    apply_overrides,
    build_component,
    component_config,
    load_config,
    optimizer_func,
    resolve_config,
    resolve_optimizer,
    resolve_schedule,
)
from fastai_sparse.errors import ConfigError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.transforms import Transform
from fastai_sparse.voxelize import Voxelizer

TASKS = list_tasks()


def as_json(obj):
    return json.loads(json.dumps(obj))


def without_versions(cfg):
    return {k: v for k, v in cfg.items() if k != "versions"}


def sample_cloud(n=300, seed=0):
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return PointCloud(
        rng.uniform(0, 2, size=(n, 3)),
        attrs={
            "rgb": rng.uniform(0, 255, size=(n, 3)).astype(np.float32),
            "normals": normals.astype(np.float32),
            "labels": rng.integers(0, 3, n),
        },
    )


@pytest.mark.parametrize("name", TASKS)
def test_every_registered_task_round_trips(name):
    task = get_task(name)
    cfg = task.config()
    assert cfg["format"] == CONFIG_FORMAT and cfg["task"] == name
    for key in ("fastai-sparse", "torch", "fastai", "python", "plugins"):
        assert key in cfg["versions"]
    doc, again = resolve_config(as_json(cfg))  # through JSON, as from a file
    assert again is task  # nothing changed: the registered object itself, not a copy
    assert without_versions(doc) == without_versions(as_json(cfg))


@pytest.mark.parametrize("name", TASKS)
def test_components_rebuilt_from_parameters_behave_the_same(name):
    """Each transform and the voxelizer, constructed from its config entry alone, writes the
    same entry back and maps a cloud exactly as the task's own object does."""
    task = get_task(name)
    cfg = as_json(task.config())
    for key in ("train_transforms", "valid_transforms"):
        for i, (entry, original) in enumerate(zip(cfg[key], getattr(task, key))):
            built = build_component(entry, f"{key}.{i}", Transform)
            assert type(built) is type(original) and repr(built) == repr(original)
            assert component_config(built, "x") == entry
            try:
                a = original(sample_cloud(), np.random.default_rng(7))
            except Exception as e:  # a transform needing attributes this cloud lacks
                with pytest.raises(type(e)):
                    built(sample_cloud(), np.random.default_rng(7))
                continue
            b = built(sample_cloud(), np.random.default_rng(7))
            np.testing.assert_array_equal(a.xyz, b.xyz)
            assert a.attrs.keys() == b.attrs.keys()
            for k in a.attrs:
                np.testing.assert_array_equal(a.attrs[k], b.attrs[k])
    vox = build_component(cfg["voxelizer"], "voxelizer", Voxelizer)
    assert repr(vox) == repr(task.make_voxelizer())


def test_overrides_change_what_they_name():
    task = get_task("synthetic-rooms-seg")
    cfg = apply_overrides(
        task.config(),
        ["model_kwargs.m=32", "train_transforms.0.sigma=0.07", "lr=0.02", "dataset.options.n=8"],
    )
    assert cfg["model_kwargs"]["m"] == 32 and cfg["train_transforms"][0] == {
        "type": "RandomAffineNoise",
        "sigma": 0.07,
    }
    _, changed = resolve_config(cfg)
    assert changed.model_kwargs == {"m": 32} and changed.defaults["lr"] == 0.02
    assert repr(changed.train_transforms[0]) == "RandomAffineNoise(sigma=0.07)"
    assert changed.train_transforms[1:] == task.train_transforms[1:]  # the others are the task's own objects
    assert changed.dataset_factory()(split="train").n == 8
    # print(task) shows the changes; the registered task is untouched
    assert "'unet-m16' {'m': 32}" in repr(changed) and task.model_kwargs == {}
    small, big = (t.build_model(3) for t in (task, changed))
    assert sum(p.numel() for p in big.parameters()) > 3 * sum(p.numel() for p in small.parameters())


def test_python_values_and_task_replace():
    task = get_task("synthetic-rooms-seg")
    cfg = apply_overrides(
        task.config(), {"voxelizer.scale": 10, "optimizer.wd": 0.1, "schedule.name": "flat-cos"}
    )
    _, changed = resolve_config(cfg)
    assert changed.make_voxelizer().scale == 10.0
    assert changed.defaults["optimizer"]["wd"] == 0.1 and changed.defaults["schedule"]["name"] == "flat-cos"
    assert cfg["schedule"] == {"name": "flat-cos", "pct_start": 0.75, "div_final": 100000.0}
    copy = task.replace(model="unet-small", defaults={"epochs": 2})
    assert (
        copy.model == "unet-small"
        and copy.defaults["epochs"] == 2
        and copy.defaults["bs"] == task.defaults["bs"]
    )
    assert task.model == "unet-m16"


def test_changing_a_name_resets_what_depends_on_it():
    task = get_task("synthetic-rooms-seg")
    cfg = apply_overrides(task.config(), ["model=unet-small", "train_transforms.0.type=Jitter"])
    assert (
        cfg["model_kwargs"] == resolve_config({"task": task.name, "model": "unet-small"})[0]["model_kwargs"]
    )
    assert cfg["train_transforms"][0] == {"type": "Jitter", "sigma": 0.01, "clip": 0.05}
    cfg = apply_overrides(task.config(), ["model=unet-small", "model_kwargs.m=12"])  # unless set too
    assert cfg["model_kwargs"]["m"] == 12


def test_partial_config_takes_the_task_for_the_rest(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(
        json.dumps({"task": "synthetic-rooms-seg", "epochs": 3, "dataset": {"options": {"n": 4}}})
    )
    doc, task = resolve_config(load_config(path), source=path)
    assert doc["epochs"] == 3 and doc["bs"] == 4 and doc["dataset"]["options"]["points"] == 8000
    assert task.defaults["epochs"] == 3
    assert get_task("synthetic-rooms-seg").from_config(path).defaults["epochs"] == 3


BAD = [
    ("model_kwargs.mm=3", "model_kwargs.mm: unknown key; did you mean 'm'?"),
    ("foo=1", "foo: unknown key"),
    ("dataset.options.nn=3", "dataset.options.nn: unknown key; did you mean 'n'?"),
    ("train_transforms.9.sigma=1", "train_transforms.9: index out of range: the list has 6 entries"),
    ("train_transforms.0.sigmaa=1", "train_transforms.0.sigmaa: unknown key; did you mean 'sigma'?"),
    ("train_transforms.0.sigma=abc", 'train_transforms.0.sigma: expected a number, got "abc"'),
    ("train_transforms.1.axes=[1.5]", "train_transforms.1.axes: expected Sequence[str], got [1.5]"),
    ('train_transforms.1.axes=["q"]', "train_transforms.1: RandomFlip: unknown axis 'q'"),
    ("lr=abc", 'lr: expected a number, got "abc"'),
    ("lr=0", "lr: must be > 0, got 0"),
    ("epochs=0", "epochs: must be at least 1, got 0"),
    ("epochs=1.5", "epochs: expected an integer, got 1.5"),
    ("bs=true", "bs: expected an integer, got true"),
    ("seed=-1", "seed: must be at least 0, got -1"),
    ("dataset.options.size=[1,2,3]", "dataset.options.size: expected tuple[float, float], got [1, 2, 3]"),
    ("model=unet-m99", "model: unknown model 'unet-m99'; did you mean"),
    ("head=seg-linaer", "head: unknown head 'seg-linaer'; did you mean 'seg-linear'"),
    ("metrics.0=mIoU", "metrics.0: unknown metric 'mIoU'; did you mean 'miou'?"),
    ("optimizer.name=adamw", "optimizer.name: unknown optimizer 'adamw'; did you mean 'adam'"),
    ("optimizer.momentum=0.9", "optimizer.momentum: unknown key"),
    ("schedule.name=cosine", "schedule.name: unknown schedule 'cosine'"),
    ("schedule.pct_start=2", "schedule: schedule 'one-cycle': pct_start must be in [0, 1], got 2.0"),
    ("voxelizer.type=Voxeliser", "voxelizer.type: no Voxelizer named 'Voxeliser'; did you mean 'Voxelizer'?"),
    ("voxelizer.mode=median", "voxelizer: Voxelizer: mode must be one of"),
    ('target.classes=["a"]', "target.classes: is fixed by task 'synthetic-rooms-seg'"),
    ("loss=mse", "loss: is fixed by task 'synthetic-rooms-seg'"),
    ("lr", "--set 'lr': expected KEY=VALUE"),
]


@pytest.mark.parametrize("assignment, message", BAD, ids=[b[0] for b in BAD])
def test_bad_keys_and_values_are_one_line_errors(assignment, message):
    task = get_task("synthetic-rooms-seg")
    with pytest.raises(ConfigError) as err:
        apply_overrides(task.config(), [assignment])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_errors_in_a_file_name_the_file(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"task": "synthetic-rooms-seg", "model_kwargs": {"m": "big"}}))
    with pytest.raises(ConfigError, match=rf"^{path}: model_kwargs.m: expected an integer"):
        get_task("synthetic-rooms-seg").from_config(path)
    path.write_text('{"task": "synthetic-rooms-seg",')
    with pytest.raises(ConfigError, match=rf"^{path}: not valid JSON \(line 1, column"):
        load_config(path)
    path.write_text(json.dumps({"task": "no-such-task"}))
    with pytest.raises(ConfigError, match=rf"^{path}: task: unknown task 'no-such-task'"):
        resolve_config(load_config(path), source=path)
    path.write_text(json.dumps({"format": "other/2", "task": "synthetic-rooms-seg"}))
    with pytest.raises(ConfigError, match="format: expected 'fastai-sparse-config/1'"):
        resolve_config(load_config(path))
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"task": "synthetic-rooms-seg", "epochs": 2, "finished_epochs": 2}))
    with pytest.raises(ConfigError, match=r"a run record without a config\.json beside it"):
        load_config(run)


@pytest.mark.parametrize(
    "name",
    [
        "os:system",
        "builtins:eval",
        "subprocess:Popen",
        "fastai_sparse.cli:main",
        "fastai_sparse.config:load_config",
    ],
)
def test_a_config_constructs_only_known_classes(name):
    entry = {"task": "synthetic-rooms-seg", "train_transforms": [{"type": name, "command": "touch /tmp/x"}]}
    with pytest.raises(
        ConfigError, match=r"train_transforms.0.type: .*(outside fastai-sparse|not a Transform)"
    ):
        resolve_config(entry)


def test_a_module_outside_the_packages_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_transforms.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from fastai_sparse.transforms import Transform\n"
        "class Evil(Transform):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="outside fastai-sparse and its installed plugins"):
        resolve_config(
            {"task": "synthetic-rooms-seg", "valid_transforms": [{"type": "evil_transforms:Evil"}]}
        )
    assert not marker.exists()


def test_a_voxelizer_entry_must_name_a_voxelizer():
    with pytest.raises(ConfigError, match=r"'fastai_sparse\.transforms:Jitter' is not a Voxelizer class"):
        resolve_config(
            {"task": "synthetic-rooms-seg", "voxelizer": {"type": "fastai_sparse.transforms:Jitter"}}
        )


def test_an_opaque_component_is_recorded_but_not_rebuilt():
    def lift(cloud, rng=None):
        return cloud.replace(xyz=cloud.xyz + 1)

    task = get_task("synthetic-rooms-seg").replace(valid_transforms=[lift])
    cfg = task.config()
    assert cfg["valid_transforms"][0]["type"].endswith(
        ":test_an_opaque_component_is_recorded_but_not_rebuilt.<locals>.lift"
    )
    assert "__python__" in cfg["valid_transforms"][0]
    _, again = resolve_config(as_json(cfg), base=task)  # unchanged: the task's own function
    assert again.valid_transforms[0] is lift
    with pytest.raises(ConfigError, match=r"valid_transforms\.0: .* cannot be rebuilt from a config"):
        resolve_config(as_json(cfg))  # against the registered task, it would have to be built


def test_optimizer_and_schedule_are_fastai_defaults():
    import fastai.optimizer

    # fastai's documented defaults: Adam(mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01), one-cycle
    # (div=25, div_final=1e5, pct_start=0.25)
    assert resolve_optimizer() == {
        "name": "adam",
        "mom": 0.9,
        "sqr_mom": 0.99,
        "eps": 1e-05,
        "wd": 0.01,
        "decouple_wd": True,
    }
    assert resolve_schedule() == {"name": "one-cycle", "pct_start": 0.25, "div": 25.0, "div_final": 100000.0}
    assert resolve_schedule("flat") == {"name": "flat", "warmup": 0.0, "div": 25.0}
    assert optimizer_func(None) is fastai.optimizer.Adam  # the default is fastai's own function
    sgd = optimizer_func({"name": "sgd", "mom": 0.9})
    assert sgd.func is fastai.optimizer.SGD and sgd.keywords == {"mom": 0.9}


def test_a_task_with_classes_from_its_data_takes_them_from_the_config():
    pytest.importorskip("fastai_sparse_classification")
    task = get_task("mesh-folder-cls")
    assert task.class_names is None
    cfg = task.with_classes(["cube", "cone"]).config()
    _, again = resolve_config(as_json(cfg))
    assert again.class_names == ["cube", "cone"]


def test_cli_config_prints_the_resolved_config():
    from fastai_sparse.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(main, ["config", "synthetic-rooms-seg", "--set", "model_kwargs.m=32"])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)
    expected = apply_overrides(get_task("synthetic-rooms-seg").config(), ["model_kwargs.m=32"])
    assert without_versions(printed) == without_versions(as_json(expected))
    bad = CliRunner().invoke(main, ["config", "synthetic-rooms-seg", "--set", "model_kwargs.mm=3"])
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: model_kwargs.mm: unknown key")
    assert "Traceback" not in bad.output
