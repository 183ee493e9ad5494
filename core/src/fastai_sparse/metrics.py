"""Epoch-level metrics for sparse 3D tasks, as fastai :class:`~fastai.learner.Metric` objects.

Classification-type metrics (IoU per class, mIoU, overall accuracy, mean class accuracy) all
accumulate a confusion matrix over the whole epoch (int64, rows = true class, columns =
predicted class) and compute their value from it at the end: never a mean of per-batch
values. Regression metrics accumulate sums of errors. Under ``torch.distributed`` the
accumulated state is summed across ranks (all-reduce) the first time ``value`` is read after
an epoch, so every rank reports the metric of the whole validation set.

Each metric works on per-point outputs (``pred`` float [N, K] logits or int64 [N] labels,
target int64 [N]) and per-sample outputs ([B, K] vs [B]) alike.

Factories with the signature ``factory(target_type) -> Metric`` (registered by name in the
built-in plugin): :func:`miou`, :func:`iou_per_class`, :func:`accuracy`,
:func:`mean_class_accuracy`, :func:`mae`, :func:`rmse`.

Writing a metric (see ``docs/plugin-authoring.md``, section Metrics): subclass :class:`ConfusionMetric` and implement
``compute(cm)`` (a value from the epoch's confusion matrix) with a class attribute ``_name``; or
give a plain function ``f(pred, targ) -> float``, which :class:`FunctionMetric` averages over
the epoch weighted by the rows of each batch (:func:`function_metric` makes a factory of it, and
a factory that returns a plain function gets it wrapped the same way, see :func:`as_metric`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import _fastai  # noqa: F401  (fastai without its import-time deprecation warning: first)

# isort: split
from fastai.imports import noop  # the logger fastai's no_logging() installs
from fastai.learner import Callback, Metric

from .errors import DataFormatError, PluginError, ShapeError

__all__ = [
    "MAE",
    "RMSE",
    "Accuracy",
    "ConfusionMatrix",
    "ConfusionMetric",
    "FunctionMetric",
    "IoUPerClass",
    "MeanClassAccuracy",
    "MeanIoU",
    "PerClassTableCallback",
    "accuracy",
    "as_metric",
    "confusion_matrix",
    "format_class_table",
    "function_metric",
    "iou_from_confusion",
    "iou_per_class",
    "mae",
    "mean_class_accuracy",
    "miou",
    "rmse",
]


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all ranks (a copy; no-op when torch.distributed is not initialised)."""
    if not _dist_ready() or torch.distributed.get_world_size() <= 1:
        return t
    out = t.clone()
    if torch.distributed.get_backend() == "nccl":
        out = out.cuda()
    torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
    return out.to(t.device)


