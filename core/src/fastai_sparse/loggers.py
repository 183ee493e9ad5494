"""Experiment logging: ``fastai-sparse train --log csv,tensorboard,wandb`` (``csv`` by default).

Each logger is fastai's own callback where one exists, with what a sparse 3D run adds: the
IoU of every class after each validation (from the learner's
:class:`~fastai_sparse.metrics.PerClassTableCallback`, so tasks with an ``iou-per-class``
metric) and the learning-rate schedule (every optimizer hyper-parameter after every training
batch: ``lr_0``, ``mom_0``, ... as fastai names them, one per parameter group).

* ``csv``: fastai's :class:`~fastai.callback.progress.CSVLogger` (``history.csv``, one line
  per epoch), plus ``schedule.csv`` (one line per training batch: epoch, iteration and the
  hyper-parameters) and ``iou_per_class.csv`` (one line per epoch, one column per class);
* ``tensorboard``: fastai's :class:`~fastai.callback.tensorboard.TensorBoardCallback`
  (event files in ``tensorboard/``; no model graph, fastai's tracer cannot take a sparse
  batch), plus the per-class IoU as scalars ``iou_per_class/<class>`` and as a text table;
  ``pip install "fastai-sparse[tensorboard]"``;
* ``wandb``: fastai's :class:`~fastai.callback.wandb.WandbCallback`, the run's whole
  configuration as the W&B config, the per-class IoU as scalars and a ``wandb.Table``;
  ``pip install "fastai-sparse[wandb]"``. W&B's own settings apply (``WANDB_PROJECT``,
  default ``fastai-sparse``; ``WANDB_MODE=offline`` to log without a network and
  ``wandb sync`` later). The run id is kept in ``run.json`` so a resumed run continues the same
  W&B run.

Steps are global training iterations (``epoch * batches_per_epoch + batch``), so a resumed
run continues its curves instead of starting them again, and the epochs a resumed run skips
log nothing. Only rank 0 logs under DDP (fastai's callbacks check it; the CSV files are
written by rank 0 only).

A logger whose package is missing is refused before anything is written, with one line
naming the extra to install (:class:`MissingLoggerError`).
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path
from typing import Any

from .errors import FastaiSparseError

__all__ = [
    "DEFAULT_LOGGERS",
    "LOGGERS",
    "LoggerError",
    "MissingLoggerError",
    "check_loggers",
    "logger_callbacks",
    "parse_loggers",
]

#: Logger names, and the package each needs with the extra that installs it.
LOGGERS = {"csv": None, "tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}
DEFAULT_LOGGERS = ("csv",)
HISTORY, SCHEDULE, CLASS_TABLE, TB_DIR = "history.csv", "schedule.csv", "iou_per_class.csv", "tensorboard"


class LoggerError(FastaiSparseError, ValueError):
    """An unknown logger name, or a logger that cannot start."""


class MissingLoggerError(LoggerError, ImportError):
    """A logger's optional package is not installed."""


