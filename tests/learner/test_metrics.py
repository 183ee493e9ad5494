"""Confusion-matrix metrics against hand counts and a dense reference."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fastai_sparse.errors import DataFormatError, ShapeError
from fastai_sparse.metrics import (
    MAE,
    RMSE,
    Accuracy,
    ConfusionMatrix,
    IoUPerClass,
    MeanClassAccuracy,
    MeanIoU,
    PerClassTableCallback,
    accuracy,
    confusion_matrix,
    format_class_table,
    iou_per_class,
    mae,
    mean_class_accuracy,
    miou,
    rmse,
)

# 4 classes, class 3 absent from truth and prediction; two ignored rows (their predictions 3, 1
# must not count)
TARG = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, -100, -100])
PRED = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0, 3, 1])
# worked by hand, rows = truth, cols = prediction
HAND_CM = [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]


def fake_learn(pred, targ):
    return SimpleNamespace(pred=pred, yb=(targ,))


def feed(metric, batches):
    metric.reset()
    for p, t in batches:
        metric.accumulate(fake_learn(p, t))
    return metric.value


def test_confusion_matrix_hand_count():
    cm = confusion_matrix(PRED, TARG, 4, ignore_index=-100)
    assert cm.dtype == torch.int64
    assert cm.tolist() == HAND_CM


def test_confusion_from_logits_equals_from_labels():
    logits = torch.nn.functional.one_hot(PRED.clamp(0), 4).float() * 3 + 0.1 * torch.randn(10, 4)
    assert confusion_matrix(logits, TARG, 4).tolist() == HAND_CM


def test_metric_values_hand_count():
    # IoU: c0 2/(2+1+1), c1 1/(1+1+1), c2 2/(2+1+1), c3 absent -> nan and left out of the mean
    assert feed(MeanIoU(4), [(PRED, TARG)]) == pytest.approx((0.5 + 1 / 3 + 0.5) / 3)
    per = feed(IoUPerClass(4, class_names=["a", "b", "c", "d"]), [(PRED, TARG)])
    assert list(per) == ["a", "b", "c", "d"]
    assert (
        per["a"] == pytest.approx(0.5) and per["b"] == pytest.approx(1 / 3) and per["c"] == pytest.approx(0.5)
    )
    assert math.isnan(per["d"])
    assert feed(Accuracy(4), [(PRED, TARG)]) == pytest.approx(5 / 8)
    assert feed(MeanClassAccuracy(4), [(PRED, TARG)]) == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)


def test_class_predicted_but_absent_from_truth_counts_zero():
    targ, pred = torch.tensor([0, 0, 1]), torch.tensor([0, 2, 1])
    per = feed(IoUPerClass(3), [(pred, targ)])
    assert per["2"] == 0.0 and per["0"] == pytest.approx(0.5) and per["1"] == 1.0
    assert feed(MeanIoU(3), [(pred, targ)]) == pytest.approx(0.5)


def test_accumulation_is_not_mean_of_batches():
    a = (torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long))  # batch mIoU 1
    b = (torch.tensor([0]), torch.tensor([1]))  # batch mIoU 0
    m = MeanIoU(2)
    per_batch = [feed(m, [a]), feed(m, [b])]
    assert np.mean(per_batch) == pytest.approx(0.5)
    # epoch: c0 tp 4, fp 1 -> 0.8; c1 tp 0 -> 0
    assert feed(m, [a, b]) == pytest.approx(0.4)


def dense_cm(pred, targ, k, ignore):
    cm = np.zeros((k, k), np.int64)
    for p, t in zip(pred.tolist(), targ.tolist()):
        if t != ignore:
            cm[t, p] += 1
    return cm


def test_accumulation_equals_one_shot_and_dense_reference():
    g = torch.Generator().manual_seed(0)
    k, batches = 5, []
    for n in (7, 130, 1, 55):
        logits = torch.randn(n, k, generator=g)
        targ = torch.randint(-1, k, (n,), generator=g)  # -1 = ignore
        batches.append((logits, targ))
    cm = ConfusionMatrix(k, ignore_index=-1)
    feed(cm, batches)
    all_p = torch.cat([b[0] for b in batches])
    all_t = torch.cat([b[1] for b in batches])
    ref = dense_cm(all_p.argmax(1), all_t, k, -1)
    assert cm.value.numpy().tolist() == ref.tolist()
    one = MeanIoU(k, ignore_index=-1)
    assert feed(one, batches) == pytest.approx(feed(MeanIoU(k, ignore_index=-1), [(all_p, all_t)]))
    tp = np.diag(ref)
    assert feed(one, batches) == pytest.approx(np.nanmean(tp / (ref.sum(0) + ref.sum(1) - tp)))


def test_per_sample_predictions():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    targ = torch.tensor([0, 1, 1, 2])
    assert feed(Accuracy(3), [(logits, targ)]) == pytest.approx(0.5)
    assert feed(MeanClassAccuracy(3), [(logits, targ)]) == pytest.approx((1 + 0.5 + 0) / 3)


def test_many_classes_and_big_counts_use_int64():
    k, n = 300, 70_000
    cm = confusion_matrix(torch.full((n,), 299), torch.full((n,), 299), k)
    assert cm.dtype == torch.int64 and int(cm[299, 299]) == n


def test_bad_labels_raise_clear_errors():
    with pytest.raises(DataFormatError, match=r"target label 7 is outside 0\.\.3"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), 4)
    with pytest.raises(ShapeError, match="2 predictions but 3 targets"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1, 1]), 4)
    with pytest.raises(ShapeError, match=r"expected \[N, 4\]"):
        confusion_matrix(torch.zeros(3, 5), torch.tensor([0, 1, 1]), 4)


def test_empty_epoch_value_is_none():
    m = MeanIoU(3)
    assert feed(m, []) is None


def test_regression_hand_count():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    targ = torch.tensor([[0.0, 2.0], [5.0, 4.0]])
    assert feed(MAE(), [(pred, targ)]) == pytest.approx(0.75)
    assert feed(RMSE(), [(pred, targ)]) == pytest.approx(math.sqrt(5 / 4))
    # accumulated sums, not the mean of per-batch means (0.5 would be wrong)
    b1, b2 = (torch.tensor([1.0]), torch.tensor([0.0])), (torch.zeros(3), torch.zeros(3))
    assert feed(MAE(), [b1, b2]) == pytest.approx(0.25)
    assert feed(RMSE(), [b1, b2]) == pytest.approx(math.sqrt(0.25))


def test_factories_and_names():
    seg = SimpleNamespace(name="segmentation", classes=["a", "b", "c"], ignore_index=-100, per="point")
    assert miou(seg).name == "miou" and miou(seg).cm.num_classes == 3
    assert accuracy(seg).name == "accuracy"
    assert mean_class_accuracy(seg).name == "mean_class_accuracy"
    assert iou_per_class(seg).class_names == ["a", "b", "c"] and iou_per_class(seg).is_table
    assert mae(None).name == "mae" and rmse(None).name == "rmse"
    with pytest.raises(TypeError, match="needs a target type with classes"):
        miou(SimpleNamespace(name="regression"))


def test_class_table_format_and_callback_prints_once_at_the_end(capsys):
    text = format_class_table({"wall": 0.5, "floor": float("nan")}, np.array([[3, 1], [0, 0]]))
    assert "wall" in text and "0.5000" in text and "n/a" in text and "mean" in text
    met = IoUPerClass(4, class_names=["a", "b", "c", "d"])
    cb = PerClassTableCallback(met)
    learn = SimpleNamespace(pred=PRED, yb=(TARG,), training=False, logger=print, epoch=0)
    cb.learn = learn
    cb.before_fit()
    for epoch in range(3):  # three epochs: nothing printed until the fit ends
        learn.epoch = epoch
        cb.before_validate()
        cb.after_batch()
        cb.after_validate()
    assert cb.last["a"] == pytest.approx(0.5) and len(cb.tables) == 3 and cb.epochs == [0, 1, 2]
    assert capsys.readouterr().out == ""
    cb.after_fit()
    out = capsys.readouterr().out
    assert out.count("IoU per class") == 1 and "after epoch 2" in out and "0.3333" in out
    from fastai.imports import noop

    learn.logger = noop  # learn.no_logging(): stored, never printed
    cb.before_fit()
    cb.before_validate()
    cb.after_batch()
    cb.after_validate()
    cb.after_fit()
    assert len(cb.tables) == 4 and capsys.readouterr().out == ""
    learn.gather_preds = object()  # get_preds: the latest table, not an epoch of training
    cb.before_fit()
    cb.before_validate()
    cb.after_batch()
    cb.after_validate()
    assert len(cb.tables) == 4 and cb.last is not None
