"""Registered tasks, the crop, the pipelines, conformance kit, CLI prepare, a short training run
and predict round trips on fixture rooms."""

from __future__ import annotations

import warnings

import numpy as np
import plyfile
import pytest

from fastai_sparse.geometry import PointCloud
from fastai_sparse_s3dis.constants import CLASS_COLORS, CLASSES, IGNORE_INDEX
from fastai_sparse_s3dis.crop import RoomCrop

from .conftest import base


@pytest.fixture(scope="module")
def tasks():
    from fastai_sparse.testing import registry_with

    reg = registry_with("s3dis")
    return {n: reg.get("task", n) for n in reg.list("task", "s3dis*")}


@pytest.fixture(scope="module")
def prepared(s3dis_root, tmp_path_factory):
    from fastai_sparse_s3dis.prepare import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare(s3dis_root, jobs=1, quiet=True)  # the default cache, ROOT/cache
    return s3dis_root


def test_task_is_registered_with_its_options(tasks):
    assert sorted(tasks) == ["s3dis-seg"]
    t = tasks["s3dis-seg"]
    assert t.class_names == list(CLASSES) and t.target.ignore_index == IGNORE_INDEX
    np.testing.assert_array_equal(t.class_colors, CLASS_COLORS)
    assert t.label_values is None  # files hold the class index 0..12
    assert (t.voxelizer.scale, t.voxelizer.features, t.model) == (20.0, ("rgb", "height"), "unet-m16")
    # scannet-seg's measured output stage and schedule (benchmarks/bench_real_scene.py)
    assert t.model_kwargs == {"levels": 7, "output_bn_relu": False}
    assert (t.defaults["lr"], t.defaults["schedule"]) == (1e-2, "one-cycle")
    assert not t.build_model(4).backbone.output_bn_relu  # rgb + height
    elastic = [x for x in t.train_transforms if type(x).__name__ == "ElasticDistortion"]
    got = [v for x in elastic for v in (x.granularity, x.magnitude)]
    assert got == pytest.approx([0.1, 0.8, 0.4, 3.2])  # SparseConvNet's recipe at 5 cm voxels
    assert {"miou", "iou-per-class", "accuracy", "mean-class-accuracy"} == set(t.metric_names)
    assert t.dataset.defaults == {"fold": 5}
    crops = [x for x in t.train_transforms if isinstance(x, RoomCrop)]
    assert len(crops) == 1 and crops[0].extent == 6.0 and isinstance(t.train_transforms[0], RoomCrop)
    names = {type(x).__name__ for x in t.valid_transforms}
    assert names == {"FitToGrid", "NormalizeColor"}  # whole rooms, no noise at validation
    assert "validate Area 5" in t.description
    opts = {o.name: o for o in t.options}
    assert opts["fold"].parse("3") == 3 and opts["fold"].commands == ("train",)
    assert opts["bad_lines"].parse("repair") == "repair"
    assert t.parse_options(["fold=2", "bad_lines=error"], "train") == {"fold": 2, "bad_lines": "error"}
    assert t.parse_options(["bad_lines=skip"], "prepare") == {"bad_lines": "skip"}


def test_fold_option_splits_areas(tasks, s3dis_root):
    from fastai_sparse.errors import OptionError

    ds = tasks["s3dis-seg"].datasets(s3dis_root, fold=2)
    assert [i.split("/")[0] for i in ds["valid"].ids] == ["Area_2"]
    assert "Area_2" not in {i.split("/")[0] for i in ds["train"].ids} and len(ds["train"]) == 8
    ds = tasks["s3dis-seg"].datasets(s3dis_root)
    assert ds["valid"].ids == ["Area_5/hallway_6", "Area_5/office_1"]
    with pytest.raises(OptionError, match=r"option fold=7: expected 1\.\.6"):
        tasks["s3dis-seg"].datasets(s3dis_root, fold=7)


def _room(n, size, seed=0):
    rng = np.random.default_rng(seed)
    xyz = (rng.random((n, 3)) * size).astype(np.float32)
    return PointCloud(xyz, {"labels": np.arange(n)})


