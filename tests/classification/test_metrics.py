"""Confusion matrix, accuracy, mean class accuracy and angle error against hand counts; the plot."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fastai_sparse import get_metric
from fastai_sparse.metrics import confusion_matrix
from fastai_sparse.targets import Classification, Regression
from fastai_sparse_classification import class_report, per_class_accuracy, plot_confusion_matrix
from fastai_sparse_classification.regression import angle_error_degrees

# 10 samples, 3 classes. Hand count (rows truth, cols prediction):
#   truth 0 (4 samples): predicted 0, 0, 0, 1      -> 3 right
#   truth 1 (3 samples): predicted 1, 2, 2         -> 1 right
#   truth 2 (3 samples): predicted 2, 2, 2         -> 3 right
TRUTH = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
PRED = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
HAND_CM = np.array([[3, 1, 0], [0, 1, 2], [0, 0, 3]])
HAND_ACC = 7 / 10
HAND_MCA = (3 / 4 + 1 / 3 + 3 / 3) / 3


def _logits(labels, k=3):
    out = torch.full((len(labels), k), -1.0)
    out[torch.arange(len(labels)), torch.tensor(labels)] = 2.0
    return out


def test_confusion_matrix_against_hand_count():
    cm = confusion_matrix(_logits(PRED), torch.tensor(TRUTH), 3).numpy()
    assert np.array_equal(cm, HAND_CM)
    rep = class_report(cm, ["a", "b", "c"])
    assert rep["accuracy"] == pytest.approx(HAND_ACC)
    assert rep["mean_class_accuracy"] == pytest.approx(HAND_MCA)
    assert rep["per_class"] == pytest.approx({"a": 0.75, "b": 1 / 3, "c": 1.0})
    assert rep["support"] == {"a": 4, "b": 3, "c": 3}


def test_registered_metrics_accumulate_over_batches():
    """Two batches (6 + 4 samples): the epoch value is from the summed matrix, not a batch mean."""
    target = Classification(["a", "b", "c"])
    acc, mca = get_metric("accuracy")(target), get_metric("mean-class-accuracy")(target)
    for m in (acc, mca):
        m.reset()
        for sl in (slice(0, 6), slice(6, 10)):
            y = torch.tensor(TRUTH[sl])
            m.accumulate(SimpleNamespace(pred=_logits(PRED[sl]), yb=(y,), y=y, training=False))
    assert acc.value == pytest.approx(HAND_ACC)
    assert mca.value == pytest.approx(HAND_MCA)
    # the mean of the two batch accuracies would differ: (4/6 + 3/4) / 2
    assert acc.value != pytest.approx((4 / 6 + 3 / 4) / 2)


def test_class_missing_from_truth_is_left_out_of_the_mean():
    cm = np.array([[2, 0, 1], [0, 0, 0], [0, 1, 1]])
    acc = per_class_accuracy(cm)
    assert acc[0] == pytest.approx(2 / 3) and np.isnan(acc[1]) and acc[2] == pytest.approx(0.5)
    assert class_report(cm)["mean_class_accuracy"] == pytest.approx((2 / 3 + 0.5) / 2)


def test_angle_error_hand_values():
    pred = np.array([[0, 0, 2.0], [1, 0, 0], [0, 0, -1], [1, 1, 0], [0, 0, 0]])
    true = np.array([[0, 0, 1.0], [0, 0, 1], [0, 0, 1], [1, 0, 0], [0, 0, 1]])
    assert np.allclose(angle_error_degrees(pred, true), [0, 90, 180, 45, 90])
    m = get_metric("angle-error")(Regression(("x", "y", "z"), vector=True))
    m.reset()
    for sl in (slice(0, 2), slice(2, 5)):
        y = torch.tensor(true[sl], dtype=torch.float32)
        m.accumulate(SimpleNamespace(pred=torch.tensor(pred[sl], dtype=torch.float32), yb=(y,)))
    assert m.value == pytest.approx(np.mean([0, 90, 180, 45, 90]), abs=1e-4)


def test_confusion_plot_png(tmp_path):
    fig = plot_confusion_matrix(HAND_CM, ["a", "b", "c"], path=tmp_path / "cm.png", title="test")
    data = (tmp_path / "cm.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    ax = fig.axes[0]
    assert "accuracy 0.700" in ax.get_title() and f"{HAND_MCA:.3f}" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    img = ax.images[0].get_array()
    assert np.allclose(img, HAND_CM / HAND_CM.sum(1, keepdims=True))  # row-normalised
    with pytest.raises(ValueError, match="2 class names"):
        plot_confusion_matrix(HAND_CM, ["a", "b"])
    import matplotlib.pyplot as plt

    plt.close("all")
