"""The dataset and the registered task: splits, items, the recipe's choices, augmentation, a
short training run that learns, and the conformance kit."""

from __future__ import annotations

import numpy as np
import pytest

from fastai_sparse import DataFormatError
from fastai_sparse_semantickitti.config import default_config
from fastai_sparse_semantickitti.dataset import SemanticKittiScans
from fastai_sparse_semantickitti.reader import read_label


@pytest.fixture(scope="module")
def task():
    from fastai_sparse.testing import registry_with

    return registry_with("semantickitti").get("task", "semantickitti-seg")


def test_splits_and_items(kitti_root):
    train = SemanticKittiScans(kitti_root, "train")
    valid = SemanticKittiScans(kitti_root, "val")
    test = SemanticKittiScans(kitti_root, "test")
    assert len(train) == 11 and len(valid) == 2 and len(test) == 12  # 00 and 08 and 11 have 2 scans
    assert {s.sequence for s in train.scans} == {"00", "01", "02", "03", "04", "05", "06", "07", "09", "10"}
    c = valid[1]
    assert c.meta["id"] == "08/000001" and c.meta["split"] == "valid"
    assert c.xyz.dtype == np.float32 and c.attrs["remission"].shape == (len(c),)
    sem, inst = read_label(kitti_root / "sequences" / "08" / "labels" / "000001.label")
    np.testing.assert_array_equal(c.attrs["labels"], default_config().to_classes(sem))
    np.testing.assert_array_equal(c.attrs["instance"], inst)
    assert c.attrs["labels"].min() == -100 and c.attrs["labels"].max() <= 18
    t = test[0]
    assert "labels" not in t.attrs and t.meta["id"] == "11/000000"
    assert len(SemanticKittiScans(kitti_root, "train", sequences=[0], limit=1)) == 1
    assert valid[-1].meta["id"] == "08/000001" and len(valid[0:2]) == 2


def test_task_states_its_recipe(task):
    from fastai_sparse.transforms.points import Jitter, RandomFlip, RandomRotate, RandomScale
    from fastai_sparse_semantickitti.transforms import AddPosition

    assert task.class_names == default_config().class_names and task.target.ignore_index == -100
    assert task.label_values == default_config().class_raw_ids
    v = task.voxelizer
    assert (v.scale, v.full_scale, v.origin, v.features) == (20.0, 8192, "min", ("remission", "position"))
    assert task.model == "unet-m32-r2" and task.head == "seg-linear"
    assert [type(t) for t in task.train_transforms] == [
        RandomRotate,
        RandomFlip,
        RandomScale,
        Jitter,
        AddPosition,
    ]
    flip, scale, jitter = task.train_transforms[1:4]
    assert (
        flip.axes == ("x", "y")
        and scale.scale == (0.95, 1.05)
        and (jitter.sigma, jitter.clip) == (0.01, 0.05)
    )
    assert [type(t) for t in task.valid_transforms] == [AddPosition]  # no augmentation at validation
    assert task.defaults["format"] == "label" and "label" in task.output_formats
    for word in ("19 classes", "5 cm voxels"):
        assert word in task.description


def test_pipeline_on_a_fixture_scan(task, kitti_root):
    ds = task.datasets(kitti_root)
    cloud = ds["train"][0]
    a = task.pipeline(train=True)(cloud, np.random.default_rng(1))
    b = task.pipeline(train=True)(cloud, np.random.default_rng(1))
    np.testing.assert_array_equal(a.coords, b.coords)  # reproducible from the seed
    assert len(a.inverse) == len(cloud) and a.feats.shape[1] == 4  # remission + position
    np.testing.assert_array_equal(a.cloud.attrs["labels"], cloud.attrs["labels"])  # no point dropped
    # the position feature is the augmented coordinate / 10: mean over each voxel's points
    pos = a.cloud.xyz.astype(np.float64) * 0.1
    for k in range(3):
        want = np.bincount(a.inverse, weights=pos[:, k]) / np.bincount(a.inverse)
        np.testing.assert_allclose(a.feats[:, 1 + k], want, rtol=1e-5, atol=1e-5)
    # the augmentation rotates about the sensor: ranges are kept up to the 5 % scale and the jitter
    r0 = np.linalg.norm(cloud.xyz[:, :2], axis=1)
    r1 = np.linalg.norm(a.cloud.xyz[:, :2], axis=1)
    ratio = np.median(r1[r0 > 5] / r0[r0 > 5])
    assert 0.949 < ratio < 1.051
    v = task.pipeline(train=False)(ds["valid"][0], np.random.default_rng(0))
    np.testing.assert_array_equal(v.cloud.xyz, ds["valid"][0].xyz)  # validation: no change


def test_a_root_config_with_other_classes_is_refused(kitti_root, tmp_path, task):
    import shutil

    import yaml

    root = tmp_path / "root"
    shutil.copytree(kitti_root / "sequences" / "08", root / "sequences" / "08")
    data = yaml.safe_load(default_config().path.read_text())
    data["learning_map_inv"] = {0: 0, 1: 10, 2: 40}
    data["learning_map"] = {k: (1 if v == 1 else 2 if v == 9 else 0) for k, v in data["learning_map"].items()}
    (root / "semantic-kitti.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DataFormatError, match=r"2 learning classes .* the task expects 19"):
        task.datasets(root, sequences=[8])
    # a task built for that file reads it
    from fastai_sparse_semantickitti.tasks import seg_task

    two = seg_task(config=root / "semantic-kitti.yaml", model="unet-small")
    assert two.class_names == ["car", "road"] and two.label_values == [10, 40]
    item = two.datasets(root, sequences=[8])["valid"][0]
    assert set(np.unique(item.attrs["labels"])) <= {-100, 0, 1}


@pytest.mark.slow
def test_short_training_run_reduces_the_loss(small_task, kitti_root, tmp_path):
    import torch

    torch.manual_seed(0)
    dls = small_task.dataloaders(kitti_root, bs=4, seed=0)
    learn = small_task.learner(dls, path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        before = learn.validate()[0]
        learn.fit_one_cycle(10, 3e-2)
        train_losses = [float(v[0]) for v in learn.recorder.values]
        after = learn.validate()
    assert len(train_losses) == 10 and train_losses[-1] < 0.8 * train_losses[0], train_losses
    assert after[0] < 0.6 * before, (before, after)
    assert after[1] > 0.05 and after[2] > 0.3  # mIoU, accuracy: classes are learnt


@pytest.mark.slow
def test_check_plugin_conformance():
    from fastai_sparse.testing import check_plugin

    summary = check_plugin("semantickitti")
    assert summary["registered"] == {"task": ["semantickitti-seg"], "dataset": ["semantickitti"]}
    res = summary["tasks"]["semantickitti-seg"]
    assert res["train"]["items"] == 10 and res["valid"]["items"] == 1  # one scan per fixture sequence
    assert res["train"]["outputs"][1] == 19
