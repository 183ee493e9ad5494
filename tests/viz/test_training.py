import itertools
from collections import namedtuple
from types import SimpleNamespace

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from fastai_sparse.errors import ShapeError
from fastai_sparse.viz import kernel_array, kernel_slices, plot_losses, plot_lr_find, plot_recorder


def test_kernel_array_engine_layout_matches_offsets():
    k, cin, cout = 3, 2, 4
    w = np.zeros((k**3, cin, cout), np.float32)
    offsets = list(itertools.product(range(k), repeat=3))  # x slowest, z fastest
    for o, (i, j, kz) in enumerate(offsets):
        w[o] = 100 * i + 10 * j + kz  # encode the offset in the value
    dense = kernel_array(torch.as_tensor(w))
    assert dense.shape == (cout, cin, k, k, k)
    for i, j, kz in offsets:
        assert (dense[:, :, i, j, kz] == 100 * i + 10 * j + kz).all()
    d5 = np.random.default_rng(0).normal(size=(4, 2, 3, 3, 3))
    np.testing.assert_array_equal(kernel_array(d5), d5.astype(np.float32))
    with pytest.raises(ShapeError, match="not k\\*\\*3"):
        kernel_array(np.zeros((26, 1, 1)))
    with pytest.raises(ShapeError, match=r"\[k\*\*3, Cin, Cout\]"):
        kernel_array(np.zeros((3, 3)))


def test_kernel_slices_grids(tmp_path):
    rng = np.random.default_rng(0)
    fig = kernel_slices(rng.normal(size=(27, 3, 5)), path=tmp_path / "k.png")  # rgb mode
    imgs = [a for a in fig.axes if a.images]
    assert len(imgs) == 5 * 3 and imgs[0].images[0].get_array().shape == (3, 3, 3)
    fig = kernel_slices(rng.normal(size=(125, 4, 20)), max_out=6, in_channel=2)
    imgs = [a for a in fig.axes if a.images]
    assert len(imgs) == 6 * 5 and imgs[0].images[0].get_array().shape == (5, 5)
    assert "6 of 20 outputs" in fig._suptitle.get_text()
    assert (tmp_path / "k.png").stat().st_size > 500
    with pytest.raises(ShapeError, match="in_channel 9"):
        kernel_slices(rng.normal(size=(27, 3, 5)), in_channel=9)


def test_plot_lr_find(tmp_path):
    lrs = np.logspace(-6, 0, 100)
    losses = np.r_[np.linspace(3, 1, 70), np.linspace(1, 5, 30)]
    SuggestedLRs = namedtuple("SuggestedLRs", ["valley", "slide"])
    path = tmp_path / "lr.png"
    fig = plot_lr_find(list(lrs), [torch.tensor(v) for v in losses], SuggestedLRs(1e-3, 3e-3), path=path,
                       figsize=(5, 3), dpi=60)  # fmt: skip
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert len(ax.lines[0].get_xdata()) == 95  # skip_end=5
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "lr_find valley: 1.00e-03",
        "lr_find slide: 3.00e-03",
    ]
    assert mpimg.imread(path).shape[:2] == (180, 300)
    with pytest.raises(ShapeError):
        plot_lr_find([1, 2], [1])


def test_plot_lr_find_marks_the_suggestion_on_the_curve_and_the_lr_used_separately():
    lrs = np.logspace(-7, 1, 10)  # a quick lr_find: 10 iterations, the last 5 normally not drawn
    losses = np.array([2.07, 2.06, 2.064, 2.059, 2.061, 2.057, 2.2, 2.6, 3.5, 6.0])
    fig = plot_lr_find(lrs, losses, {"valley": lrs[1]}, lr_used=1e-3, title="lr_find (smoke run)")
    ax = fig.axes[0]
    curve, dot, used = ax.lines
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"lr_find valley: {lrs[1]:.2e}", "lr used for training: 1.00e-03"]
    assert ax.get_title() == "lr_find (smoke run)"
    # the dot is a point of the drawn curve
    assert dot.get_xdata()[0] == pytest.approx(lrs[1]) and dot.get_ydata()[0] == pytest.approx(losses[1])
    assert list(used.get_xdata()) == [1e-3, 1e-3] and used.get_linestyle() == "--"
    # the curve is drawn up to the lr used (which lies in the normally skipped end), not beyond
    assert curve.get_xdata().max() >= 1e-3 and curve.get_xdata().max() < 1e-1
    # a suggestion in the skipped end extends the curve to it, the dot stays on the curve
    ax = plot_lr_find(lrs, losses, {"valley": lrs[7]}).axes[0]
    assert len(ax.lines[0].get_xdata()) == 8 and ax.lines[1].get_ydata()[0] == pytest.approx(losses[7])
    # an lr used beyond lr_find's range is still shown (the axis widens), the curve stays as it was
    ax = plot_lr_find(lrs[:6], losses[:6], lr_used=30.0).axes[0]
    assert ax.get_xlim()[1] >= 30.0 and len(ax.lines[0].get_xdata()) == 6
    # a "suggestion" lr_find never visited cannot sit on its curve
    with pytest.raises(ShapeError, match="outside the recorded learning rates"):
        plot_lr_find(lrs, losses, {"valley": 100.0})


def test_plot_losses_and_recorder(tmp_path):
    path = tmp_path / "loss.png"
    fig = plot_losses(np.linspace(3, 1, 40), [2, 1.5, 1.2, 1.0], {"miou": [0.3, 0.5, 0.6, 0.7]}, path=path)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[1].get_xdata(), [10, 20, 30, 40])
    assert len(fig.axes) == 2 and mpimg.imread(path).shape[:2] == (400, 1000)
    rec = SimpleNamespace(
        losses=[torch.tensor(v) for v in np.linspace(2, 1, 20)],
        values=[[1.9, 1.5, 0.4, 0.8], [1.2, 1.1, 0.6, 0.9]],
        metric_names=["epoch", "train_loss", "valid_loss", "miou", "accuracy", "time"],
    )
    fig = plot_recorder(rec)
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["miou", "accuracy"]
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), [1.5, 1.1])
