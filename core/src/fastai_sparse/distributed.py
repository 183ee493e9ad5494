"""Data-parallel training (PyTorch DDP) for sparse batches, on CPU (gloo) or GPUs (nccl).

fastai's own ``Learner.distrib_ctx`` needs the ``accelerate`` package (``fastai.distributed``
does not even import without it) and, on CPU, fails in three ways with sparse batches (fastai
2.8): ``SyncBatchNorm`` is GPU-only, so ``sync_bn`` must be off; ``DistributedDL._broadcast``
moves the index list to CUDA unconditionally; and ``DistributedDL`` counts a batch's samples
with ``find_bs``, which on a dict batch returns the number of voxels. This module provides the
same mechanism without those problems and without ``accelerate``:

- :class:`SparseDistributedDL`: gives each rank an equal share of every epoch's sample order
  (broadcast from rank 0; moved to CUDA only under nccl), strided like torch's
  ``DistributedSampler`` (rank ``r`` reads positions ``r, r + W, r + 2W, ...``), so the ``W``
  batches of one step together hold the same samples as one batch ``W`` times larger in a
  single process; the list is padded by repeating samples so every rank runs the same number
  of batches (DDP needs that); samples are counted from ``voxel_offsets``;
- :class:`GradientAccumulation`: an optimizer step every ``n`` batches (fastai's own counts a
  sparse batch's samples as its points);
- :func:`per_process_bs`: the scaling rule ``fastai-sparse train`` applies: the configured
  ``bs`` is the effective batch of one optimizer step, split over the processes and the
  accumulated batches (docs/training.md);
- :class:`SparseDistributedTrainer`: a callback wrapping the model in
  ``torch.nn.parallel.DistributedDataParallel`` and the loaders in :class:`SparseDistributedDL`;
  process group from the ``torchrun`` environment;
- :func:`distrib_ctx`: context manager (also ``SparseLearner.distrib_ctx``).

Launch with ``torchrun --nproc_per_node 2 train.py`` (``accelerate launch --cpu`` started a
single process in our tests). Metrics sum their confusion matrices across ranks, and
:func:`padded_row_mask` tells them which rows belong to padding samples, so every validation
sample is counted exactly once. Predict (``get_preds``, ``predict``, ``tta``) in a single
process: per-point outputs of different sizes cannot be gathered by fastai.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager

import torch

from . import _fastai  # noqa: F401  (fastai without its import-time deprecation warning: first)

# isort: split
from fastai.callback.core import Callback, TrainEvalCallback
from fastai.data.load import DataLoader
from fastai.imports import noop
from fastai.learner import Recorder

__all__ = [
    "GradientAccumulation",
    "SparseDistributedDL",
    "SparseDistributedTrainer",
    "distrib_ctx",
    "padded_row_mask",
    "per_process_bs",
    "setup_process_group",
    "world",
]


def _is_dist() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: from the process group when there is one, else
    from ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``), else ``(0, 1)``."""
    if _is_dist():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def per_process_bs(bs: int, world_size: int = 1, grad_accum: int = 1) -> int:
    """The batch each process loads when ``bs`` is the effective batch of one optimizer step:
    ``bs / (world_size * grad_accum)``, which must be a whole number (an error says what fits).
    Steps per epoch and the learning rate then stay those of a single process with batch ``bs``."""
    from .errors import FastaiSparseError

    parts = int(world_size) * int(grad_accum)
    if bs % parts:
        fits = sorted({parts * max(1, bs // parts), parts * (bs // parts + 1)})
        raise FastaiSparseError(
            f"bs={bs} is the batch of one optimizer step and must split evenly over {world_size} "
            f"process{'es' if world_size != 1 else ''} x grad_accum={grad_accum}; use bs="
            f"{' or '.join(map(str, fits))} (--set bs=N), or another grad_accum"
        )
    return bs // parts


class GradientAccumulation(Callback):
    """An optimizer step every ``n`` training batches, with the gradients of those batches
    summed and each batch's loss divided by ``n`` (so ``n`` batches of ``b`` samples step like
    one batch of ``n * b``; batch norm still sees ``b`` samples at a time). ``steps`` counts the
    optimizer steps of the current fit. fastai's ``GradientAccumulation`` counts samples with
    ``find_bs``, which on a sparse batch counts points; this one counts batches. The schedule's
    hyper-parameters (one-cycle's lr and momentum) are those of the group's first batch, as
    they would be for the one big batch (fastai's scheduler sets them per loaded batch, so
    without this a step would run at its last batch's rate). A partial group left at the end of
    an epoch is stepped then as a smaller batch (the mean of its batches' gradients), not
    carried into the next epoch; with fp16 loss scaling choose ``n`` dividing the batches of an
    epoch, as that last step bypasses the scaler."""

    order, run_valid = 6, False  # before MixedPrecision (10), as fastai's

    def __init__(self, n: int = 1):
        self.n, self.steps, self.count = int(n), 0, 0

    def before_fit(self):
        self.steps, self.count = 0, 0

    def after_loss(self):
        if self.n > 1:
            self.learn.loss_grad = self.learn.loss_grad / self.n

    def before_step(self):
        self.count += 1
        if self.count < self.n:
            from fastai.callback.core import CancelBatchException

            raise CancelBatchException()  # no step and no zero_grad: the gradients add up
        if self.n > 1:
            self._schedule_of_first(self.learn.iter - (self.n - 1))
        self.count = 0
        self.steps += 1

    def _schedule_of_first(self, first: int) -> None:
        """Set the scheduled hyper-parameters to the values of this step when steps, not loaded
        batches, are counted: step ``first // n`` of ``ceil(n_iter / n)`` in this epoch (``first``:
        the group's first batch in the epoch)."""
        import math

        from fastai.callback.schedule import ParamScheduler

        per_epoch = math.ceil(self.learn.n_iter / self.n)
        pct = (self.learn.epoch * per_epoch + first // self.n) / (self.learn.n_epoch * per_epoch)
        for cb in self.learn.cbs:
            if isinstance(cb, ParamScheduler):
                cb._update_val(pct)

    def after_train(self):
        if self.count:  # the epoch's last, partial group: its mean gradient, like a smaller batch
            self._schedule_of_first(self.learn.n_iter - self.count)
            for p in self.learn.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(self.n / self.count)
            self.learn.opt.step()
            self.learn.opt.zero_grad()
            self.count = 0
            self.steps += 1


def setup_process_group(backend: str | None = None) -> bool:
    """Initialise the default process group from the ``torchrun`` environment
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...) if it is not initialised yet.

    backend: "gloo" (CPU, default without CUDA) or "nccl" (default with CUDA).
    Returns True when this call created the group (the caller should destroy it).
    """
    if _is_dist() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend=backend, init_method="env://")
    return True


def _n_samples(b) -> int:
    x = b[0] if isinstance(b, (tuple, list)) else b
    if isinstance(x, dict) and "voxel_offsets" in x:
        return len(x["voxel_offsets"]) - 1
    from fastai.torch_core import find_bs

    return find_bs(b)


class SparseDistributedDL(DataLoader):
    """Wraps a (sparse) fastai loader so that each of ``world_size`` ranks reads its own
    contiguous share of every epoch's sample order.

    The order comes from the wrapped loader on rank 0 (broadcast); it is padded by repeating
    samples to a multiple of ``world_size``. ``n`` (real samples), ``n_padded`` and ``i``
    (samples read so far by this rank) let :func:`padded_row_mask` drop the padding from metrics.
    """

    def __init__(self, dl, rank: int | None = None, world_size: int | None = None):
        self.dl = dl
        self.rank = torch.distributed.get_rank() if rank is None else int(rank)
        self.world_size = torch.distributed.get_world_size() if world_size is None else int(world_size)
        self.i, self.n_padded = 0, None
        super().__init__(
            dl.dataset,
            bs=dl.bs,
            shuffle=False,
            drop_last=dl.drop_last,
            num_workers=dl.fake_l.num_workers,
            pin_memory=dl.pin_memory,
            device=dl.device,
        )

    def __len__(self) -> int:
        per_rank = math.ceil(len(self.dataset) / self.world_size)
        return per_rank // self.bs + (0 if self.drop_last or per_rank % self.bs == 0 else 1)

    def _broadcast(self, idxs: list[int]) -> list[int]:
        dev = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"  # nccl needs CUDA tensors
        t = torch.tensor(idxs, dtype=torch.long, device=dev)
        torch.distributed.broadcast(t, 0)
        return t.cpu().tolist()

    def get_idxs(self) -> list[int]:
        idxs = self._broadcast(list(self.dl.get_idxs()))
        self.n = len(idxs)
        self.n_padded = math.ceil(self.n / self.world_size) * self.world_size
        padded = (idxs * (self.n_padded // max(self.n, 1) + 1))[: self.n_padded]
        return padded[self.rank :: self.world_size]  # strided: a step's batches = one big batch

    def randomize(self):
        self.dl.randomize()

    def before_iter(self):
        self.i = 0
        self.dl.before_iter()

    def create_batch(self, b):
        return self.dl.create_batch(b)

    def retain(self, res, b):
        return res

    def after_batch(self, b):
        self.i += _n_samples(b)
        return self.dl.after_batch(b)

    def after_iter(self):
        self.dl.after_iter()


def padded_row_mask(learn, n_rows: int) -> torch.Tensor | None:
    """bool [n_rows]: the rows of the current batch (points or samples) that belong to real
    samples; False for samples the distributed loader repeated as padding. None when not
    distributed or nothing is padded."""
    dl = getattr(learn, "dl", None)
    if not isinstance(dl, SparseDistributedDL) or dl.n_padded is None:
        return None
    if dl.n_padded == dl.n:
        return None
    x = learn.xb[0] if len(learn.xb) else None
    bs = _n_samples((x,)) if isinstance(x, dict) else n_rows
    # the j-th sample of this rank sits at position rank + j * world_size of the padded order
    j = torch.arange(bs) + dl.i - bs
    real = (dl.rank + j * dl.world_size) < dl.n
    if real.all():
        return None
    if isinstance(x, dict) and "point_offsets" in x and n_rows != bs:
        counts = (x["point_offsets"][1:] - x["point_offsets"][:-1]).cpu()
        if int(counts.sum()) != n_rows:
            return None
        return torch.repeat_interleave(real, counts)
    return real


class SparseDistributedTrainer(Callback):
    """Wrap the model in ``DistributedDataParallel`` and the loaders in :class:`SparseDistributedDL`.

    sync_bn: convert BatchNorm to SyncBatchNorm (GPU only; must stay False on CPU).
    backend: process-group backend when this callback creates the group (gloo on CPU).
    """

    order = 11
    run_after, run_before = TrainEvalCallback, Recorder

    def __init__(
        self, sync_bn: bool = False, backend: str | None = None, find_unused_parameters: bool = False
    ):
        self.sync_bn, self.backend, self.find_unused_parameters = sync_bn, backend, find_unused_parameters

    def before_fit(self):
        setup_process_group(self.backend)
        model = self.learn.model
        if torch.distributed.get_backend() == "nccl":
            dev = torch.device("cuda", torch.cuda.current_device())
            model = model.to(dev)
            ids = [dev.index]
        else:
            if self.sync_bn:
                raise ValueError(
                    "sync_bn=True needs CUDA (SyncBatchNorm is GPU-only); use sync_bn=False on CPU"
                )
            ids = None
        if self.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.learn.model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=self.find_unused_parameters
        )
        self.old_dls = list(self.dls)
        self.learn.dls.loaders = [self._wrap_dl(dl) for dl in self.dls]
        if torch.distributed.get_rank():
            self.learn.logger = noop

    def _wrap_dl(self, dl):
        return dl if isinstance(dl, SparseDistributedDL) else SparseDistributedDL(dl)

    def before_train(self):
        self.learn.dl = self._wrap_dl(self.learn.dl)

    def before_validate(self):
        self.learn.dl = self._wrap_dl(self.learn.dl)

    def after_fit(self):
        self.learn.model, self.learn.dls.loaders = self.learn.model.module, self.old_dls


@contextmanager
def distrib_ctx(
    learn, sync_bn: bool = False, backend: str | None = None, find_unused_parameters: bool = False
):
    """Train ``learn`` data-parallel inside the block when launched by ``torchrun`` (a no-op in a
    single process). Creates the process group if needed and destroys it on exit."""
    created = setup_process_group(backend)
    cb = None
    try:
        if _is_dist() and torch.distributed.get_world_size() > 1:
            cb = SparseDistributedTrainer(sync_bn, backend, find_unused_parameters)
            learn.add_cb(cb)
            if torch.distributed.get_rank():
                from fastai.callback.progress import ProgressCallback

                learn.remove_cb(ProgressCallback)
        yield learn
    finally:
        if cb is not None:
            learn.remove_cb(cb)
        if created:
            torch.distributed.destroy_process_group()
