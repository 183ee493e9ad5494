"""End to end on hand-made clouds: dataloaders, fit, get_preds, predict, TTA, export, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastai_sparse.errors import DataFormatError, UnsafeFileError
from fastai_sparse.geometry import Mesh
from fastai_sparse.learner import (
    CheckpointError,
    EmptyDatasetError,
    NonFiniteLossError,
    Prediction,
    SparseLearner,
    load_learner,
    sparse_dataloaders,
    sparse_learner,
    write_prediction,
)
from fastai_sparse.metrics import MeanIoU, accuracy, iou_per_class, miou

from .learner_helpers import CLASSES, make_cloud, pipelines, seg_target, tiny_model

N_POINTS = 300


def make_dls(tmp_path, n_train=8, n_valid=4, bs=4, seed=0, **kw):
    tgt = seg_target()
    tr, va = pipelines(tgt)
    train = [make_cloud(i, N_POINTS) for i in range(n_train)]
    valid = [make_cloud(100 + i, N_POINTS) for i in range(n_valid)]
    return sparse_dataloaders(train, valid, tr, va, tgt, bs=bs, seed=seed, path=tmp_path, **kw)


def make_learner(dls, task="toy-seg", real=True, **kw):
    tgt = dls.target_type
    torch.manual_seed(0)
    return sparse_learner(
        dls,
        tiny_model(real=real),
        metrics=[miou(tgt), accuracy(tgt), iou_per_class(tgt)],
        path=dls.path,
        task=task,
        **kw,
    )


def quiet_fit(learn, epochs=1, lr=1e-2, method="fit_one_cycle", **kw):
    with learn.no_bar(), learn.no_logging():
        getattr(learn, method)(epochs, lr, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("learn")
    dls = make_dls(path)
    learn = make_learner(dls)
    quiet_fit(learn, 4, 2e-2)
    return learn


def valid_labels(learn):
    return np.concatenate([c.attrs["labels"] for c in learn.dls.valid_ds.items])


# -- data -----------------------------------------------------------------------------------------


def test_one_batch_and_to_device(tmp_path):
    dls = make_dls(tmp_path)
    x, y = dls.one_batch()
    assert x["coords"].dtype == torch.int32 and x["coords"].shape[1] == 4
    assert x["feats"].shape == (x["coords"].shape[0], 3)
    assert x["point_offsets"].tolist() == [0, 300, 600, 900, 1200] and y.shape == (1200,)
    assert int(x["inverse"].max()) < x["coords"].shape[0]
    from fastai.torch_core import to_device

    xd, _ = to_device((x, y), "cpu")
    assert isinstance(xd, dict) and torch.equal(xd["feats"], x["feats"])


def test_fit_get_preds_and_predict_on_the_device(tmp_path, device):
    """The whole learner path on ``device``: batches and model there, a fit that learns,
    get_preds one row per point and predict agreeing with it (results come back on the CPU)."""
    dls = make_dls(tmp_path, device=device)
    x, y = dls.one_batch()
    assert {v.device for v in x.values()} == {device} and y.device == device
    learn = make_learner(dls)
    learn.model.to(device)
    quiet_fit(learn, 3, 2e-2)
    assert {p.device for p in learn.model.parameters()} == {device}
    preds, targs = learn.get_preds()
    assert preds.shape == (len(valid_labels(learn)), 2)
    assert torch.equal(targs.cpu(), torch.from_numpy(valid_labels(learn)))
    _, _, acc = learn.validate()
    assert acc > 0.7, acc
    cloud = learn.dls.valid_ds.items[1]
    res = learn.predict(cloud.replace(attrs={"rgb": cloud.attrs["rgb"]}))
    np.testing.assert_allclose(res.probs, preds[N_POINTS : 2 * N_POINTS].cpu().numpy(), atol=1e-5)


def test_seeded_augmentation_and_clean_validation(tmp_path):
    a, b = make_dls(tmp_path, seed=3), make_dls(tmp_path, seed=3)
    xa, _ = a.train.one_batch()
    xb, _ = b.train.one_batch()
    assert torch.equal(xa["feats"], xb["feats"]) and torch.equal(
        xa["coords"], xb["coords"]
    )  # same seed, same batch
    s0 = a.train_ds[0]
    a.train_ds.epoch = 1
    s1 = a.train_ds[0]
    assert not np.array_equal(s0.cloud.xyz, s1.cloud.xyz)  # new epoch, new noise
    a.train_ds.epoch = 0
    assert np.array_equal(a.train_ds[0].cloud.xyz, s0.cloud.xyz)  # reproducible
    # validation: no training noise, identical whatever the epoch
    v = a.valid_ds[0]
    assert np.array_equal(v.cloud.xyz, a.valid_ds.items[0].xyz)
    a.valid_ds.epoch = 5
    assert np.array_equal(a.valid_ds[0].feats, v.feats)
    # shuffling is seeded too
    assert list(a.train.shuffle_fn(list(range(8)))) == list(b.train.shuffle_fn(list(range(8))))


def test_empty_sets_raise(tmp_path):
    tgt = seg_target()
    tr, va = pipelines(tgt)
    with pytest.raises(EmptyDatasetError, match="validation set is empty"):
        sparse_dataloaders([make_cloud(0)], [], tr, va, tgt)
    with pytest.raises(EmptyDatasetError, match="training set is empty"):
        sparse_dataloaders([], [make_cloud(0)], tr, va, tgt)


def test_test_dl_has_no_labels(tmp_path):
    dls = make_dls(tmp_path)
    dl = dls.test_dl([make_cloud(7, labels=False), make_cloud(8, labels=False)], bs=2)
    (b,) = [b for b in dl]
    assert len(b) == 1 and b[0]["point_offsets"].tolist() == [0, 300, 600]


# -- training -------------------------------------------------------------------------------------


def test_fit_quiet_records_named_metrics(tmp_path, capfd):
    dls = make_dls(tmp_path)
    learn = make_learner(dls, real=False)
    quiet_fit(learn, 1)
    out = capfd.readouterr()
    assert out.out == ""
    assert learn.recorder.metric_names[-4:-1] == ["valid_loss", "miou", "accuracy"]
    assert isinstance(learn, SparseLearner) and learn.task_name == "toy-seg" and learn.class_names == CLASSES


def test_trained_model_learns(trained):
    _, m, acc = trained.validate()
    assert acc > 0.8 and m > 0.6


def test_get_preds_one_row_per_point_and_validate_agrees(trained):
    preds, targs = trained.get_preds()
    labels = valid_labels(trained)
    assert preds.shape == (len(labels), 2)  # 1200 points, not 4 samples
    assert torch.equal(targs, torch.from_numpy(labels))
    ref = MeanIoU(2)
    ref.update(preds, targs)
    _, m, acc = trained.validate()
    assert m == pytest.approx(ref.value)
    assert acc == pytest.approx(float((preds.argmax(1) == targs).float().mean()))
    # a shuffled loader gives the same rows (dataset order)
    p2, _ = trained.get_preds(dl=trained.dls.valid.new(shuffle=True))
    assert torch.allclose(p2, preds)


def test_per_class_table_stored(trained, capsys):
    cb = next(c for c in trained.cbs if type(c).__name__ == "PerClassTableCallback")
    assert set(cb.last) == set(CLASSES) and len(cb.tables) >= 4
    assert capsys.readouterr().out == ""  # quiet during get_preds / no_logging


def test_predict_cloud_matches_get_preds(trained):
    cloud = trained.dls.valid_ds.items[1]
    unlabelled = cloud.replace(attrs={"rgb": cloud.attrs["rgb"]})
    res = trained.predict(unlabelled)
    assert isinstance(res, Prediction) and res.per == "point"
    assert res.labels.shape == (len(cloud),) and res.labels.dtype == np.int64
    assert res.probs.shape == (len(cloud), 2) and np.allclose(res.probs.sum(1), 1, atol=1e-5)
    assert np.allclose(res.confidence, res.probs.max(1))
    preds, _ = trained.get_preds()
    assert np.allclose(res.probs, preds[N_POINTS : 2 * N_POINTS].numpy(), atol=1e-5)
    assert list(res.names[:3]) == [CLASSES[i] for i in res.labels[:3]]


def test_predict_mesh_and_path(trained, tmp_path):
    from fastai_sparse.io import write_ply

    cloud = make_cloud(55, 200)
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    mesh = Mesh(cloud.xyz, faces, vertex_attrs={"rgb": cloud.attrs["rgb"].astype(np.uint8)})
    res = trained.predict(mesh)
    assert res.labels.shape == (200,)
    write_ply(tmp_path / "m.ply", mesh)
    res2 = trained.predict(tmp_path / "m.ply")
    assert np.array_equal(res2.labels, res.labels)


def test_predict_missing_feature(trained):
    cloud = make_cloud(9, rgb=False)
    with pytest.raises(DataFormatError, match="rgb"):
        trained.predict(cloud)


def test_tta(trained):
    labels = torch.from_numpy(valid_labels(trained))
    p1, t1 = trained.tta(n=1)
    preds, _ = trained.get_preds()
    assert torch.allclose(p1, preds, atol=1e-5) and torch.equal(t1, labels)
    p4, t4 = trained.tta(n=4)
    assert p4.shape == preds.shape and torch.equal(t4, labels)
    assert torch.allclose(p4.sum(1), torch.ones(len(p4)), atol=1e-5)
    acc1 = float((preds.argmax(1) == labels).float().mean())
    acc4 = float((p4.argmax(1) == labels).float().mean())
    assert acc4 >= acc1 - 0.02  # TTA does not hurt
    res = trained.predict(trained.dls.valid_ds.items[0], tta=4)
    assert np.allclose(res.probs, p4[:N_POINTS].numpy(), atol=1e-4)


def test_write_prediction(trained, tmp_path):
    from fastai_sparse.io import read_ply
    from fastai_sparse.viz.colors import class_colors

    cloud = make_cloud(4, labels=False)
    res = trained.predict(cloud)
    out = write_prediction(tmp_path / "pred.ply", cloud, res, CLASSES)
    back = read_ply(out)
    assert np.array_equal(back.attrs["labels"], res.labels)
    expect = np.round(class_colors(2) * 255).astype(np.uint8)[res.labels]
    assert np.array_equal(back.attrs["rgb"].astype(np.uint8), expect)


# -- saving ---------------------------------------------------------------------------------------


def test_pickled_export_loads_only_when_asked(trained, tmp_path):
    trained.path = tmp_path
    try:
        trained.export("export.pkl", unsafe_pickle=True)  # fastai's own export, asked for by name
    finally:
        trained.path = trained.dls.path
    with pytest.raises(UnsafeFileError, match="refused"):
        load_learner(tmp_path / "export.pkl")
    learn2 = load_learner(tmp_path / "export.pkl", unsafe_pickle=True)
    cloud = make_cloud(21, labels=False)
    a, b = trained.predict(cloud), learn2.predict(cloud)
    assert np.array_equal(a.probs, b.probs) and learn2.task_name == "toy-seg"
    assert len(learn2.dls.valid_ds) == 0  # exported without data


def test_weights_round_trip_and_wrong_task(trained, tmp_path):
    path = trained.save_weights(tmp_path / "w.pth")
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["task"] == "toy-seg" and ckpt["class_names"] == CLASSES
    fresh = make_learner(trained.dls)
    cloud = make_cloud(22, labels=False)
    assert not np.array_equal(fresh.predict(cloud).probs, trained.predict(cloud).probs)
    fresh.load_weights(path)
    assert np.array_equal(fresh.predict(cloud).probs, trained.predict(cloud).probs)
    other = make_learner(trained.dls, task="other-task")
    with pytest.raises(CheckpointError, match=r"trained for task 'toy-seg'.*'other-task'"):
        other.load_weights(path)
    with pytest.raises(CheckpointError, match="no such weights file"):
        fresh.load_weights(tmp_path / "missing.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        fresh.load_weights(tmp_path / "bad.pth")
    small = make_learner(trained.dls, real=False)
    with pytest.raises(CheckpointError, match="do not fit the model"):
        small.load_weights(path)


def test_load_learner_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such weights file or model folder"):
        load_learner(tmp_path / "nope.pkl")


# -- bad training -------------------------------------------------------------------------------


class NaNModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        out = x["feats"][x["inverse"]][:, :2] * self.w
        return out * float("nan")


def test_nan_loss_names_epoch_and_batch(tmp_path):
    dls = make_dls(tmp_path)
    learn = sparse_learner(dls, NaNModel(), path=tmp_path)
    with pytest.raises(
        NonFiniteLossError, match=r"epoch 0, training batch 0 \(of 2\), samples \[\d, \d, \d, \d\]"
    ):
        quiet_fit(learn, 1)


def test_table_metric_becomes_callback(tmp_path):
    dls = make_dls(tmp_path)
    learn = make_learner(dls, real=False)
    assert [m.name for m in learn.metrics] == ["miou", "accuracy"]
    assert any(type(c).__name__ == "PerClassTableCallback" for c in learn.cbs)
    assert iou_per_class(dls.target_type).is_table
