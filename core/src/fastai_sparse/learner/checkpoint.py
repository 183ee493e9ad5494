"""Saving and loading learners: the functions behind ``SparseLearner.save_weights`` /
``load_weights`` / ``export`` / ``save_pretrained``, and :func:`load_learner`.

The formats live in :mod:`fastai_sparse.weights` (a model folder or a ``.safetensors`` file,
loaded without pickle; older ``.pth`` weights read with ``weights_only=True``). A learner is
rebuilt from them through the registry: the task from the stored configuration, the model
from the task, the weights into the model, and loaders with the task's pipelines but no items
(what ``learn.predict``, ``learn.tta`` and ``learn.get_preds(dl=...)`` need).

fastai's own pickled export (``learn.export("export.pkl", unsafe_pickle=True)``) is still
available, and :func:`load_learner` reads it only when told ``unsafe_pickle=True``: unpickling
runs whatever code the file holds. Without it a pickled export is refused, never tried.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from fastai.learner import Learner
from fastai.torch_core import default_device

from ..errors import CheckpointError, FastaiSparseError, UnsafeFileError
from ..weights import (
    LEGACY_FORMAT,
    model_document,
    read_weights,
    sniff,
    task_for_weights,
    write_legacy,
    write_model_folder,
    write_weights,
)

__all__ = ["WEIGHTS_FORMAT", "learner_from_weights", "load_learner", "read_weights"]

#: The older weights format (``.pth``), still read and written for names ending in ``.pth``.
WEIGHTS_FORMAT = LEGACY_FORMAT
_PICKLE_SUFFIXES = (".pkl", ".pickle")


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper, else ``model`` itself."""
    return (
        model.module
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel)
        else model
    )


def in_channels_of(model: torch.nn.Module) -> int | None:
    """The number of input feature channels of a :class:`~fastai_sparse.models.SparseModel`
    (its input stage's, else its backbone's), or None when the modules do not say."""
    model = unwrap_model(model)
    first = getattr(model, "input_stage", None) or getattr(model, "backbone", None) or model
    value = getattr(first, "in_channels", None)
    return int(value) if isinstance(value, int) else None


def _recorded_metrics(learn: Any) -> dict:
    """The metrics of the last finished epoch, from fastai's recorder (empty before any fit)."""
    rec = getattr(learn, "recorder", None)
    values = list(getattr(rec, "values", None) or [])
    if not values:
        return {}
    names = list(rec.metric_names[1:-1])
    out = {}
    for n, v in zip(names, values[-1]):
        try:
            out[n] = float(v)
        except (TypeError, ValueError):
            out[n] = str(v)
    return out


def learner_document(learn: Any, config: Mapping | None = None, metrics: Mapping | None = None) -> dict:
    """The model document of ``learn`` (see :func:`fastai_sparse.weights.model_document`).

    ``config``: the run's configuration (what ``train_task`` recorded); default the task's
    own, with the batch size and seed of the learner's loaders (``config_source`` says which).
    ``metrics``: default those of fastai's recorder after the last epoch.
    """
    task = getattr(learn, "task", None)
    source = "run" if config is not None else "task"
    if config is None and task is not None:
        dls = getattr(learn, "dls", None)
        settings = {}
        if dls is not None and getattr(dls, "train", None) is not None:
            settings = {"bs": int(dls.train.bs), "seed": int(getattr(dls.train, "seed", 0))}
            settings["root"] = getattr(dls, "root", None)
            settings["dataset_options"] = getattr(dls, "dataset_options", None)
        config = task.config(**settings)
    model = unwrap_model(learn.model)
    doc = model_document(
        task=learn.task_name,
        class_names=learn.class_names,
        config=config,
        in_channels=in_channels_of(model),
        model=type(model).__name__,
        metrics=metrics if metrics is not None else _recorded_metrics(learn),
    )
    doc["config_source"] = source if config is not None else None
    return doc


def _state(learn: Any) -> dict:
    return unwrap_model(learn.model).state_dict()


