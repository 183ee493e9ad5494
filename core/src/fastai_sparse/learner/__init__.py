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
- ``save_weights`` / ``load_weights`` / ``save_pretrained`` / ``export``: safetensors weights
  with the task name, class names and configuration (a ``.safetensors`` file or a model folder
  with a model card, see :mod:`fastai_sparse.weights`), loaded without pickle; weights of
  another task are refused; :func:`load_learner` rebuilds a learner from them through the
  registry (fastai's pickled export only with ``unsafe_pickle=True``);
- ``distrib_ctx``: data-parallel training under ``torchrun`` (see :mod:`fastai_sparse.distributed`).

Quiet mode (tests, CI): ``with learn.no_bar(), learn.no_logging(): ...``.

Layout (one job per module, every public name importable from ``fastai_sparse.learner``):
``data`` (datasets, loaders, :func:`sparse_dataloaders`), ``callbacks`` (seeded epochs, the
NaN stop), ``predict`` (:class:`Prediction`, TTA views, :func:`write_prediction`),
``checkpoint`` (weights files, :func:`read_weights`, :func:`load_learner`) and ``learn``
(:class:`SparseLearner`, :func:`sparse_learner`). The error classes live in
:mod:`fastai_sparse.errors` and are re-exported here.
"""

from __future__ import annotations

from .. import _fastai  # noqa: F401  (fastai without its import-time deprecation warning: first)

# isort: split
import fastai.callback.progress
import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle, fit_flat_cos, lr_find)

from ..errors import CheckpointError, EmptyDatasetError, NonFiniteLossError
from .callbacks import EpochSeedCallback, NonFiniteLossCallback
from .checkpoint import WEIGHTS_FORMAT, load_learner, read_weights
from .data import SparseDataLoaders, SparseDataset, SparseDL, sparse_dataloaders, unlabelled_pipeline
from .learn import SparseLearner, sparse_learner
from .predict import (
    Prediction,
    TTAView,
    default_tta_offset,
    load_input,
    make_prediction,
    tta_views,
    write_prediction,
)
from .progress import SparseProgressCallback

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
    "SparseProgressCallback",
    "TTAView",
    "default_tta_offset",
    "load_input",
    "load_learner",
    "make_prediction",
    "read_weights",
    "sparse_dataloaders",
    "sparse_learner",
    "tta_views",
    "unlabelled_pipeline",
    "write_prediction",
]
