"""fastai features on sparse batches: schedules, lr_find, standard callbacks, plots,
classification (per-sample) predictions, registered tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastai_sparse.batch import SamplePipeline
from fastai_sparse.learner import Prediction, sparse_dataloaders, sparse_learner
from fastai_sparse.metrics import accuracy, mean_class_accuracy, miou
from fastai_sparse.voxelize import Voxelizer

from .learner_helpers import make_cloud, pipelines, seg_target, tiny_model


def seg_learner(tmp_path, n_train=6, real=False, **kw):
    tgt = seg_target()
    tr, va = pipelines(tgt)
    dls = sparse_dataloaders(
        [make_cloud(i, 200) for i in range(n_train)],
        [make_cloud(50 + i, 200) for i in range(3)],
        tr,
        va,
        tgt,
        bs=3,
        path=tmp_path,
    )
    torch.manual_seed(0)
    return sparse_learner(
        dls, tiny_model(real=real), metrics=[miou(tgt), accuracy(tgt)], path=tmp_path, task="toy-seg", **kw
    )


def test_lr_find_and_fit_flat_cos(tmp_path, capfd):
    learn = seg_learner(tmp_path)
    with learn.no_bar(), learn.no_logging():
        sug = learn.lr_find(num_it=12, show_plot=False)
        learn.fit_flat_cos(1, 1e-2)
    assert np.isfinite(sug.valley) and sug.valley > 0
    assert len(learn.recorder.values) == 1 and capfd.readouterr().out == ""


def test_save_model_csv_logger_early_stopping(tmp_path):
    from fastai.callback.progress import CSVLogger
    from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback

    learn = seg_learner(tmp_path)
    cbs = [
        SaveModelCallback(monitor="miou", comp=np.greater, fname="best"),
        CSVLogger(),
        EarlyStoppingCallback(monitor="valid_loss", patience=1, min_delta=10.0),
    ]
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(5, 1e-2, cbs=cbs)
    # min_delta=10 means no epoch improves on the first: stop after epoch 0 + patience
    assert len(learn.recorder.values) == 2
    assert (tmp_path / "models" / "best.pth").is_file()
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["epoch", "train_loss", "valid_loss", "miou", "accuracy"]
    # the best model was loaded at the end (SaveModelCallback(with_opt=False) + learn.load)
    learn.load("best", with_opt=False)


def test_show_batch_and_results(tmp_path):
    learn = seg_learner(tmp_path)
    fig = learn.dls.show_batch(max_n=2, path=tmp_path / "batch.png")
    assert fig is not None and (tmp_path / "batch.png").stat().st_size > 1000
    fig = learn.show_results(max_n=2, path=tmp_path / "results.png")
    assert fig is not None and (tmp_path / "results.png").stat().st_size > 1000


# -- classification (one output per sample) ---------------------------------------------------------


def cls_cloud(seed, n=150):
    """Class = dominant colour (0 blue, 1 red, 2 green)."""
    c = seed % 3
    cloud = make_cloud(seed, n, labels=False)
    rgb = np.zeros((n, 3), np.float32)
    rgb[:, [2, 0, 1][c]] = 200
    return cloud.replace(attrs={"rgb": rgb}, target=c)


class ClsScale:
    def __call__(self, cloud, rng=None):
        return cloud.with_attrs(rgb=cloud.attrs["rgb"] / 127.5 - 1)


def test_classification_per_sample_preds_and_predict(tmp_path):
    from fastai_sparse.models import PoolHead, SparseModel, UNet
    from fastai_sparse.targets import Classification

    tgt = Classification(["blue", "red", "green"])
    pipe = SamplePipeline(ClsScale(), Voxelizer(scale=6, features=("rgb",)), tgt)
    dls = sparse_dataloaders(
        [cls_cloud(i) for i in range(9)],
        [cls_cloud(30 + i) for i in range(5)],
        pipe,
        pipe,
        tgt,
        bs=3,
        path=tmp_path,
    )
    _, y = dls.one_batch()
    assert y.shape == (3,) and y.dtype == torch.int64
    torch.manual_seed(0)
    model = SparseModel(UNet(in_channels=3, m=8, levels=2), PoolHead(8, 3))
    learn = sparse_learner(
        dls, model, metrics=[accuracy(tgt), mean_class_accuracy(tgt)], path=tmp_path, task="toy-cls"
    )
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(3, 3e-2)
    preds, targs = learn.get_preds()
    assert preds.shape == (5, 3) and torch.equal(targs, torch.tensor([c % 3 for c in range(30, 35)]))
    assert torch.allclose(preds.sum(1), torch.ones(5), atol=1e-5)
    res = learn.predict(cls_cloud(31).replace(target=None))
    assert isinstance(res, Prediction) and res.per == "sample"
    assert isinstance(res.labels, int) and res.probs.shape == (3,)
    assert np.allclose(res.probs, preds[1].numpy(), atol=1e-5)
    assert res.names == ["blue", "red", "green"][res.labels]
    p, t = learn.tta(n=3)
    assert p.shape == (5, 3) and torch.equal(t, targs)


# -- a registered task end to end ----------------------------------------------------------------------


@pytest.mark.slow
def test_registered_synthetic_task_end_to_end(tmp_path):
    from fastai_sparse import get_task

    task = get_task("synthetic-parts-seg")
    dls = task.dataloaders(bs=4, path=tmp_path, n=8, points=512)
    learn = task.learner(dls)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 3e-3)
    preds, targs = learn.get_preds()
    n_points = sum(len(dls.valid_ds.cloud(i)) for i in range(len(dls.valid_ds)))
    assert preds.shape[0] == len(targs) == n_points
    res = learn.predict(dls.valid_ds.cloud(0))
    assert res.labels.shape == (len(dls.valid_ds.cloud(0)),)
    # the task's real transforms and voxelizer survive export / load_learner
    learn.export("model")
    from fastai_sparse.learner import load_learner

    again = load_learner(tmp_path / "model")
    assert np.array_equal(again.predict(dls.valid_ds.cloud(0)).probs, res.probs)
    assert again.task_name == "synthetic-parts-seg"


def test_workers_give_the_same_batches(tmp_path):
    tgt = seg_target()
    tr, va = pipelines(tgt)
    items = [make_cloud(i, 100) for i in range(4)]
    dl0 = sparse_dataloaders(items, items[:2], tr, va, tgt, bs=2, num_workers=0, path=tmp_path)
    dl2 = sparse_dataloaders(items, items[:2], tr, va, tgt, bs=2, num_workers=2, path=tmp_path)
    for ds in (dl0.train_ds, dl2.train_ds):
        ds.epoch = 3
    b0, b2 = list(dl0.train), list(dl2.train)
    assert len(b0) == len(b2) == 2
    for (x0, y0), (x2, y2) in zip(b0, b2):
        assert torch.equal(x0["feats"], x2["feats"]) and torch.equal(y0, y2)


def test_training_is_reproducible(tmp_path):
    runs = []
    for _ in range(2):
        learn = seg_learner(tmp_path)
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(2, 1e-2)
        runs.append([list(map(float, v)) for v in learn.recorder.values])
    assert runs[0] == runs[1]


def test_single_process_distrib_ctx_is_a_no_op(tmp_path):
    learn = seg_learner(tmp_path)
    with learn.no_bar(), learn.no_logging(), learn.distrib_ctx():
        learn.fit(1, 1e-3)
    assert not any(type(c).__name__ == "SparseDistributedTrainer" for c in learn.cbs)
    assert len(learn.recorder.values) == 1


def test_metrics_by_registered_name_and_losses(tmp_path):
    learn = seg_learner(tmp_path)
    tgt = learn.dls.target_type
    learn2 = sparse_learner(
        learn.dls, learn.model, metrics=["miou", "iou-per-class", "accuracy"], path=tmp_path, task="toy-seg"
    )
    assert [m.name for m in learn2.metrics] == ["miou", "accuracy"]
    assert learn2.metrics[0].cm.num_classes == len(tgt.classes)
    with learn2.no_bar():
        preds, targs, losses = learn2.get_preds(with_loss=True)
    assert len(losses) == len(targs) == len(preds) == 3 * 200


def test_regression_mae_rmse_and_predict(tmp_path):
    from fastai_sparse.metrics import mae, rmse
    from fastai_sparse.models import PoolHead, SparseModel, UNet
    from fastai_sparse.targets import Regression

    def reg_cloud(seed):
        cloud = make_cloud(seed, 120, labels=False)
        return cloud.replace(target=np.array([float(cloud.xyz[:, 2].mean())], np.float32))

    tgt = Regression(["mean_z"])
    pipe = SamplePipeline(ClsScale(), Voxelizer(scale=6, features=("rgb",)), tgt)
    valid = [reg_cloud(40 + i) for i in range(4)]
    dls = sparse_dataloaders([reg_cloud(i) for i in range(6)], valid, pipe, pipe, tgt, bs=2, path=tmp_path)
    torch.manual_seed(0)
    model = SparseModel(UNet(in_channels=3, m=8, levels=2), PoolHead(8, 1))
    learn = sparse_learner(dls, model, metrics=[mae(tgt), rmse(tgt)], path=tmp_path, task="toy-reg")
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
        _, m_abs, m_rms = learn.validate()
    preds, targs = learn.get_preds()
    assert preds.shape == targs.shape == (4, 1)  # raw outputs, no softmax
    err = (preds - targs).double()
    assert m_abs == pytest.approx(float(err.abs().mean()), rel=1e-5)
    assert m_rms == pytest.approx(float(err.pow(2).mean().sqrt()), rel=1e-5)
    res = learn.predict(valid[2].replace(target=None))
    assert res.per == "sample" and res.probs is None and np.allclose(res.values, preds[2].numpy(), atol=1e-5)
