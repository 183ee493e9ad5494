"""The callbacks every :class:`~fastai_sparse.learner.SparseLearner` carries: seeded epochs and a
stop with :class:`~fastai_sparse.errors.NonFiniteLossError` on a NaN or infinite loss."""

from __future__ import annotations

import torch
from fastai.callback.core import Callback

from ..errors import (
    NonFiniteLossError,
)

__all__ = ["EpochSeedCallback", "NonFiniteLossCallback"]


class EpochSeedCallback(Callback):
    """Sets ``dls.train.dataset.epoch = learn.epoch`` before each epoch, so sample ``i`` of epoch
    ``e`` is augmented identically in every run (and on resume)."""

    order = -10

    def before_epoch(self):
        ds = getattr(self.dls.train, "dataset", None)
        if ds is not None and hasattr(ds, "epoch"):
            ds.epoch = int(self.learn.epoch)


class NonFiniteLossCallback(Callback):
    """Stops with :class:`NonFiniteLossError` (epoch, batch index, phase) when the loss is NaN/inf."""

    order = -5

    def after_loss(self):
        loss = getattr(self.learn, "loss", None)
        if loss is None or bool(torch.isfinite(loss.detach()).all()):
            return
        phase = "training" if self.training else "validation"
        dl = getattr(self.learn, "dl", None)
        raise NonFiniteLossError(
            f"the loss is {float(loss.detach().float().mean())} at epoch {getattr(self.learn, 'epoch', 0)}, "
            f"{phase} batch {self.learn.iter} (of {len(dl) if dl is not None else '?'})"
            f"{_batch_items(dl, self.learn.iter)}; lower the learning rate, check the inputs for NaN/inf "
            "and the targets for labels outside the classes"
        )


def _batch_items(dl, i: int) -> str:
    """ ", samples [3, 7] (ids 'a', 'b')" for batch ``i`` of ``dl`` when the order is known, else ""."""
    idxs = getattr(dl, "_DataLoader__idxs", None)
    bs = getattr(dl, "bs", None)
    if idxs is None or not bs:
        return ""
    try:
        batch = [int(j) for j in list(idxs)[i * bs : (i + 1) * bs]]
        items = getattr(dl.dataset, "items", None)
        ids = [getattr(items[j], "meta", {}).get("id") for j in batch] if items is not None else []
    except (TypeError, IndexError, ValueError):
        return ""
    named = [str(v) for v in ids if v is not None]
    return f", samples {batch}" + (f" (ids {', '.join(named)})" if named else "")
