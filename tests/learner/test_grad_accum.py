"""Gradient accumulation and the batch-size rule of data-parallel training, in one process:
``n`` accumulated batches of ``b`` step exactly like one batch of ``n * b`` (a model without
batch norm, one-cycle schedule), and ``bs`` splits over processes and accumulation or fails
with a message saying what fits; the distributed loader's shares are strided."""

from __future__ import annotations

import pytest
import torch

from fastai_sparse import _fastai  # noqa: F401

# isort: split
import fastai.callback.progress
import fastai.callback.schedule  # noqa: F401  (Learner.fit_one_cycle)
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastai.optimizer import Adam

from fastai_sparse.distributed import GradientAccumulation, SparseDistributedDL, per_process_bs
from fastai_sparse.errors import FastaiSparseError


def _fit(bs: int, accum: int | None, n: int = 16, epochs: int = 2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds, bs=bs), DataLoader(ds[:4], bs=4))
    torch.manual_seed(0)
    learn = Learner(dls, torch.nn.Linear(3, 1), loss_func=MSELossFlat(), opt_func=Adam)
    cbs = [GradientAccumulation(accum)] if accum else []
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, 1e-2, cbs=cbs)
    return learn, cbs


@pytest.mark.parametrize(("big", "small", "accum", "steps"), [(4, 2, 2, 8), (4, 1, 4, 8), (6, 2, 3, 6)])
def test_accumulated_batches_step_like_one_big_batch(big, small, accum, steps):
    """(6, 2, 3): 16 samples make batches of 6, 6 and 4, and groups of 3, 3 and 2 batches of 2:
    the last, partial group steps like the last, smaller batch."""
    ref, _ = _fit(big, None)
    learn, (cb,) = _fit(small, accum)
    assert cb.steps == steps
    for p, q in zip(ref.model.parameters(), learn.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert (ref.opt.hypers[0]["lr"], ref.opt.hypers[0]["mom"]) == pytest.approx(
        (learn.opt.hypers[0]["lr"], learn.opt.hypers[0]["mom"])
    )


def test_without_the_schedule_fix_the_steps_would_differ():
    """The comparison above can fail: a group run at its last batch's learning rate (what fastai's
    scheduler alone does) ends elsewhere."""
    ref, _ = _fit(4, None)
    cb = GradientAccumulation(2)
    cb._schedule_of_first = lambda *a, **k: None
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(16, 1, generator=g)
    ds = list(zip(x, y))
    torch.manual_seed(0)
    learn = Learner(
        DataLoaders(DataLoader(ds, bs=2), DataLoader(ds[:4], bs=4)),
        torch.nn.Linear(3, 1),
        loss_func=MSELossFlat(),
        opt_func=Adam,
    )
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2, 1e-2, cbs=[cb])
    diff = max(
        float((p - q).detach().abs().max()) for p, q in zip(ref.model.parameters(), learn.model.parameters())
    )
    assert diff > 1e-4


def test_bs_is_the_batch_of_one_step():
    assert per_process_bs(8) == 8
    assert per_process_bs(8, 2) == 4
    assert per_process_bs(8, 2, 2) == 2
    assert per_process_bs(8, 4, 2) == 1
    with pytest.raises(FastaiSparseError, match=r"bs=8 .* 3 processes x grad_accum=1; use bs=6 or 9"):
        per_process_bs(8, 3)
    with pytest.raises(FastaiSparseError, match=r"use bs=4 \(--set bs=N\)|use bs=4 or"):
        per_process_bs(2, 2, 2)


def test_distributed_shares_are_strided_and_padded(monkeypatch):
    """Rank r reads positions r, r + W, ... of the epoch's order (padded by repeating it), so the
    W batches of one step hold the samples of one single-process batch W times larger."""
    monkeypatch.setattr(SparseDistributedDL, "_broadcast", lambda self, idxs: idxs)
    dl = DataLoader(list(range(5)), bs=1)
    shares = [SparseDistributedDL(dl, rank=r, world_size=2).get_idxs() for r in range(2)]
    assert shares == [[0, 2, 4], [1, 3, 0]]
    d = SparseDistributedDL(dl, rank=1, world_size=2)
    d.get_idxs()
    assert (d.n, d.n_padded) == (5, 6)