def test_room_crop():
    crop = RoomCrop(6.0)
    small = _room(500, [5.0, 4.0, 3.0])
    assert crop(small, np.random.default_rng(0)) is small  # fits: untouched
    big = _room(20000, [30.0, 4.0, 3.0])
    for seed in range(5):
        out = crop(big, np.random.default_rng(seed))
        ext = out.xyz.max(0) - out.xyz.min(0)
        assert ext[0] <= 6.0 and ext[0] > 5.5  # a full-width window inside the room
        assert ext[1] > 3.9 and ext[2] > 2.9  # the narrow axis and the height are kept whole
        assert out.meta["points_cropped"] == len(big) - len(out)
        np.testing.assert_array_equal(out.xyz, big.xyz[out.attrs["labels"]])  # attributes follow
    a, b = crop(big, np.random.default_rng(3)), crop(big, np.random.default_rng(3))
    np.testing.assert_array_equal(a.attrs["labels"], b.attrs["labels"])


def test_pipelines_on_fixture_rooms(tasks, prepared):
    t = tasks["s3dis-seg"]
    ds = t.datasets(prepared)
    cloud = ds["train"][0]
    s1 = t.pipeline(train=True)(cloud, np.random.default_rng(1))
    s2 = t.pipeline(train=True)(cloud, np.random.default_rng(1))
    np.testing.assert_array_equal(s1.coords, s2.coords)
    assert s1.feats.shape[1] == 4 and s1.coords.min() >= 0
    v = ds["valid"][0]
    sv = t.pipeline(train=False)(v, np.random.default_rng(0))
    assert len(sv.inverse) == len(v)  # every point of the whole room
    np.testing.assert_array_equal(sv.cloud.attrs["labels"], v.attrs["labels"])
    assert np.abs(sv.feats[:, :3]).max() <= 1.0 + 1e-6


def test_check_plugin_conformance():
    from fastai_sparse.testing import check_plugin

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the fixture's known defects are reported
        summary = check_plugin("s3dis")
    assert summary["registered"]["task"] == ["s3dis-seg"] and summary["registered"]["dataset"] == ["s3dis"]
    assert summary["tasks"]["s3dis-seg"]["train"]["outputs"][1] == 13


def test_cli_prepare(s3dis_root, tmp_path):
    import json

    from click.testing import CliRunner

    from fastai_sparse.cli import main

    out = tmp_path / "cache"
    r = CliRunner().invoke(
        main, ["prepare", "s3dis-seg", "--root", str(s3dis_root), "--out", str(out), "-j", "2"]
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert summary["prepared"] == 9 and sorted(summary["notes"]) == ["Area_5/hallway_6", "Area_6/copyRoom_1"]
    assert len(list(out.glob("Area_*/*.npz"))) == 9


def _weights(task, root, path, epochs=0):
    dls = task.dataloaders(root, bs=2)
    learn = task.learner(dls, path=path)
    if epochs:
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(epochs, 1e-2)
    return learn, learn.save_weights(path / "w.safetensors")


def test_predict_room_folder_and_txt(tasks, prepared, tmp_path):
    """Untrained weights are enough: every input line gets a label and the files agree."""
    from fastai_sparse.prediction import predict_files

    task = tasks["s3dis-seg"]
    _, weights = _weights(task, prepared, tmp_path)
    room = base(prepared) / "Area_6" / "copyRoom_1"  # its room file is copy_Room_1.txt
    n = len((room / "copy_Room_1.txt").read_bytes().splitlines())
    with pytest.warns(UserWarning, match="copy_Room_1.txt"):
        ((_, ply),) = predict_files(task, weights, [room], out=tmp_path / "pred.ply", tta=1)
    v = plyfile.PlyData.read(str(ply))["vertex"]
    assert v.count == n
    labels = np.asarray(v["label"])
    assert set(np.unique(labels)) <= set(range(13))
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), CLASS_COLORS[labels])
    raw = np.loadtxt(room / "copy_Room_1.txt")
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), raw[:, :3].astype(np.float32))
    ((_, txt),) = predict_files(task, weights, [room / "copy_Room_1.txt"], out=tmp_path / "pred.txt", tta=1)
    lines = txt.read_text().splitlines()
    assert len(lines) == n and all(s.isdigit() for s in lines)
    np.testing.assert_array_equal(np.array(lines, int), labels)