def _resolve(learn: Any, path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else Path(learn.path) / path


def save_weights(
    learn: Any,
    path: str | Path,
    overwrite: bool = False,
    config: Mapping | None = None,
    metrics: Mapping | None = None,
) -> Path:
    """Write ``learn``'s weights to one file (see :meth:`SparseLearner.save_weights`)."""
    path = _resolve(learn, path)
    suffix = path.suffix.lower()
    doc = learner_document(learn, config, metrics)
    if suffix == ".safetensors":
        return write_weights(path, _state(learn), doc, overwrite=overwrite)
    if suffix in (".pth", ".pt"):
        return write_legacy(path, _state(learn), doc, overwrite=overwrite)
    raise CheckpointError(
        f"{path}: name weights files .safetensors (or .pth for the older torch format); "
        "use learn.save_pretrained(folder) for a model folder"
    )


def save_pretrained(
    learn: Any,
    folder: str | Path,
    overwrite: bool = False,
    config: Mapping | None = None,
    metrics: Mapping | None = None,
) -> Path:
    """Write a model folder (``model.safetensors``, ``config.json``, ``README.md``)."""
    folder = _resolve(learn, folder)
    return write_model_folder(
        folder, _state(learn), learner_document(learn, config, metrics), overwrite=overwrite
    )


def export(
    learn: Any,
    fname: str | Path = "model",
    overwrite: bool = False,
    unsafe_pickle: bool = False,
    config: Mapping | None = None,
    metrics: Mapping | None = None,
    **pickle_kwargs: Any,
) -> Path:
    """``learn.export``: a model folder, or one ``.safetensors`` file when ``fname`` ends so;
    fastai's pickled export only with ``unsafe_pickle=True``."""
    path = _resolve(learn, fname)
    if unsafe_pickle:
        if path.exists() and not overwrite:
            from ..errors import OutputExistsError

            raise OutputExistsError(path, "the output already exists", "pass overwrite=True or another name")
        Learner.export(learn, path, **pickle_kwargs)
        return path
    if path.suffix.lower() in (*_PICKLE_SUFFIXES, ".pth", ".pt"):
        raise CheckpointError(
            f"{path}: learn.export writes a model folder (or a .safetensors file) that loads without "
            f"running code; pass a folder name such as 'model', or unsafe_pickle=True for fastai's "
            f"pickled {path.suffix} export"
        )
    if path.suffix.lower() == ".safetensors":  # fname, not path: both join it to learn.path
        return save_weights(learn, fname, overwrite=overwrite, config=config, metrics=metrics)
    return save_pretrained(learn, fname, overwrite=overwrite, config=config, metrics=metrics)


def load_weights(learn: Any, path: str | Path, strict: bool = True) -> None:
    """Load weights into ``learn``'s model (see :meth:`SparseLearner.load_weights`)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = Path(learn.path) / path
    ckpt = read_weights(path)
    if learn.task_name is not None and ckpt.get("task") is not None and ckpt["task"] != learn.task_name:
        raise CheckpointError(
            f"{path}: weights were trained for task {ckpt['task']!r}, "
            f"but this learner is for task {learn.task_name!r}"
        )
    if (
        learn.class_names is not None
        and ckpt.get("class_names") is not None
        and list(ckpt["class_names"]) != list(learn.class_names)
    ):
        raise CheckpointError(
            f"{path}: weights were trained for classes {ckpt['class_names']}, "
            f"this learner has {learn.class_names}"
        )
    _load_state(unwrap_model(learn.model), ckpt, path, strict)


def _load_state(model: torch.nn.Module, ckpt: dict, path: Any, strict: bool = True) -> None:
    try:
        missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: the weights do not fit the model ({ckpt.get('model')!r} saved, "
            f"{type(model).__name__} here): {str(e).splitlines()[0]}"
        ) from e
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{path}: the weights do not fit the model: missing {list(missing)[:8]}, "
            f"unexpected {list(unexpected)[:8]}"
        )


# -- loading a learner ----------------------------------------------------------------------------
def _empty_dataloaders(task: Any, bs: int, seed: int, device: Any):
    """Loaders with the task's pipelines and no items (what fastai's export keeps)."""
    from .data import SparseDataLoaders, SparseDataset, SparseDL

    common = dict(target_type=task.target, seed=seed, num_workers=0, bs=bs)
    train = SparseDL(SparseDataset([], task.pipeline(train=True), seed, 0), shuffle=True, **common)
    valid = SparseDL(SparseDataset([], task.pipeline(train=False), seed, 1), shuffle=False, **common)
    return SparseDataLoaders(train, valid, path=".", device=device)


def learner_from_weights(ckpt: Mapping, cpu: bool = True, task: Any = None) -> Learner:
    """A :class:`SparseLearner` for weights read by :func:`read_weights` (see the module docstring)."""
    task = task_for_weights(ckpt, task)
    path = ckpt.get("path")
    in_channels = ckpt.get("in_channels") or task.make_voxelizer().num_features
    if not in_channels:
        raise CheckpointError(
            f"{path}: the number of input channels is not recorded and the voxelizer's features "
            f"{task.make_voxelizer().features} do not tell it; load the weights into a learner built "
            "on data (task.learner(dls).load_weights(path))"
        )
    model = task.build_model(int(in_channels))
    _load_state(model, ckpt, path)
    cfg = ckpt.get("config") or {}
    device = torch.device("cpu") if cpu else default_device()
    dls = _empty_dataloaders(
        task, int(cfg.get("bs") or task.defaults["bs"]), int(cfg.get("seed") or 0), device
    )
    learn = task.learner(dls, model=model.to(device), path=".")
    return learn


def _load_pickled(fname: Path, cpu: bool) -> Learner:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = torch.load(fname, map_location="cpu" if cpu else default_device(), weights_only=False)
    except ImportError as e:
        raise FastaiSparseError(
            f"{fname}: the exported learner needs the module {e.name!r}, which cannot be "
            f"imported here ({e}); install the plugin or package that defines it"
        ) from e
    except Exception as e:
        raise CheckpointError(f"{fname}: not a readable pickled learner: {type(e).__name__}: {e}") from e
    if isinstance(res, dict) and res.get("format") == LEGACY_FORMAT:
        return learner_from_weights({**res, "path": str(fname), "config": None, "in_channels": None}, cpu)
    if not isinstance(res, Learner):
        raise CheckpointError(f"{fname}: expected an exported Learner, found {type(res).__name__}")
    if cpu:
        res.dls.cpu()
    return res


def load_learner(
    fname: str | Path,
    cpu: bool = True,
    *,
    unsafe_pickle: bool = False,
    task: Any = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Learner:
    """A learner from a model folder, a ``.safetensors`` or ``.pth`` weights file, or a Hugging
    Face Hub model id (see :func:`fastai_sparse.hub.pretrained_path`), rebuilt through the
    registry; no code is loaded from the file.

    ``unsafe_pickle=True`` also reads fastai's pickled export (``learn.export("x.pkl",
    unsafe_pickle=True)``): unpickling runs any code the file holds, so only for files you
    trust. Without it a pickled export raises :class:`~fastai_sparse.errors.UnsafeFileError`
    and nothing in it runs. ``task``: rebuild from this Task instead of the registered one.
    """
    from ..hub import pretrained_path

    path = pretrained_path(fname, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    try:
        kind = sniff(path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None
    if kind in ("torch-zip", "pickle"):
        if unsafe_pickle:
            return _load_pickled(path, cpu)
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            raise UnsafeFileError(
                f"{path}: refused: a pickled fastai export runs whatever code it holds when loaded. "
                "Load the model folder or .safetensors file written by learn.export() instead, or, only "
                "for a file you trust, load_learner(path, unsafe_pickle=True)"
            )
    return learner_from_weights(read_weights(path), cpu, task)