def confusion_matrix(
    pred: torch.Tensor,
    targ: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = -100,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Confusion matrix int64 [K, K] (rows = true class, columns = predicted class).

    pred: float [N, K] scores (argmax taken) or integer [N] labels; targ: integer [N];
    targets equal to ``ignore_index`` are skipped; mask: bool [N], rows to keep.
    A target or predicted label outside ``0..K-1`` (other than ``ignore_index``) raises.
    """
    k = int(num_classes)
    pred, targ = pred.detach(), targ.detach()
    if pred.is_floating_point():
        if pred.ndim != 2 or pred.shape[1] != k:
            raise ShapeError(
                f"predictions have shape {list(pred.shape)}, expected [N, {k}] scores or [N] labels"
            )
        pred = pred.argmax(1)
    pred, targ = pred.reshape(-1).long(), targ.reshape(-1).long()
    if len(pred) != len(targ):
        raise ShapeError(
            f"{len(pred)} predictions but {len(targ)} targets; expected one prediction per target"
        )
    keep = torch.ones_like(targ, dtype=torch.bool) if ignore_index is None else targ != ignore_index
    if mask is not None:
        keep &= mask.reshape(-1).to(keep.device)
    pred, targ = pred[keep], targ[keep]
    if len(targ):
        bad = (targ < 0) | (targ >= k)
        if bad.any():
            raise DataFormatError(
                f"target label {int(targ[bad][0])} is outside 0..{k - 1} and is not the ignore index {ignore_index}",
                field="target",
            )
        bad = (pred < 0) | (pred >= k)
        if bad.any():
            raise DataFormatError(
                f"predicted label {int(pred[bad][0])} is outside 0..{k - 1}", field="prediction"
            )
    return torch.bincount(targ * k + pred, minlength=k * k).reshape(k, k).cpu().long()


def iou_from_confusion(cm: torch.Tensor | np.ndarray) -> np.ndarray:
    """IoU per class float64 [K] from a confusion matrix: TP / (TP + FP + FN).

    A class absent from both the targets and the predictions has IoU NaN (left out of means).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


class ConfusionMatrix(Metric):
    """Accumulates an int64 [K, K] confusion matrix over an epoch (rows = truth, cols = prediction).

    ``value`` is the matrix summed over ranks under ``torch.distributed`` (int64 tensor). Not meant
    for the recorder (not a scalar): the metrics below derive their scalar from it.
    """

    def __init__(
        self, num_classes: int, ignore_index: int | None = -100, class_names: Sequence[str] | None = None
    ):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.ignore_index = int(num_classes), ignore_index
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        self.reset()

    def reset(self) -> None:
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self._reduced = None

    def update(self, pred: torch.Tensor, targ: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Add one batch: pred [N, K] scores or [N] labels, targ [N]; mask bool [N] rows to count."""
        self.matrix += confusion_matrix(pred, targ, self.num_classes, self.ignore_index, mask)
        self._reduced = None

    def accumulate(self, learn) -> None:
        pred, targ = learn.pred, learn.yb[0]
        self.update(pred, targ, _ddp_row_mask(learn, len(targ)))

    @property
    def total(self) -> torch.Tensor:
        """The matrix summed over all ranks (computed once per epoch, cached)."""
        if self._reduced is None:
            self._reduced = _all_reduce_sum(self.matrix)
        return self._reduced

    @property
    def value(self) -> torch.Tensor:
        return self.total

    @property
    def name(self) -> str:
        return "confusion_matrix"


def _ddp_row_mask(learn, n_rows: int) -> torch.Tensor | None:
    """Under DDP, rows of this batch that belong to samples added as padding by the
    distributed loader (so they are not counted twice); None when nothing is padded."""
    if not _dist_ready():
        return None
    try:
        from .distributed import padded_row_mask
    except ImportError:  # pragma: no cover
        return None
    return padded_row_mask(learn, n_rows)


class ConfusionMetric(Metric):
    """Base class: a scalar metric computed from an epoch confusion matrix."""

    _name = "confusion"

    def __init__(
        self, num_classes: int, ignore_index: int | None = -100, class_names: Sequence[str] | None = None
    ):
        self.cm = ConfusionMatrix(num_classes, ignore_index, class_names)

    @property
    def class_names(self) -> list[str]:
        return self.cm.class_names

    def reset(self) -> None:
        self.cm.reset()

    def accumulate(self, learn) -> None:
        self.cm.accumulate(learn)

    def update(self, pred: torch.Tensor, targ: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        self.cm.update(pred, targ, mask)

    @property
    def matrix(self) -> torch.Tensor:
        return self.cm.total

    def compute(self, cm: np.ndarray) -> Any:
        raise NotImplementedError

    @property
    def value(self) -> Any:
        cm = self.cm.total.numpy()
        if cm.sum() == 0:
            return None
        return self.compute(cm)

    @property
    def name(self) -> str:
        return self._name


class MeanIoU(ConfusionMetric):
    """Mean over classes of IoU (classes absent from both truth and prediction are skipped)."""

    _name = "miou"

    def compute(self, cm: np.ndarray) -> float:
        iou = iou_from_confusion(cm)
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


class IoUPerClass(ConfusionMetric):
    """IoU of every class: ``value`` is a dict ``{class name: IoU or nan}``.

    Not a scalar, so :func:`fastai_sparse.learner.sparse_learner` turns it into a
    :class:`PerClassTableCallback` (a table printed after validation) instead of a recorder column.
    """

    _name = "iou_per_class"
    is_table = True

    def compute(self, cm: np.ndarray) -> dict[str, float]:
        return dict(zip(self.class_names, iou_from_confusion(cm).tolist()))


class Accuracy(ConfusionMetric):
    """Overall accuracy: correctly predicted rows / counted rows (ignored targets excluded)."""

    _name = "accuracy"

    def compute(self, cm: np.ndarray) -> float:
        return float(np.trace(cm) / cm.sum())


class MeanClassAccuracy(ConfusionMetric):
    """Mean over classes present in the targets of per-class recall (TP / true count)."""

    _name = "mean_class_accuracy"

    def compute(self, cm: np.ndarray) -> float:
        support = cm.sum(1)
        present = support > 0
        return float((np.diag(cm)[present] / support[present]).mean())


class _ErrorSums(Metric):
    """Accumulates the sum of absolute and squared errors and the element count."""

    _name = "error"

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64)  # abs, squared, count
        self._reduced = None

    def update(self, pred: torch.Tensor, targ: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """pred, targ: float [B, D] or [B] (same number of elements); mask bool [B] rows to count."""
        pred, targ = pred.detach().double(), targ.detach().double().to(pred.device)
        if pred.numel() != targ.numel():
            raise ShapeError(f"predictions have shape {list(pred.shape)} but targets {list(targ.shape)}")
        pred, targ = pred.reshape(targ.shape), targ
        if mask is not None:
            pred, targ = pred[mask.to(pred.device)], targ[mask.to(pred.device)]
        err = (pred - targ).reshape(-1)
        self.sums += torch.stack([err.abs().sum(), (err**2).sum(), torch.tensor(float(err.numel()))]).cpu()
        self._reduced = None

    def accumulate(self, learn) -> None:
        targ = learn.yb[0]
        self.update(learn.pred, targ, _ddp_row_mask(learn, len(targ)))

    @property
    def total(self) -> torch.Tensor:
        if self._reduced is None:
            self._reduced = _all_reduce_sum(self.sums)
        return self._reduced

    @property
    def name(self) -> str:
        return self._name


class MAE(_ErrorSums):
    """Mean absolute error over every element of every sample of the epoch."""

    _name = "mae"

    @property
    def value(self) -> float | None:
        a, _, n = self.total.tolist()
        return a / n if n else None


class RMSE(_ErrorSums):
    """Root of the mean squared error over every element of every sample of the epoch."""

    _name = "rmse"

    @property
    def value(self) -> float | None:
        _, s, n = self.total.tolist()
        return float(np.sqrt(s / n)) if n else None


class FunctionMetric(Metric):
    """A plain function ``func(pred, targ) -> number`` as an epoch metric: the mean of its
    per-batch values weighted by the number of target rows of each batch (points for
    segmentation, samples otherwise).

    Exact for metrics that are means over rows (accuracy, mean error); a ratio over the whole
    epoch (IoU, precision) is not a mean of per-batch ratios: write a :class:`ConfusionMetric`
    for those. ``name`` is shown in the training table (default: the function's name).
    """

    def __init__(self, func, name: str | None = None):
        if not callable(func):
            raise TypeError(f"FunctionMetric needs a function f(pred, targ), got {type(func).__name__}")
        self.func = func
        self._name = name or getattr(func, "__name__", type(func).__name__)
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64)  # sum of value * rows, rows
        self._reduced = None

    def accumulate(self, learn) -> None:
        pred, targ = learn.pred, learn.yb[0]
        mask = _ddp_row_mask(learn, len(targ))
        if mask is not None:
            pred, targ = pred[mask.to(pred.device)], targ[mask.to(targ.device)]
        rows = len(targ)
        if rows == 0:
            return
        value = self.func(pred.detach(), targ.detach())
        value = float(value.detach().cpu()) if isinstance(value, torch.Tensor) else float(value)
        self.sums += torch.tensor([value * rows, rows], dtype=torch.float64)
        self._reduced = None

    @property
    def value(self) -> float | None:
        if self._reduced is None:
            self._reduced = _all_reduce_sum(self.sums)
        total, rows = self._reduced.tolist()
        return total / rows if rows else None

    @property
    def name(self) -> str:
        return self._name


def function_metric(func, name: str | None = None):
    """A metric factory for ``register_metrics`` from a plain function ``func(pred, targ)``:
    ``register(Factory("my-error", function_metric(my_error)))`` (see :class:`FunctionMetric`)."""

    def factory(target_type: Any = None) -> FunctionMetric:
        return FunctionMetric(func, name)

    factory.__name__ = factory.__qualname__ = f"function_metric({getattr(func, '__name__', 'func')})"
    return factory


_METRIC_INTERFACE = ("reset", "accumulate", "value")


def _has(obj: Any, attr: str) -> bool:
    """Whether ``obj`` defines ``attr``, without evaluating it (``value`` is often a property)."""
    return any(attr in vars(k) for k in type(obj).__mro__) or attr in getattr(obj, "__dict__", {})


def as_metric(obj: Any, name: str) -> Any:
    """What a metric factory returned, as a metric: an object with ``reset()``,
    ``accumulate(learn)`` and ``value`` as it is, a plain function ``f(pred, targ)`` wrapped in a
    :class:`FunctionMetric` named ``name``; anything else raises PluginError naming the metric."""
    if all(_has(obj, a) for a in _METRIC_INTERFACE):
        return obj
    if callable(obj) and not isinstance(obj, type):
        return FunctionMetric(obj, name.replace("-", "_"))
    missing = [a for a in _METRIC_INTERFACE if not _has(obj, a)]
    raise PluginError(
        f"metric {name!r}: its factory returned {type(obj).__name__}, which has no {', '.join(missing)}; "
        "a metric factory returns a fastai Metric (reset(), accumulate(learn), value; e.g. a "
        "ConfusionMetric subclass with compute(cm)) or a plain function f(pred, targ) -> number"
    )


def format_class_table(values: dict[str, float], cm: np.ndarray | None = None, title: str = "IoU") -> str:
    """A plain-text table: one line per class with its value (and support when ``cm`` is given)."""
    width = max([len(k) for k in values] + [5])
    lines = [f"{'class':<{width}}  {title:>7}" + ("  support" if cm is not None else "")]
    support = np.asarray(cm).sum(1) if cm is not None else None
    for i, (k, v) in enumerate(values.items()):
        val = "    n/a" if v is None or not np.isfinite(v) else f"{v:7.4f}"
        lines.append(f"{k:<{width}}  {val}" + (f"  {int(support[i]):7d}" if support is not None else ""))
    finite = [v for v in values.values() if v is not None and np.isfinite(v)]
    if finite:
        lines.append(f"{'mean':<{width}}  {np.mean(finite):7.4f}")
    return "\n".join(lines)


class PerClassTableCallback(Callback):
    """IoU per class from each validation's confusion matrix, kept every epoch and shown once.

    After every validation ``self.last`` holds ``{class: IoU or nan}`` (``self.last_support``
    the number of target rows of each class); during a training fit the table is also appended
    to ``self.tables`` (``self.epochs``: the epoch of each). When the fit ends, the last table
    is printed once, a line per class with its support, under the per-epoch lines of the
    training table; not after every epoch, and not when ``quiet`` is set or the learner's
    logging is off (``learn.no_logging()``, as in ``get_preds``, ``validate`` and
    ``lr_find``). Only rank 0 prints under DDP. ``train_task`` writes every epoch's table to
    ``run.json`` (and :mod:`fastai_sparse.loggers` to ``iou_per_class.csv``); the demo's report
    shows the final one.
    """

    order = 61  # after fastai's Recorder (50) and ProgressCallback (60): its bars are closed

    def __init__(self, metric: IoUPerClass | ConfusionMetric, quiet: bool = False):
        self.metric, self.quiet = metric, quiet
        self.tables: list[dict[str, float]] = []
        self.epochs: list[int] = []
        self.last: dict[str, float] | None = None
        self.last_support: np.ndarray | None = None
        self._fitting = False

    def before_fit(self) -> None:
        # a training fit: not get_preds (GatherPredsCallback) and not lr_find (LRFinder)
        self._fitting = not hasattr(self.learn, "gather_preds") and not hasattr(self.learn, "lr_finder")
        self._shown = None

    def before_validate(self) -> None:
        self.metric.reset()

    def after_batch(self) -> None:
        if not self.training and len(self.learn.yb):
            self.metric.accumulate(self.learn)

    def after_validate(self) -> None:
        if self.metric.cm.matrix.sum() == 0 and not _dist_ready():
            return
        cm = self.metric.cm.total.numpy()
        if cm.sum() == 0:
            return
        self.last = dict(zip(self.metric.class_names, iou_from_confusion(cm).tolist()))
        self.last_support = cm.sum(1)
        if self._fitting:
            self.tables.append(self.last)
            self.epochs.append(int(getattr(self.learn, "epoch", 0)))
            self._shown = (self.epochs[-1], self.last, cm)

    def after_fit(self) -> None:
        shown, self._shown, self._fitting = getattr(self, "_shown", None), None, False
        if shown is None or self.quiet or getattr(self.learn, "logger", noop) is noop:
            return
        if _dist_ready() and torch.distributed.get_rank() != 0:
            return
        epoch, table, cm = shown
        print(f"IoU per class, validation after epoch {epoch}:")
        print(format_class_table(table, cm), flush=True)


# ---------------------------------------------------------------------------------------------
# factories: factory(target_type) -> Metric


def _class_info(target_type: Any, metric: str) -> tuple[int, int | None, list[str]]:
    classes = getattr(target_type, "classes", None)
    if classes is None:
        raise TypeError(
            f"metric {metric!r} needs a target type with classes (segmentation or classification), "
            f"got {getattr(target_type, 'name', type(target_type).__name__)!r}"
        )
    return len(classes), getattr(target_type, "ignore_index", None), [str(c) for c in classes]


def miou(target_type: Any) -> MeanIoU:
    """Mean IoU for a segmentation or classification target type (``classes``, ``ignore_index``)."""
    return MeanIoU(*_class_info(target_type, "miou"))


def iou_per_class(target_type: Any) -> IoUPerClass:
    """IoU per class (a table callback when given to :func:`sparse_learner`)."""
    return IoUPerClass(*_class_info(target_type, "iou_per_class"))


def accuracy(target_type: Any) -> Accuracy:
    """Overall accuracy over points (segmentation) or samples (classification)."""
    return Accuracy(*_class_info(target_type, "accuracy"))


def mean_class_accuracy(target_type: Any) -> MeanClassAccuracy:
    """Mean over classes of per-class accuracy."""
    return MeanClassAccuracy(*_class_info(target_type, "mean_class_accuracy"))


def mae(target_type: Any = None) -> MAE:
    """Mean absolute error for a regression target type."""
    return MAE()


def rmse(target_type: Any = None) -> RMSE:
    """Root mean squared error for a regression target type."""
    return RMSE()