def parse_loggers(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Logger names from ``"csv,tensorboard"`` or a list: stripped, lower-case, each once, in
    the order given; ``None`` gives the default (csv). An unknown name raises
    :class:`LoggerError`; an empty list is allowed (no logs beyond ``run.json``)."""
    if value is None:
        return list(DEFAULT_LOGGERS)
    parts = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for part in parts:
        name = str(part).strip().lower()
        if not name and isinstance(value, str):
            continue
        if name not in LOGGERS:
            import difflib

            near = difflib.get_close_matches(name, list(LOGGERS), n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise LoggerError(f"unknown logger {part!r}; {hint}known: {', '.join(LOGGERS)}")
        if name not in out:
            out.append(name)
    return out


def check_loggers(names: list[str]) -> None:
    """Raise :class:`MissingLoggerError` for the first logger whose package is not installed."""
    for name in names:
        need = LOGGERS.get(name)
        if need is not None and importlib.util.find_spec(need[0]) is None:
            raise MissingLoggerError(
                f'--log {name} needs the {need[0]} package: pip install "fastai-sparse[{need[1]}]"'
            )


def _rank0() -> bool:
    from fastai.torch_core import rank_distrib

    return rank_distrib() == 0


def _class_tables(learn: Any) -> list[Any]:
    from .metrics import PerClassTableCallback

    return [cb for cb in learn.cbs if isinstance(cb, PerClassTableCallback)]


def _hypers(learn: Any) -> dict[str, float]:
    """Every optimizer hyper-parameter of every parameter group: ``{"lr_0": ..., "mom_0": ...}``."""
    out = {}
    for i, h in enumerate(learn.opt.hypers):
        for k, v in h.items():
            out[f"{k}_{i}"] = float(v)
    return out


def _step(cb: Any) -> int:
    """The global training iteration of the current batch (resume-proof, unlike ``train_iter``)."""
    return int(cb.epoch) * int(cb.n_iter) + int(cb.iter)


def _callback_classes() -> dict[str, type]:
    """The logger callbacks (built on first use: fastai is imported only then)."""
    from fastai.callback.core import Callback
    from fastai.callback.progress import CSVLogger

    class HistoryCSV(CSVLogger):
        """fastai's CSVLogger; silent for the epochs a resumed run skips."""

        def __init__(self, fname: str = HISTORY, append: bool = False, start: int = 0):
            super().__init__(fname=fname, append=append)
            self.start = start

        def before_fit(self):
            if not _rank0():
                self.run = False
                return
            super().before_fit()

        def _write_line(self, log):
            if self.epoch >= self.start:
                super()._write_line(log)

    class TablesCSV(Callback):
        """``schedule.csv`` (every training batch: epoch, iteration, hyper-parameters) and
        ``iou_per_class.csv`` (every epoch: the IoU of each class), appended to on resume."""

        order = 61  # after the recorder and the per-class tables

        def __init__(self, append: bool = False, start: int = 0):
            self.append, self.start = append, start
            self._rows: list[dict] = []

        def before_fit(self):
            self.run = not hasattr(self.learn, "lr_finder") and not hasattr(self, "gather_preds") and _rank0()

        def after_batch(self):
            if self.training and self.epoch >= self.start:
                self._rows.append({"epoch": self.epoch, "iteration": _step(self), **_hypers(self.learn)})

        def after_epoch(self):
            if self.epoch < self.start:
                self._rows.clear()
                return
            append = self.append or self.epoch > self.start
            if self._rows:
                self._write(SCHEDULE, self._rows, append)
                self._rows = []
            for table in _class_tables(self.learn):
                if table.last is not None:
                    self._write(CLASS_TABLE, [{"epoch": self.epoch, **table.last}], append)

        def _write(self, name: str, rows: list[dict], append: bool) -> None:
            path = Path(self.learn.path) / name
            new = not append or not path.exists() or path.stat().st_size == 0
            with path.open("w" if not append else "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                if new:
                    w.writeheader()
                w.writerows(rows)
                f.flush()
                os.fsync(f.fileno())

    classes = {"HistoryCSV": HistoryCSV, "TablesCSV": TablesCSV}
    return classes


def _tensorboard_class() -> type:
    from fastai.callback.tensorboard import TensorBoardCallback

    class SparseTensorBoard(TensorBoardCallback):
        """fastai's TensorBoardCallback (writer on rank 0, not during lr_find or get_preds)
        without the model graph and sample images, with global steps that survive a resume and
        the per-class IoU (scalars ``iou_per_class/<class>`` and a text table)."""

        def __init__(self, log_dir: str | Path, start: int = 0):
            super().__init__(log_dir=str(log_dir), trace_model=False, log_preds=False)
            self.start = start

        def after_batch(self):
            if not self.training:
                return
            step = _step(self)
            self.writer.add_scalar("train_loss", float(self.smooth_loss), step)
            for k, v in _hypers(self.learn).items():
                self.writer.add_scalar(k, v, step)

        def after_epoch(self):
            if self.epoch < self.start:
                return
            step = (int(self.epoch) + 1) * int(self.n_iter)
            for n, v in zip(self.recorder.metric_names[2:-1], self.recorder.log[2:-1]):
                if isinstance(v, (int, float)) or hasattr(v, "__float__"):
                    self.writer.add_scalar(n, float(v), step)
            for table in _class_tables(self.learn):
                if table.last is None:
                    continue
                for cls, iou in table.last.items():
                    self.writer.add_scalar(f"iou_per_class/{cls}", iou, step)
                lines = ["| class | IoU |", "| --- | --- |"] + [
                    f"| {c} | {v:.4f} |" for c, v in table.last.items()
                ]
                self.writer.add_text("iou_per_class", "\n".join(lines), step)
            self.writer.flush()

    return SparseTensorBoard


def _wandb_class() -> type:
    import wandb
    from fastai.callback.wandb import WandbCallback

    class SparseWandb(WandbCallback):
        """fastai's WandbCallback, with the run started here (``wandb.init`` with the run's
        configuration, id and folder) and finished at the end of the fit, the per-class IoU
        logged after each epoch, and the epochs a resumed run skips left out."""

        def __init__(self, out: Path, run_id: str, config: dict | None, start: int = 0):
            super().__init__(log_preds=False, log_model=False)
            self.out, self.run_id, self.config, self.start = Path(out), run_id, config, start
            self._started = False

        def before_fit(self):
            if hasattr(self.learn, "lr_finder") or hasattr(self, "gather_preds") or not _rank0():
                self.run = False
                return
            if wandb.run is None:
                try:
                    wandb.init(
                        project=os.environ.get("WANDB_PROJECT", "fastai-sparse"),
                        dir=str(self.out),
                        id=self.run_id,
                        name=self.out.name,
                        config=self.config or {},
                        resume="allow",
                    )
                except Exception as e:  # not logged in, no network, ...
                    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise LoggerError(
                        f"--log wandb: W&B could not start ({msg}); run `wandb login`, or set "
                        "WANDB_MODE=offline to log locally and `wandb sync` later"
                    ) from e
                self._started = True
            # fastai's default gathers input shapes from a batch (a sparse batch has none):
            # the run's configuration is already W&B's config
            self.learn.gather_args = dict
            try:
                super().before_fit()
            finally:
                del self.learn.gather_args

        def after_epoch(self):
            if self.epoch < self.start:
                return
            super().after_epoch()
            for table in _class_tables(self.learn):
                if table.last is None:
                    continue
                rows = [[c, v] for c, v in table.last.items()]
                wandb.log(
                    {
                        **{f"iou_per_class/{c}": v for c, v in table.last.items()},
                        "iou_per_class_table": wandb.Table(columns=["class", "iou"], data=rows),
                    },
                    step=self._wandb_step,
                )

        def after_fit(self):
            super().after_fit()
            if self._started:
                wandb.finish()
                self._started = False

    return SparseWandb


def logger_callbacks(
    names: str | list[str] | None,
    out: str | Path,
    *,
    config: dict | None = None,
    start: int = 0,
    resume: bool = False,
    record: dict | None = None,
) -> tuple[list, dict]:
    """fastai callbacks for the loggers ``names`` writing into ``out`` (the learner's path),
    and the record of what they write (for ``run.json``).

    ``config``: the run's configuration (W&B's config); ``start``: the first epoch this fit
    trains (a resumed run's), earlier epochs log nothing; ``resume``: append to the files of
    the run instead of starting them again; ``record``: the record of the run being resumed
    (keeps its W&B run id). Raises :class:`MissingLoggerError` when a package is missing.
    """
    names = parse_loggers(names)
    check_loggers(names)
    out = Path(out)
    record = dict(record or {})
    cbs: list = []
    new: dict[str, Any] = {}
    if "csv" in names:
        c = _callback_classes()
        cbs += [
            c["HistoryCSV"](HISTORY, append=resume, start=start),
            c["TablesCSV"](append=resume, start=start),
        ]
        new["csv"] = {"files": [HISTORY, SCHEDULE, CLASS_TABLE]}
    if "tensorboard" in names:
        cbs.append(_tensorboard_class()(out / TB_DIR, start=start))
        new["tensorboard"] = {"log_dir": TB_DIR}
    if "wandb" in names:
        run_id = (record.get("wandb") or {}).get("id")
        if not run_id:
            import secrets

            run_id = secrets.token_hex(4)
        cbs.append(_wandb_class()(out, run_id, config, start=start))
        new["wandb"] = {
            "id": run_id,
            "project": os.environ.get("WANDB_PROJECT", "fastai-sparse"),
            "mode": os.environ.get("WANDB_MODE", "online"),
            "dir": "wandb",
        }
    return cbs, new
