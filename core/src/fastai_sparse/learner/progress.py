"""What training prints: fastai's bars where they work, one plain line per epoch in logs, and
``lr_find`` shown as what it is.

fastai's ``ProgressCallback`` draws a bar per epoch and a table row per epoch. Two things go
wrong with it (fastai 2.8, fastprogress 1.1):

* under a pipe or a file (CI, ``nohup``, ``torchrun`` logs) fastprogress still draws its bars
  with carriage returns (its terminal check tests ``sys.stdout.isatty`` without calling it),
  so a log holds bar fragments between the table rows;
* ``lr_find`` is a fit of ``num_it // batches + 1`` "epochs" that stops after ``num_it``
  batches: its bars read ``Epoch 1/4 ... 4/4`` and stop part way, like an interrupted
  training.

:class:`SparseProgressCallback` (every :class:`~fastai_sparse.learner.SparseLearner` carries
it in place of fastai's) keeps fastai's bars and table in a terminal and a notebook, prints
only the table (a header, then one line per epoch) when the output is not a terminal, and
shows ``lr_find`` as one bar over its iterations, labelled ``lr_find`` with the learning rate
and the loss (in a log: one line when it starts and one when it ends, saying whether it ran
all its iterations or stopped because the loss diverged). ``learn.no_bar()`` silences it as
it silences fastai's.
"""

from __future__ import annotations

import sys

from fastai.callback.progress import ProgressCallback
from fastai.imports import noop
from fastprogress.fastprogress import progress_bar

__all__ = ["SparseProgressCallback", "interactive"]


def interactive() -> bool:
    """True in a notebook or when standard output is a terminal (bars can be redrawn)."""
    from fastprogress.core import IN_NOTEBOOK

    if IN_NOTEBOOK:
        return True
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _row(values, names: list[str] | None) -> tuple[str, list[str]]:
    """fastai's console table row: each cell padded to its column name (at least 8 wide)."""
    cells = [f"{v:.6f}" if isinstance(v, float) else str(v) for v in values]
    if names is None:
        names = [c + " " * (8 - len(c)) if len(c) < 8 else c for c in cells]
        return "  ".join(names).rstrip(), names
    return "".join(c + " " * (2 + len(n) - len(c)) for c, n in zip(cells, names)).rstrip(), names


class SparseProgressCallback(ProgressCallback):
    """fastai's progress callback, readable in logs and honest about ``lr_find`` (see the
    module docstring). Named ``progress`` like fastai's, so ``learn.progress``,
    ``learn.no_bar()`` and ``remove_cb(ProgressCallback)`` find it."""

    _stateattrs = ("mbar", "pbar", "lr_bar", "finder")

    @property
    def name(self) -> str:
        return "progress"

    def before_fit(self):
        self.finder = getattr(self.learn, "lr_finder", None)
        self.plain = not interactive()
        self.lr_bar = None
        if self.finder is not None:
            return self._begin_lr_find()
        if not self.plain:
            return super().before_fit()
        self._names = None
        if self.learn.logger is not noop:  # the table, one plain line per epoch
            self.old_logger, self.learn.logger = self.learn.logger, self._write_plain
            self._write_plain(self.recorder.metric_names)
        else:
            self.old_logger = noop

    def _write_plain(self, log) -> None:
        line, self._names = _row(log, self._names)
        print(line, flush=True)

    # -- lr_find -----------------------------------------------------------------------------
    def _begin_lr_find(self) -> None:
        f = self.finder
        self.n_it = int(f.num_it)
        start, end = _lr_range(f)
        what = f"lr_find: {self.n_it} training batches at learning rates from {start:.0e} to {end:.0e}"
        if self.plain:
            print(f"{what} (the weights are restored afterwards)", flush=True)
        else:
            self.lr_bar = progress_bar(range(self.n_it), leave=True)
            if hasattr(self.lr_bar, "prefix"):
                self.lr_bar.prefix = "lr_find"
            self.lr_bar.comment = "learning rate finder (the weights are restored afterwards)"
            self.lr_bar.update(0)

    def _end_lr_find(self) -> None:
        done = int(getattr(self.learn, "train_iter", 0))
        if done >= self.n_it:
            msg = f"lr_find: done, {done} batches"
        else:
            msg = f"lr_find: stopped after {done} of {self.n_it} batches (the loss diverged)"
        if self.lr_bar is not None:
            self.lr_bar.on_iter_end()
            self.lr_bar = None
            if done >= self.n_it:
                return
        print(msg, flush=True)

    # -- the loop ----------------------------------------------------------------------------
    def before_epoch(self):
        if self.finder is None and not self.plain:
            super().before_epoch()

    def before_train(self):
        if self.finder is None and not self.plain:
            super().before_train()

    def before_validate(self):
        if self.finder is None and not self.plain:
            super().before_validate()

    def after_train(self):
        if self.finder is None and not self.plain:
            super().after_train()

    def after_validate(self):
        if self.finder is None and not self.plain:
            super().after_validate()

    def after_batch(self):
        if self.finder is not None:
            if self.lr_bar is not None and self.training:
                i = min(int(self.learn.train_iter), self.n_it)
                lr = self.learn.opt.hypers[-1].get("lr", float("nan"))
                loss = getattr(self.learn, "smooth_loss", None)
                self.lr_bar.comment = f"lr {lr:.1e}" + (
                    f", loss {float(loss):.4f}" if loss is not None else ""
                )
                self.lr_bar.update(i)
        elif not self.plain:
            super().after_batch()

    def after_fit(self):
        if self.finder is not None:
            self.finder = None
            return self._end_lr_find()
        if not self.plain:
            return super().after_fit()
        if hasattr(self, "old_logger"):
            self.learn.logger = self.old_logger


def _lr_range(finder) -> tuple[float, float]:
    """The first and last learning rates of an ``LRFinder`` (the first parameter group's)."""
    sched = finder.scheds["lr"]
    sched = sched[0] if isinstance(sched, (list, tuple)) else sched
    return float(sched(0.0)), float(sched(1.0))
