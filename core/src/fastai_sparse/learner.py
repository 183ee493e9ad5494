"""fastai glue: DataLoaders of sparse batches, a Learner, per-point prediction, TTA, export.

Data: :func:`sparse_dataloaders` wraps item sequences (PointCloud / Mesh / file paths) and the
per-sample pipelines ``(cloud, rng) -> SparseSample`` into fastai ``DataLoaders`` of
``(x, y)`` batches, ``x`` a dict of tensors (see :func:`fastai_sparse.batch.collate`). The
random state of every sample is ``numpy.random.default_rng([seed, stream, epoch, index])``
(stream 0 = training, 1 = validation; the validation epoch is always 0), so a run is
reproducible and validation never changes between epochs. Shuffling is seeded the same way.

Learning: :class:`SparseLearner` is a fastai ``Learner`` whose ``get_preds`` returns one row
per point for segmentation (fastai's default reordering would silently return one row per
sample), which stops with :class:`NonFiniteLossError` naming the epoch and batch on a NaN
loss, and which adds:

- ``predict(item)`` -> :class:`Prediction` with a label, class probabilities and confidence
  for every original point or vertex (or one per sample for pooled heads);
- ``tta(n=4)`` -> logits averaged over ``n`` deterministic views (rotation about z, flip,
  small offset), mapped back to the points;
- ``save_weights`` / ``load_weights``: ``state_dict`` plus task and class names, loaded with
  ``torch.load(weights_only=True)``; a checkpoint of another task is refused;
- ``distrib_ctx``: data-parallel training under ``torchrun`` (see :mod:`fastai_sparse.distributed`).

Quiet mode (tests, CI): ``with learn.no_bar(), learn.no_logging(): ...``.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastai.callback.progress
import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle, fit_flat_cos, lr_find)
import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders, TfmdDL
from fastai.learner import Learner
from fastai.torch_core import default_device, to_device

from .errors import (
    CheckpointError,
    DataFormatError,
    EmptyDatasetError,
    FastaiSparseError,
    NonFiniteLossError,
    ShapeError,
)
from .geometry import Mesh, PointCloud

__all__ = [
    "WEIGHTS_FORMAT",
    "CheckpointError",
    "EmptyDatasetError",
    "EpochSeedCallback",
    "NonFiniteLossCallback",
    "NonFiniteLossError",
    "Prediction",
    "SparseDL",
    "SparseDataLoaders",
    "SparseDataset",
    "SparseLearner",
    "TTAView",
    "default_tta_offset",
    "load_learner",
    "make_prediction",
    "sparse_dataloaders",
    "sparse_learner",
    "tta_views",
    "unlabelled_pipeline",
    "write_prediction",
]

WEIGHTS_FORMAT = "fastai-sparse-weights/1"


# ---------------------------------------------------------------------------------------------
# data


def _to_cloud(item: Any) -> PointCloud:
    """A PointCloud from a PointCloud, a Mesh (its vertices) or a file path (via fastai_sparse.io)."""
    if isinstance(item, (str, Path)):
        from .io import load

        item = load(item)
    if isinstance(item, Mesh):
        return item.to_points()
    if isinstance(item, PointCloud):
        return item
    raise TypeError(f"expected a PointCloud, a Mesh or a file path, got {type(item).__name__}")


def _run_pipeline(pipeline: Callable, cloud: PointCloud, rng: np.random.Generator):
    """Run a sample pipeline; a missing per-point attribute becomes a DataFormatError naming it."""
    try:
        return pipeline(cloud, rng)
    except KeyError as e:
        key = e.args[0] if e.args else None
        if isinstance(key, str) and key not in cloud.attrs:
            raise DataFormatError(
                f"the task needs the per-point attribute {key!r}, but the input has only "
                f"{sorted(cloud.attrs) or 'xyz'}",
                path=cloud.meta.get("path"),
                field=key,
            ) from e
        raise


class SparseDataset:
    """Items -> :class:`~fastai_sparse.batch.SparseSample` through a pipeline, with seeded randomness.

    items: a Sequence of PointCloud, Mesh or file paths. pipeline: ``(cloud, rng) -> SparseSample``.
    seed, stream: the sample ``i`` at epoch ``e`` draws from ``default_rng([seed, stream, e, i])``.
    pre: an optional ``(cloud, rng) -> cloud`` applied before the pipeline (TTA views).
    ``epoch`` is set by :class:`EpochSeedCallback` at the start of each training epoch.
    """

    def __init__(
        self, items: Sequence, pipeline: Callable, seed: int = 0, stream: int = 0, pre: Callable | None = None
    ):
        self.items, self.pipeline, self.pre = items, pipeline, pre
        self.seed, self.stream, self.epoch = int(seed), int(stream), 0

    def __len__(self) -> int:
        return len(self.items)

    def rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.stream, int(self.epoch), int(i)])

    def cloud(self, i: int) -> PointCloud:
        """The raw item ``i`` as a PointCloud (before ``pre`` and the pipeline)."""
        return _to_cloud(self.items[i])

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for a dataset of {len(self)} items")
        i = i % len(self)
        cloud, rng = self.cloud(i), self.rng(i)
        if self.pre is not None:
            cloud = self.pre(cloud, rng)
        return _run_pipeline(self.pipeline, cloud, rng)

    def with_pre(self, pre: Callable | None) -> SparseDataset:
        ds = type(self)(self.items, self.pipeline, self.seed, self.stream, pre)
        ds.epoch = self.epoch
        return ds

    def new_empty(self) -> SparseDataset:
        """The same pipeline and seeds with no items (what ``Learner.export`` stores)."""
        return type(self)([], self.pipeline, self.seed, self.stream, self.pre)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, seed={self.seed}, stream={self.stream})"


class SparseDL(TfmdDL):
    """A fastai ``TfmdDL`` of sparse batches ``(x, y)``, or ``(x,)`` when ``labels`` is False or
    ``target_type`` is None (then only the target type's ``collate_inputs`` join ``x``).

    ``x`` is a dict of tensors (coords int32 [M, 4], feats float32 [M, C], inverse int64 [N],
    voxel_offsets / point_offsets int64 [B+1], ...) built by :func:`fastai_sparse.batch.collate`;
    fastai moves it to the device. Shuffling is seeded by ``(seed, epoch)``.
    """

    def __init__(self, dataset=None, target_type: Any = None, seed: int = 0, labels: bool = True, **kwargs):
        self.target_type, self.seed, self.labels = target_type, int(seed), bool(labels)
        kwargs.setdefault("num_workers", 0)
        super().__init__(dataset, **kwargs)

    def new(self, dataset=None, cls=None, **kwargs):
        kwargs.setdefault("target_type", self.target_type)
        kwargs.setdefault("seed", self.seed)
        kwargs.setdefault("labels", self.labels)
        return super().new(dataset, cls, **kwargs)

    # fastai probes a batch to infer types; sparse batches need none of that
    def _one_pass(self):
        self._n_inp, self._types = 1, {}

    @property
    def n_inp(self) -> int:
        return 1

    def shuffle_fn(self, idxs):
        epoch = getattr(self.dataset, "epoch", 0)
        perm = np.random.default_rng([self.seed, 2, int(epoch)]).permutation(len(idxs))
        return [idxs[i] for i in perm]

    def create_batch(self, b):
        from .batch import collate

        x, y = collate(list(b), self.target_type, labels=self.labels)
        return (x,) if y is None else (x, y)

    def retain(self, res, b):
        return res

    def decode(self, b):
        from fastai.torch_core import to_cpu

        return to_cpu(b)

    def _decode_batch(self, b, max_n: int = 9, full: bool = True):
        """Split a batch into per-sample ``(x_i, y_i)`` tuples (x_i a dict, offsets removed)."""
        return _split_samples(b, self.target_type)[:max_n]

    def show_batch(
        self, b=None, max_n: int = 4, ctxs=None, show: bool = True, unique: bool = False, **kwargs
    ):
        """Plot up to ``max_n`` samples of a batch (default: ``one_batch()``), one panel each, coloured
        by label; returns the figure (see :func:`fastai_sparse.viz.show_batch` for ``kwargs``:
        ``color_by``, ``html``, ``path``, ...)."""
        from . import viz

        if b is None:
            b = self.one_batch()
        y = b[1] if len(b) > 1 else None
        tt = self.target_type
        kwargs.setdefault(
            "class_names", list(tt.classes) if getattr(tt, "classes", None) is not None else None
        )
        kwargs.setdefault("ignore_index", getattr(tt, "ignore_index", -100))
        return viz.show_batch(b[0], y, max_n=max_n, **kwargs)


def _split_samples(b, target_type: Any = None) -> list[tuple]:
    """Split a collated batch ``(x, y)`` / ``(x,)`` into per-sample tuples.

    Each ``x_i`` holds coords int32 [M_i, 3], feats [M_i, C], inverse int64 [N_i] (local rows),
    point_feats [N_i, C'] when present; ``y_i`` is the per-point slice [N_i] or the per-sample row.
    """
    x = b[0]
    vo, po = x["voxel_offsets"].tolist(), x["point_offsets"].tolist()
    y = b[1] if len(b) > 1 else None
    per = getattr(target_type, "per", None)
    out = []
    for i in range(len(vo) - 1):
        xi = {
            "coords": x["coords"][vo[i] : vo[i + 1], 1:],
            "feats": x["feats"][vo[i] : vo[i + 1]],
            "inverse": x["inverse"][po[i] : po[i + 1]] - vo[i],
        }
        if "point_feats" in x:
            xi["point_feats"] = x["point_feats"][po[i] : po[i + 1]]
        if y is None:
            out.append((xi,))
        elif isinstance(y, dict):
            out.append((xi, y))
        elif per == "point" or (per is None and len(y) == po[-1] and len(y) != len(vo) - 1):
            out.append((xi, y[po[i] : po[i + 1]]))
        else:
            out.append((xi, y[i]))
    return out


class SparseDataLoaders(DataLoaders):
    """fastai ``DataLoaders`` of sparse batches; ``test_dl`` builds unlabelled loaders with the
    validation pipeline."""

    @property
    def target_type(self) -> Any:
        return self.loaders[0].target_type

    def test_dl(
        self, test_items: Sequence, with_labels: bool = False, pre: Callable | None = None, **kwargs
    ) -> SparseDL:
        """A loader over ``test_items`` (PointCloud, Mesh or paths) with the validation pipeline and
        no training noise; batches are ``(x,)`` unless ``with_labels``."""
        vds = self.valid_ds
        pipeline = vds.pipeline if with_labels else unlabelled_pipeline(vds.pipeline)
        ds = SparseDataset(list(test_items), pipeline, vds.seed, vds.stream, pre)
        kwargs.setdefault("shuffle", False)
        kwargs.setdefault("drop_last", False)
        return self.valid.new(ds, labels=with_labels, **kwargs)


def sparse_dataloaders(
    train_items: Sequence,
    valid_items: Sequence,
    train_pipeline: Callable,
    valid_pipeline: Callable,
    target_type: Any,
    bs: int = 8,
    valid_bs: int | None = None,
    num_workers: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    path: str | Path = ".",
    device: Any = None,
    drop_last: bool = False,
) -> SparseDataLoaders:
    """fastai DataLoaders of sparse batches.

    train_items, valid_items: Sequences of PointCloud, Mesh or file paths.
    train_pipeline, valid_pipeline: ``(cloud, rng) -> SparseSample`` (e.g.
    :class:`fastai_sparse.batch.SamplePipeline`); the validation one must not add training noise.
    target_type: a target type (``fastai_sparse.targets``); its ``collate`` builds ``y``.
    Batches are ``(x, y)`` with ``x`` a dict of tensors (see :func:`fastai_sparse.batch.collate`).
    Raises :class:`EmptyDatasetError` when either set is empty.
    """
    for name, items in (("training", train_items), ("validation", valid_items)):
        if items is None or len(items) == 0:
            raise EmptyDatasetError(
                f"the {name} set is empty (0 items): fastai needs at least one {name} item; "
                + (
                    "pass valid_items, or split off part of the training items"
                    if name == "validation"
                    else "pass train_items"
                )
            )
    if bs < 1:
        raise ValueError(f"bs must be >= 1, got {bs}")
    train_ds = SparseDataset(train_items, train_pipeline, seed, stream=0)
    valid_ds = SparseDataset(valid_items, valid_pipeline, seed, stream=1)
    common = dict(target_type=target_type, seed=seed, num_workers=num_workers)
    train = SparseDL(train_ds, bs=bs, shuffle=shuffle, drop_last=drop_last, **common)
    valid = SparseDL(valid_ds, bs=valid_bs or bs, shuffle=False, drop_last=False, **common)
    return SparseDataLoaders(
        train, valid, path=path, device=device if device is not None else default_device()
    )


# ---------------------------------------------------------------------------------------------
# callbacks


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


# ---------------------------------------------------------------------------------------------
# predictions


@dataclass(eq=False)
class Prediction:
    """The prediction for one input.

    per: "point" (one row per original point/vertex) or "sample".
    logits: float32 [N, K] (per point) or [K] (per sample).
    probs: float32, softmax of logits (None for regression). labels: int64 [N] or an int.
    confidence: float32 [N] (max probability) or a float. class_names: names of the K classes.
    cloud: the input point cloud (original points; for a mesh, its vertices).
    """

    per: str
    logits: np.ndarray
    probs: np.ndarray | None
    labels: Any
    confidence: Any
    class_names: list[str] | None = None
    cloud: PointCloud | None = field(default=None, repr=False)

    @property
    def names(self) -> Any:
        """Class names of the predicted labels (array for per-point, str for per-sample)."""
        if self.class_names is None or self.labels is None:
            return None
        names = np.asarray(self.class_names, dtype=object)
        return names[self.labels] if self.per == "point" else str(names[self.labels])

    @property
    def values(self) -> np.ndarray:
        """Raw outputs (regression)."""
        return self.logits


def make_prediction(per: str, logits: torch.Tensor, class_names, cloud, classify: bool) -> Prediction:
    """A :class:`Prediction` from model outputs: per point [N, K], per sample [K], or a
    structured per-sample output (e.g. detections [C, D]) kept raw for its target type to decode."""
    logits = logits.float().cpu()
    if not classify or (per == "sample" and logits.ndim != 1):
        return Prediction(per, logits.numpy(), None, None, None, class_names, cloud)
    probs = torch.softmax(logits, -1)
    conf, lab = probs.max(-1)
    if per == "sample":
        return Prediction(per, logits.numpy(), probs.numpy(), int(lab), float(conf), class_names, cloud)
    return Prediction(
        per, logits.numpy(), probs.numpy(), lab.numpy().astype(np.int64), conf.numpy(), class_names, cloud
    )


class TTAView:
    """A deterministic test-time view: rotate about the vertical axis through the centroid by
    ``angle`` (radians), optionally mirror x, then shift by ``offset`` (input units). Applied to a
    PointCloud through ``map_points`` (normals, boxes and keypoints follow); point order kept."""

    def __init__(self, angle: float = 0.0, flip: bool = False, offset: Sequence[float] = (0.0, 0.0, 0.0)):
        self.angle, self.flip, self.offset = (
            float(angle),
            bool(flip),
            np.asarray(offset, np.float64).reshape(3),
        )

    @property
    def linear(self) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return rot @ np.diag([-1.0, 1.0, 1.0]) if self.flip else rot

    def __call__(self, cloud: PointCloud, rng: np.random.Generator | None = None) -> PointCloud:
        if self.angle == 0 and not self.flip and not self.offset.any():
            return cloud
        m, center, off = self.linear, cloud.xyz.astype(np.float64).mean(0), self.offset
        return cloud.map_points(lambda p: (p - center) @ m.T + center + off, m)

    def __repr__(self) -> str:
        return f"TTAView(angle={self.angle:.4g}, flip={self.flip}, offset={self.offset.round(6).tolist()})"


def tta_views(
    n: int, offset: float = 0.0, seed: int = 0, rotate: bool = True, flip: bool = True
) -> list[TTAView]:
    """``n`` views: view 0 is the identity; view ``p`` rotates by ``2 pi p / n`` about z, mirrors x
    when ``p`` is odd, and shifts by a uniform offset in ``[-offset, offset]^3`` drawn from
    ``default_rng([seed, p])``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    views = [TTAView()]
    for p in range(1, n):
        off = np.random.default_rng([seed, p]).uniform(-offset, offset, 3) if offset else np.zeros(3)
        views.append(TTAView(2 * math.pi * p / n if rotate else 0.0, flip and p % 2 == 1, off))
    return views


def default_tta_offset(pipeline: Any) -> float:
    """Half a voxel in input units when the pipeline's voxelizer has a ``scale`` (voxels per
    unit) or ``voxel_size``, else 0."""
    vox = getattr(pipeline, "voxelizer", None)
    size = getattr(vox, "voxel_size", None)
    if size is None and getattr(vox, "scale", None):
        size = 1.0 / float(vox.scale)
    try:
        return 0.5 * float(np.min(size)) if size is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def unlabelled_pipeline(pipeline: Any) -> Any:
    """A shallow copy of a sample pipeline that does not check targets (inputs to predict have
    no labels)."""
    if getattr(pipeline, "target_type", None) is None:
        return pipeline
    p = copy.copy(pipeline)
    p.target_type = None
    return p


# ---------------------------------------------------------------------------------------------
# learner


def _identity(x):
    return x


def _softmax_last(x):
    return torch.softmax(x, -1) if isinstance(x, torch.Tensor) and x.is_floating_point() else x


class SparseLearner(Learner):
    """A fastai ``Learner`` for sparse 3D batches (see the module docstring).

    task_name: the task the model is trained for (stored in weights files and checked on load).
    class_names: names of the output classes (None for regression).
    """

    def __init__(
        self,
        dls,
        model,
        loss_func=None,
        *,
        task_name: str | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs,
    ):
        super().__init__(dls, model, loss_func=loss_func, **kwargs)
        self.task_name = task_name
        tt = getattr(dls, "target_type", None)
        if class_names is None and getattr(tt, "classes", None) is not None:
            class_names = list(tt.classes)
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        for cb in (EpochSeedCallback(), NonFiniteLossCallback()):
            if not any(isinstance(c, type(cb)) for c in self.cbs):
                self.add_cb(cb)

    @property
    def target_type(self) -> Any:
        return getattr(self.dls, "target_type", None)

    @property
    def per(self) -> str:
        return getattr(self.target_type, "per", "point")

    @property
    def classify(self) -> bool:
        """True when outputs are class scores (segmentation, classification): predictions then
        carry softmax probabilities, labels and confidence."""
        tt = self.target_type
        if tt is not None and getattr(tt, "name", None) in ("regression", "bounding-boxes", "keypoints"):
            return False
        return self.class_names is not None

    # -- predictions --------------------------------------------------------------------------
    def get_preds(
        self,
        ds_idx: int = 1,
        dl=None,
        with_input: bool = False,
        with_decoded: bool = False,
        with_loss: bool = False,
        act=None,
        inner: bool = False,
        reorder: bool = False,
        cbs=None,
        **kwargs,
    ):
        """fastai's ``get_preds`` in dataset order with one row per output row: per point for
        segmentation ([N_total, K], points of sample 0 first), per sample otherwise. ``reorder``
        is accepted for compatibility and ignored: the loader is never shuffled. For tasks with
        classes the default activation is a softmax (probabilities), as with fastai's
        cross-entropy losses."""
        if dl is None:
            dl = self.dls[ds_idx].new(shuffle=False, drop_last=False)
        elif isinstance(dl, TfmdDL) and (dl.shuffle or dl.drop_last):
            dl = dl.new(shuffle=False, drop_last=False)
        if hasattr(dl, "n") and len(dl) == 0:
            raise EmptyDatasetError("get_preds: the loader has no items")
        if act is None and getattr(self.loss_func, "activation", None) is None and self.classify:
            act = _softmax_last
        return super().get_preds(
            dl=dl,
            with_input=with_input,
            with_decoded=with_decoded,
            with_loss=with_loss,
            act=act,
            inner=inner,
            reorder=False,
            cbs=cbs,
            **kwargs,
        )

    def to_detach(self, b, cpu: bool = True, gather: bool = True):
        """fastai's ``to_detach``, gathering across processes only while a process group exists
        (fastai decides from ``WORLD_SIZE``, which stays set under ``torchrun`` after training)."""
        if gather and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            gather = False
        return super().to_detach(b, cpu, gather)

    def _raw_preds(self, dl, bar: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Model outputs (no activation) and targets over ``dl`` in dataset order."""
        if bar:
            res = self.get_preds(dl=dl, act=_identity)
        else:
            with self.no_bar():
                res = self.get_preds(dl=dl, act=_identity)
        preds, targs = res[0], (res[1] if len(res) > 1 else None)
        return preds, targs

    def predict(self, item: Any, tta: int = 1, bs: int = 1) -> Prediction:
        """Predict one input: a file path (read with :func:`fastai_sparse.io.load`), a Mesh or a PointCloud.

        Returns a :class:`Prediction` with one row per original point/vertex for per-point tasks
        (labels int64 [N], probs float32 [N, K], confidence float32 [N]) or one per sample.
        ``tta`` > 1 averages the logits of that many views (see :func:`tta_views`).
        """
        cloud = _to_cloud(item)
        if len(cloud) == 0:
            raise DataFormatError("the input has no points", path=cloud.meta.get("path"), field="xyz")
        total = None
        for view in tta_views(tta, default_tta_offset(self.dls.valid_ds.pipeline)):
            dl = self.dls.test_dl([cloud], pre=view, bs=bs)
            preds, _ = self._raw_preds(dl, bar=False)
            total = preds.float() if total is None else total + preds.float()
        out = total / tta
        if self.per == "point":
            if len(out) != len(cloud):
                raise ShapeError(
                    f"the model returned {len(out)} rows for an input of {len(cloud)} points; the validation "
                    "pipeline must keep every point (no cropping or subsampling) to predict per point"
                )
        else:
            out = out.reshape(-1) if out.ndim == 1 else out[0]
        return make_prediction(self.per, out, self.class_names, cloud, self.classify)

    def tta(
        self,
        n: int = 4,
        dl=None,
        ds_idx: int = 1,
        offset: float | None = None,
        seed: int = 0,
        activation: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Test-time augmentation: outputs averaged over ``n`` views (rotation about z, flips, small
        offsets; deterministic, view 0 the identity) and mapped back to the original points.

        Returns ``(preds, targets)`` in dataset order, one row per point for per-point tasks:
        preds float32 [N_total, K] (softmax of the averaged logits when ``activation`` and the
        task has classes, else the averaged outputs) and targets as collated (None without labels).
        offset: maximum shift per axis in input units (default: half a voxel when known).
        """
        if dl is None:
            dl = self.dls[ds_idx]
        ds = dl.dataset
        if not isinstance(ds, SparseDataset):
            raise TypeError(f"tta needs a loader over a SparseDataset, got {type(ds).__name__}")
        if offset is None:
            offset = default_tta_offset(ds.pipeline)
        total, targs = None, None
        for p, view in enumerate(tta_views(n, offset, seed)):
            vdl = dl.new(ds.with_pre(view), shuffle=False, drop_last=False)
            preds, t = self._raw_preds(vdl)
            if total is None:
                total, targs = preds.float(), t
            elif preds.shape != total.shape:
                raise ShapeError(
                    f"TTA view {p} ({view}) gave {list(preds.shape)} outputs but view 0 gave {list(total.shape)}: "
                    "the validation pipeline must keep every point to use TTA"
                )
            else:
                total = total + preds.float()
        out = total / n
        if activation and self.classify:
            out = torch.softmax(out, -1)
        return out, targs

    def _forward(self, samples: Sequence) -> list[torch.Tensor]:
        """Model outputs for a list of SparseSamples, split per sample ([N_i, K] or [K])."""
        from .batch import collate, split_batch

        x, _ = collate(list(samples), None)
        x = to_device(x, next(self.model.parameters()).device)
        self.model.eval()
        with torch.no_grad():
            out = self.model(x)
        return [o.detach().cpu() for o in split_batch(x, out)]

    def show_results(self, ds_idx: int = 1, dl=None, max_n: int = 4, shuffle: bool = False, **kwargs):
        """Ground truth and prediction side by side for the first ``max_n`` samples of a loader
        (the validation set by default); returns the figure (see :func:`fastai_sparse.viz.show_results`)."""
        from . import viz

        if dl is None:
            dl = self.dls[ds_idx]
        ds = dl.dataset
        idxs = list(range(len(ds)))
        if shuffle:
            idxs = [int(i) for i in np.random.default_rng().permutation(idxs)]
        samples = [ds[i] for i in idxs[:max_n]]
        outs = self._forward(samples)
        preds = [int(o.argmax(-1)) for o in outs] if self.per == "sample" and self.classify else outs
        kwargs.setdefault("class_names", self.class_names)
        kwargs.setdefault("ignore_index", getattr(self.target_type, "ignore_index", -100))
        return viz.show_results([s.cloud for s in samples], preds, max_n=max_n, **kwargs)

    # -- weights ------------------------------------------------------------------------------
    def _model_for_save(self) -> torch.nn.Module:
        m = self.model
        return (
            m.module
            if hasattr(m, "module") and isinstance(m, torch.nn.parallel.DistributedDataParallel)
            else m
        )

    def save_weights(self, path: str | Path) -> Path:
        """Write ``{"format", "task", "class_names", "model", "state_dict"}`` with ``torch.save``
        (loadable with ``weights_only=True``). A relative path goes under ``learn.path``."""
        path = Path(path)
        if not path.is_absolute():
            path = Path(self.path) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        model = self._model_for_save()
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(
            {
                "format": WEIGHTS_FORMAT,
                "task": self.task_name,
                "class_names": self.class_names,
                "model": type(model).__name__,
                "state_dict": state,
            },
            path,
        )
        return path

    def load_weights(self, path: str | Path, strict: bool = True) -> SparseLearner:
        """Load weights written by :meth:`save_weights` (``torch.load(weights_only=True)``).

        Raises :class:`CheckpointError` when the file is missing or corrupt, was saved for another
        task or other classes, or does not fit the model (missing / unexpected / mis-shaped tensors).
        """
        path = Path(path)
        if not path.is_absolute() and not path.exists():
            path = Path(self.path) / path
        ckpt = read_weights(path)
        if self.task_name is not None and ckpt.get("task") is not None and ckpt["task"] != self.task_name:
            raise CheckpointError(
                f"{path}: weights were trained for task {ckpt['task']!r}, "
                f"but this learner is for task {self.task_name!r}"
            )
        if (
            self.class_names is not None
            and ckpt.get("class_names") is not None
            and list(ckpt["class_names"]) != list(self.class_names)
        ):
            raise CheckpointError(
                f"{path}: weights were trained for classes {ckpt['class_names']}, "
                f"this learner has {self.class_names}"
            )
        model = self._model_for_save()
        try:
            missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
        except RuntimeError as e:
            raise CheckpointError(
                f"{path}: the weights do not fit the model ({ckpt.get('model')!r} saved, "
                f"{type(model).__name__} here): {e}"
            ) from e
        if strict and (missing or unexpected):
            raise CheckpointError(
                f"{path}: the weights do not fit the model: missing {list(missing)[:8]}, "
                f"unexpected {list(unexpected)[:8]}"
            )
        return self

    # -- distributed --------------------------------------------------------------------------
    def distrib_ctx(self, sync_bn: bool = False, backend: str | None = None, **kwargs):
        """Data-parallel training under ``torchrun`` (gloo on CPU, nccl on GPUs); a no-op in a
        single process. See :mod:`fastai_sparse.distributed`."""
        from .distributed import distrib_ctx

        return distrib_ctx(self, sync_bn=sync_bn, backend=backend, **kwargs)


def read_weights(path: str | Path) -> dict:
    """Read a weights file written by :meth:`SparseLearner.save_weights` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(
            f"{path}: not a readable weights file (corrupt, truncated, or not saved by "
            f"save_weights): {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != WEIGHTS_FORMAT or "state_dict" not in ckpt:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: expected a fastai-sparse weights file (format {WEIGHTS_FORMAT!r}), found {found!r}"
        )
    return ckpt


def sparse_learner(
    dls,
    model,
    loss_func=None,
    metrics=None,
    path: str | Path = ".",
    task: Any = None,
    quiet_tables: bool = False,
    **kwargs,
) -> SparseLearner:
    """A :class:`SparseLearner`.

    metrics: fastai Metric objects or registered metric names (built with the target type of
    ``dls``). Table metrics (``IoUPerClass``) become a :class:`~fastai_sparse.metrics.PerClassTableCallback`.
    task: a Task or a task name (stored with weights). ``loss_func`` defaults to the target
    type's loss.
    """
    from .metrics import PerClassTableCallback

    tt = getattr(dls, "target_type", None)
    if loss_func is None:
        if tt is None or not hasattr(tt, "loss_func"):
            raise ValueError("pass loss_func: the dataloaders have no target type to take a loss from")
        loss_func = tt.loss_func()
    mets, cbs = [], list(kwargs.pop("cbs", None) or [])
    for m in metrics or []:
        if isinstance(m, str):
            from .registry import default_registry

            m = default_registry().get("metric", m)(tt)
        if getattr(m, "is_table", False):
            cbs.append(PerClassTableCallback(m, quiet=quiet_tables))
        else:
            mets.append(m)
    task_name = task if isinstance(task, str) or task is None else getattr(task, "name", None)
    class_names = (
        getattr(task, "class_names", None) if task is not None and not isinstance(task, str) else None
    )
    return SparseLearner(
        dls,
        model,
        loss_func=loss_func,
        metrics=mets,
        cbs=cbs,
        path=path,
        task_name=task_name,
        class_names=class_names,
        **kwargs,
    )


def load_learner(fname: str | Path, cpu: bool = True) -> Learner:
    """Load a learner written by ``learn.export`` (pickle: only load files you trust).

    Unlike fastai's, reports a missing module by name instead of ``UnboundLocalError``.
    """
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"{fname}: no such exported learner")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = torch.load(fname, map_location="cpu" if cpu else default_device(), weights_only=False)
    except ImportError as e:
        raise FastaiSparseError(
            f"{fname}: the exported learner needs the module {e.name!r}, which cannot be "
            f"imported here ({e}); install the plugin or package that defines it"
        ) from e
    except (pickle.UnpicklingError, EOFError, RuntimeError) as e:
        raise CheckpointError(f"{fname}: not a readable exported learner: {type(e).__name__}: {e}") from e
    if not isinstance(res, Learner):
        raise CheckpointError(f"{fname}: expected an exported Learner, found {type(res).__name__}")
    if cpu:
        res.dls.cpu()
    return res


# ---------------------------------------------------------------------------------------------
# output


def write_prediction(
    path: str | Path,
    cloud_or_mesh: PointCloud | Mesh,
    result: Prediction,
    class_names: Sequence[str] | None = None,
    colors: np.ndarray | None = None,
    binary: bool = True,
) -> Path:
    """Write a PLY of the input with a ``label`` property (int, per vertex), the predicted class
    colours (red, green, blue uchar) and a ``confidence`` float property.

    colors: uint8 or float [K, 3] class colours (default: :func:`fastai_sparse.viz.colors.class_colors`).
    """
    from .io import write_ply

    if result.per != "point":
        raise ValueError("write_prediction writes per-point predictions; this prediction is per sample")
    n = len(cloud_or_mesh.vertices) if isinstance(cloud_or_mesh, Mesh) else len(cloud_or_mesh)
    labels = np.asarray(result.labels, dtype=np.int64)
    if len(labels) != n:
        raise ShapeError(f"{len(labels)} predicted labels for {n} points/vertices")
    k = len(class_names or result.class_names or []) or (int(labels.max()) + 1 if len(labels) else 1)
    if colors is None:
        from .viz.colors import class_colors

        colors = class_colors(k)
    colors = np.asarray(colors)
    if colors.dtype.kind == "f" and colors.max() <= 1.0:
        colors = np.round(colors * 255)
    colors = colors.astype(np.uint8)
    if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) < k:
        raise ShapeError(f"colors must have shape [K>={k}, 3], got {list(colors.shape)}")
    extra = (
        {"confidence": np.asarray(result.confidence, np.float32)} if result.confidence is not None else None
    )
    path = Path(path)
    write_ply(path, cloud_or_mesh, binary=binary, labels=labels, colors=colors[labels], extra=extra)
    return path
