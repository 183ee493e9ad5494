"""Data for fastai: datasets of sparse samples, their loaders and :func:`sparse_dataloaders`.

:class:`SparseDataset` turns items (PointCloud, Mesh or file paths) into
:class:`~fastai_sparse.batch.SparseSample` through a pipeline, with the random state
``default_rng([seed, stream, epoch, index])``; :class:`SparseDL` collates them into ``(x, y)``
batches; :class:`SparseDataLoaders` adds ``test_dl``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastai.data.core import DataLoaders, TfmdDL
from fastai.torch_core import default_device

from ..errors import (
    DataFormatError,
    EmptyDatasetError,
)
from ..geometry import Mesh, PointCloud

__all__ = ["SparseDL", "SparseDataLoaders", "SparseDataset", "sparse_dataloaders", "unlabelled_pipeline"]


def _to_cloud(item: Any) -> PointCloud:
    """A PointCloud from a PointCloud, a Mesh (its vertices) or a file path (via fastai_sparse.io)."""
    if isinstance(item, (str, Path)):
        from ..io import load

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
        from ..batch import collate

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
        from .. import viz

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


def unlabelled_pipeline(pipeline: Any) -> Any:
    """A shallow copy of a sample pipeline that does not check targets (inputs to predict have
    no labels)."""
    if getattr(pipeline, "target_type", None) is None:
        return pipeline
    p = copy.copy(pipeline)
    p.target_type = None
    return p
