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
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["valley: 1.00e-03", "slide: 3.00e-03"]
    assert mpimg.imread(path).shape[:2] == (180, 300)
    with pytest.raises(ShapeError):
        plot_lr_find([1, 2], [1])


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