def test_predict_repairs_the_nul_and_refuses_damaged_lines(tasks, prepared, tmp_path):
    from fastai_sparse.errors import DataFormatError
    from fastai_sparse.prediction import predict_files

    task = tasks["s3dis-seg"]
    _, weights = _weights(task, prepared, tmp_path)
    ceiling = base(prepared) / "Area_5" / "hallway_6" / "Annotations" / "ceiling_1.txt"
    with pytest.warns(UserWarning, match=r"line\(s\) 50: a control character"):
        ((_, out),) = predict_files(task, weights, [ceiling], out=tmp_path / "c.txt", tta=1)
    assert len(out.read_text().splitlines()) == len(ceiling.read_bytes().splitlines())
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"1.000 2.000 3.000 4 5 6\n1.000 2.0\x160 3.000 4 5 6\n")
    with pytest.raises(DataFormatError, match=r"bad\.txt.*line 2: found '2\.0\\x160'"):
        next(predict_files(task, weights, [bad], out=tmp_path / "b.txt", tta=1))
    with pytest.raises(DataFormatError, match=r"expected a room folder or a room \.txt"):
        task.read_input(tmp_path / "pred.ply")


@pytest.mark.slow
def test_short_training_run_reduces_loss_and_beats_chance(tasks, prepared, tmp_path):
    import torch

    torch.manual_seed(0)
    task = tasks["s3dis-seg"]
    dls = task.dataloaders(prepared, bs=4)
    learn = task.learner(dls, path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        before = learn.validate()
        learn.fit_one_cycle(12, 2e-2)
        losses = [float(x) for x in learn.recorder.losses]  # validate() resets them
        after = learn.validate()
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])  # training loss (smoothed) falls
    assert after[0] < before[0]  # validation loss falls
    names = [m.name for m in learn.metrics if m.name != "iou_per_class"]  # the table is not a value
    got = dict(zip(["loss", *names], after))
    assert got["accuracy"] > 0.6 and got["accuracy"] > before[names.index("accuracy") + 1] + 0.2
    assert got["miou"] > 2 * before[names.index("miou") + 1]


@pytest.mark.slow
def test_cli_train_with_a_fold_then_predict(s3dis_root, tmp_path):
    import json

    from click.testing import CliRunner

    from fastai_sparse.cli import main

    run = tmp_path / "run"
    args = ["train", "s3dis-seg", "--root", str(s3dis_root), "--out", str(run), "--epochs", "1", "--bs", "2"]
    r = CliRunner().invoke(main, [*args, "--quiet", "-O", "fold=6"])
    assert r.exit_code == 0, r.output
    recorded = [json.loads((run / f).read_text()) for f in ("run.json", "config.json") if (run / f).exists()]
    assert '"fold": 6' in json.dumps(recorded)
    room_txt = base(s3dis_root) / "Area_5" / "office_1" / "office_1.txt"
    out = tmp_path / "o.txt"
    r = CliRunner().invoke(
        main, ["predict", "s3dis-seg", "--model", str(run / "model"), str(room_txt), "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == len(room_txt.read_text().splitlines())
    r = CliRunner().invoke(main, [*args, "-O", "fold=9", "--out", str(tmp_path / "bad")])
    assert r.exit_code != 0 and "fold=9" in r.output


def test_cli_predict_on_a_room_folder(tasks, prepared, tmp_path):
    """`fastai-sparse predict s3dis-seg` takes a room folder: one label per line of its room file."""
    from click.testing import CliRunner

    from fastai_sparse.cli import main

    _, weights = _weights(tasks["s3dis-seg"], prepared, tmp_path)
    room = base(prepared) / "Area_5" / "office_1"
    out = tmp_path / "office_1.labels.txt"
    r = CliRunner().invoke(
        main, ["predict", "s3dis-seg", "--model", str(weights), str(room), "-o", str(out), "--tta", "1"]
    )
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == len((room / "office_1.txt").read_bytes().splitlines())
    r = CliRunner().invoke(
        main, ["predict", "s3dis-seg", "--model", str(weights), str(room / "Annotations" / "x")]
    )
    assert r.exit_code != 0
