"""The regression task: the up-axis VectorTarget follows every augmentation; end to end."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastai_sparse import get_task
from fastai_sparse.geometry import PointCloud
from fastai_sparse.transforms import Compose
from fastai_sparse_classification.regression import UP_AXIS_CLASSES, UpAxisShapes


def test_target_is_the_pose_up_axis():
    ds = UpAxisShapes(n=12, points=256)
    for i in range(len(ds)):
        c = ds[i]
        up = np.asarray(c.target, np.float64)
        assert np.linalg.norm(up) == pytest.approx(1, abs=1e-6)
        assert np.allclose(up, c.meta["pose"]["rotation"][:, 2], atol=1e-6)
        assert c.meta["category"] in UP_AXIS_CLASSES
    tilts = [np.degrees(np.arccos(np.asarray(ds[i].target)[2])) for i in range(len(ds))]
    assert max(tilts) > 10  # tilted, so there is something to regress


def test_vector_target_follows_the_training_augmentation():
    """Independent reference: two marker points o and o + up pushed through the same transforms."""
    task = get_task("synthetic-shapes-reg")
    tfms = Compose(task.train_transforms)
    ds = UpAxisShapes(n=6, points=128)
    for i in range(len(ds)):
        c = ds[i]
        up = np.asarray(c.target, np.float64)
        o = c.xyz.mean(0)
        marked = PointCloud(
            np.vstack([c.xyz, o, o + 0.1 * up]).astype(np.float32), {}, target=c.target, meta=dict(c.meta)
        )
        out = tfms(marked, np.random.default_rng(i))
        d = out.xyz[-1].astype(np.float64) - out.xyz[-2]
        d /= np.linalg.norm(d)
        moved = np.asarray(out.target, np.float64)
        assert np.allclose(moved, d, atol=2e-3), (moved, d)
        assert not np.allclose(moved, up, atol=1e-3)  # it did rotate


@pytest.mark.slow
def test_regression_end_to_end(tmp_path):
    from fastai.callback.progress import ProgressCallback  # noqa: F401

    from fastai_sparse.learner import sparse_dataloaders

    task = get_task("synthetic-shapes-reg")
    f = task.dataset_factory()
    train, valid = f(split="train", n=48, points=256), f(split="valid", n=16, points=256)
    dls = sparse_dataloaders(
        train, valid, task.pipeline(True), task.pipeline(False), task.target, bs=8, path=tmp_path
    )
    learn = task.learner(dls)
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit(1, 1e-3)
    names = learn.recorder.metric_names
    assert {"mae", "rmse", "angle_error"} <= set(names)
    last = dict(zip(names[1:], learn.recorder.values[-1]))
    assert 0 <= last["angle_error"] <= 180 and last["rmse"] >= last["mae"] >= 0
    pred = learn.predict(valid[0])
    assert pred.per == "sample" and pred.values.shape == (3,) and pred.probs is None
    preds, targs = learn.get_preds(dl=dls.valid)
    assert preds.shape == targs.shape == (16, 3)
    assert np.allclose(pred.values, preds[0].numpy(), atol=1e-5)
