"""Checkpoints and export: the weights file (:data:`WEIGHTS_FORMAT`: a ``state_dict`` with the
task and class names, written with ``torch.save`` and read with ``weights_only=True``), the
functions behind ``SparseLearner.save_weights`` / ``load_weights``, :func:`read_weights`, and
:func:`load_learner` for files written by ``learn.export``."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from fastai.learner import Learner
from fastai.torch_core import default_device

from ..errors import (
    CheckpointError,
    FastaiSparseError,
)

__all__ = ["WEIGHTS_FORMAT", "load_learner", "read_weights"]

WEIGHTS_FORMAT = "fastai-sparse-weights/1"


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper, else ``model`` itself."""
    return (
        model.module
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel)
        else model
    )


def save_weights(learn: Any, path: str | Path) -> Path:
    """Write ``learn``'s weights (see :meth:`SparseLearner.save_weights`)."""
    path = Path(path)
    if not path.is_absolute():
        path = Path(learn.path) / path
    path.parent.mkdir(parents=True, exist_ok=True)
    model = unwrap_model(learn.model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {
            "format": WEIGHTS_FORMAT,
            "task": learn.task_name,
            "class_names": learn.class_names,
            "model": type(model).__name__,
            "state_dict": state,
        },
        path,
    )
    return path


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
    model = unwrap_model(learn.model)
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
