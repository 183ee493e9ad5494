"""The Learner: :class:`SparseLearner` (``get_preds`` one row per point, ``predict``, ``tta``,
``show_results``, weights, ``distrib_ctx``) and :func:`sparse_learner`, which builds one from
loaders, a model and metric names."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.callback.progress import ProgressCallback
from fastai.data.core import TfmdDL
from fastai.learner import Learner
from fastai.torch_core import to_device

from ..errors import (
    DataFormatError,
    EmptyDatasetError,
    ShapeError,
)
from .callbacks import EpochSeedCallback, NonFiniteLossCallback
from .checkpoint import export, load_weights, save_pretrained, save_weights
from .data import SparseDataset
from .predict import Prediction, default_tta_offset, load_input, make_prediction, tta_views
from .progress import SparseProgressCallback

__all__ = ["SparseLearner", "sparse_learner"]


def _identity(x):
    return x


def _softmax_last(x):
    return torch.softmax(x, -1) if isinstance(x, torch.Tensor) and x.is_floating_point() else x


class SparseLearner(Learner):
    """A fastai ``Learner`` for sparse 3D batches (see the module docstring).

    task_name: the task the model is trained for (stored in weights files and checked on load).
    class_names: names of the output classes (None for regression).
    read_input: how :meth:`predict` reads a file path (a task's ``read_input``; default
    :func:`fastai_sparse.io.load`), see :func:`~fastai_sparse.learner.load_input`.
    task: the :class:`~fastai_sparse.Task` itself, when known: its configuration is stored with
    exported weights, so that loading rebuilds it through the registry.
    """

    def __init__(
        self,
        dls,
        model,
        loss_func=None,
        *,
        task_name: str | None = None,
        class_names: Sequence[str] | None = None,
        read_input=None,
        task: Any = None,
        **kwargs,
    ):
        super().__init__(dls, model, loss_func=loss_func, **kwargs)
        self.task_name, self.read_input = task_name, read_input
        self.task = task
        if self.task_name is None:
            self.task_name = getattr(task, "name", None)
        tt = getattr(dls, "target_type", None)
        if class_names is None and getattr(tt, "classes", None) is not None:
            class_names = list(tt.classes)
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        for cb in (EpochSeedCallback(), NonFiniteLossCallback()):
            if not any(isinstance(c, type(cb)) for c in self.cbs):
                self.add_cb(cb)
        if type(getattr(self, "progress", None)) is ProgressCallback:  # fastai's: plain lines in logs
            self.remove_cb(self.progress)
            self.add_cb(SparseProgressCallback())

    @contextmanager
    def no_bar(self):
        """fastai's ``no_bar`` (no progress output inside the block), giving back this learner's
        own progress callback afterwards (fastai's would add a new ``ProgressCallback``)."""
        cb = getattr(self, "progress", None)
        if cb is not None:
            self.remove_cb(cb)
        try:
            yield self
        finally:
            if cb is not None:
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
        """Predict one input: a file path (read as ``fastai-sparse predict`` reads it: with the
        task's ``read_input``, else :func:`fastai_sparse.io.load`), a Mesh or a PointCloud.

        Returns a :class:`Prediction` with one row per original point/vertex for per-point tasks
        (labels int64 [N], probs float32 [N, K], confidence float32 [N]) or one per sample.
        ``tta`` > 1 averages the logits of that many views (see :func:`tta_views`).
        """
        cloud, _ = load_input(item, getattr(self, "read_input", None))
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
        from ..batch import collate, split_batch

        x, _ = collate(list(samples), None)
        x = to_device(x, next(self.model.parameters()).device)
        self.model.eval()
        with torch.no_grad():
            out = self.model(x)
        return [o.detach().cpu() for o in split_batch(x, out)]

    def show_results(self, ds_idx: int = 1, dl=None, max_n: int = 4, shuffle: bool = False, **kwargs):
        """Ground truth and prediction side by side for the first ``max_n`` samples of a loader
        (the validation set by default); returns the figure (see :func:`fastai_sparse.viz.show_results`)."""
        from .. import viz

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
    def save_weights(
        self,
        path: str | Path,
        overwrite: bool = False,
        config: dict | None = None,
        metrics: dict | None = None,
    ) -> Path:
        """Write the weights to one file (a relative path goes under ``learn.path``):
        ``.safetensors`` (tensors plus the task name, class names and configuration in the
        header; see :mod:`fastai_sparse.weights`) or, for names ending ``.pth``, the older
        ``torch.save`` format. An existing file is kept unless ``overwrite``."""
        return save_weights(self, path, overwrite, config, metrics)

    def save_pretrained(
        self,
        folder: str | Path,
        overwrite: bool = False,
        config: dict | None = None,
        metrics: dict | None = None,
    ) -> Path:
        """Write a model folder laid out like a Hugging Face Hub repository: ``model.safetensors``,
        ``config.json`` (task, classes, configuration, metrics) and a ``README.md`` model card.
        ``config``: the run's configuration (default the task's, see :meth:`Task.config`);
        ``metrics``: default the last epoch's."""
        return save_pretrained(self, folder, overwrite, config, metrics)

    def export(  # type: ignore[override]
        self,
        fname: str | Path = "model",
        overwrite: bool = False,
        unsafe_pickle: bool = False,
        config: dict | None = None,
        metrics: dict | None = None,
        **pickle_kwargs,
    ) -> Path:
        """Export for inference: a model folder (:meth:`save_pretrained`), or one ``.safetensors``
        file when ``fname`` ends so; :func:`~fastai_sparse.learner.load_learner` reads both without
        running code. fastai's pickled export only with ``unsafe_pickle=True`` (loading it runs any
        code it holds)."""
        return export(self, fname, overwrite, unsafe_pickle, config, metrics, **pickle_kwargs)

    def load_weights(self, path: str | Path, strict: bool = True) -> SparseLearner:
        """Load weights written by :meth:`save_weights` or :meth:`export` (a model folder, a
        ``.safetensors`` file, or an older ``.pth`` file read with ``weights_only=True``).

        Raises :class:`CheckpointError` when the file is missing or corrupt, was saved for another
        task or other classes, or does not fit the model (missing / unexpected / mis-shaped
        tensors), and :class:`~fastai_sparse.errors.UnsafeFileError` for a file that would run code.
        """
        load_weights(self, path, strict)
        return self

    # -- distributed --------------------------------------------------------------------------
    def distrib_ctx(self, sync_bn: bool = False, backend: str | None = None, **kwargs):
        """Data-parallel training under ``torchrun`` (gloo on CPU, nccl on GPUs); a no-op in a
        single process. See :mod:`fastai_sparse.distributed`."""
        from ..distributed import distrib_ctx

        return distrib_ctx(self, sync_bn=sync_bn, backend=backend, **kwargs)


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
    task: a Task or a task name (stored with weights; a Task also gives its ``read_input`` to
    ``learn.predict``). ``loss_func`` defaults to the target type's loss.
    """
    from ..metrics import PerClassTableCallback

    tt = getattr(dls, "target_type", None)
    if loss_func is None:
        if tt is None or not hasattr(tt, "loss_func"):
            raise ValueError("pass loss_func: the dataloaders have no target type to take a loss from")
        loss_func = tt.loss_func()
    mets, cbs = [], list(kwargs.pop("cbs", None) or [])
    for m in metrics or []:
        if isinstance(m, str):
            from ..registry import default_registry

            m = default_registry().build_metric(m, tt)
        if getattr(m, "is_table", False):
            cbs.append(PerClassTableCallback(m, quiet=quiet_tables))
        else:
            mets.append(m)
    task_name = task if isinstance(task, str) or task is None else getattr(task, "name", None)
    is_task = task is not None and not isinstance(task, str)
    class_names = getattr(task, "class_names", None) if is_task else None
    return SparseLearner(
        dls,
        model,
        loss_func=loss_func,
        metrics=mets,
        cbs=cbs,
        path=path,
        task_name=task_name,
        class_names=class_names,
        read_input=getattr(task, "read_input", None) if is_task else None,
        task=task if is_task else None,
        **kwargs,
    )
