"""Target types: what a sample is labelled with, how it is checked, collated, scored and decoded.

Each target type has ``name``, ``per`` ("point" or "sample"), ``num_outputs`` (channels the
model's head must produce), ``check(cloud)`` (DataFormatError naming ``cloud.meta["path"]``),
``collate(clouds)``, ``loss_func()`` (a plain torch callable ``(pred, y) -> scalar``),
``metrics`` (registry names) and ``decode(pred)``. Depends on torch and numpy only; torch is
imported inside the methods that need it, so building a task (``fastai-sparse tasks``) does
not load it.

This module holds the base class and the per-point / per-sample label types (segmentation,
classification, regression). The spatial target types (``VectorTarget``, ``BoundingBoxes``,
``KeypointTarget``) live next to their metrics in :mod:`fastai_sparse.spatial` and stay
importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import DataFormatError
from .geometry import PointCloud

__all__ = [
    "BoundingBoxes",  # noqa: F822  (lazy, from fastai_sparse.spatial.targets)
    "Classification",
    "KeypointTarget",  # noqa: F822
    "Regression",
    "Segmentation",
    "TargetType",
    "VectorTarget",  # noqa: F822
]


def _path(cloud: PointCloud) -> Any:
    return cloud.meta.get("path") or cloud.meta.get("id")


class TargetType:
    """Base class. Subclasses set ``name``, ``per``, ``metrics`` and implement the methods."""

    name: str = "target"
    per: str = "sample"
    metrics: tuple[str, ...] = ()

    @property
    def num_outputs(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def check(self, cloud: PointCloud) -> None:  # pragma: no cover
        raise NotImplementedError

    def collate(self, clouds: Sequence[PointCloud]):  # pragma: no cover
        raise NotImplementedError

    def loss_func(self):  # pragma: no cover
        raise NotImplementedError

    def decode(self, pred):
        return pred

    def _fields(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        f = ", ".join(f"{k}={v!r}" for k, v in self._fields().items())
        return f"{type(self).__name__}({f})"


def _classes(classes: Sequence[str] | int, who: str) -> tuple[str, ...]:
    if isinstance(classes, int):
        classes = [str(i) for i in range(classes)]
    classes = tuple(str(c) for c in classes)
    if not classes:
        raise ValueError(f"{who}: at least one class is needed")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{who}: class names must be unique, got {classes}")
    return classes


def _short(classes: tuple[str, ...]) -> str:
    return (
        repr(list(classes))
        if len(classes) <= 6
        else f"[{', '.join(map(repr, classes[:5]))}, ... {len(classes)}]"
    )


class Segmentation(TargetType):
    """Per-point classes in ``cloud.attrs[key]`` (int, one per point, in [0, K) or
    ``ignore_index``). Collates to int64 [N_total]; loss: cross-entropy with ignore index;
    decode: argmax of logits [N, K]."""

    name = "segmentation"
    per = "point"
    metrics = ("miou", "iou-per-class", "accuracy", "mean-class-accuracy")

    def __init__(self, classes: Sequence[str] | int, ignore_index: int = -100, key: str = "labels"):
        self.classes = _classes(classes, "Segmentation")
        self.ignore_index, self.key = int(ignore_index), key

    def _fields(self):
        return {"classes": _short(self.classes), "ignore_index": self.ignore_index, "key": self.key}

    def __repr__(self) -> str:
        return f"Segmentation(classes={_short(self.classes)}, ignore_index={self.ignore_index}, key={self.key!r})"

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def check(self, cloud: PointCloud) -> None:
        path = _path(cloud)
        if self.key not in cloud.attrs:
            raise DataFormatError(
                f"no per-point labels {self.key!r}; attributes are {sorted(cloud.attrs)}",
                path=path,
                field=self.key,
            )
        lab = np.asarray(cloud.attrs[self.key])
        if lab.ndim != 1 or len(lab) != len(cloud):
            raise DataFormatError(
                f"labels have shape {list(lab.shape)}, expected [{len(cloud)}] (one per point)",
                path=path,
                field=self.key,
            )
        integral = np.issubdtype(lab.dtype, np.floating) and bool(np.all(np.mod(lab, 1) == 0))
        if not np.issubdtype(lab.dtype, np.integer) and not integral:
            raise DataFormatError(
                f"labels must be integers, got dtype {lab.dtype}", path=path, field=self.key
            )
        k = len(self.classes)
        bad = ((lab < 0) | (lab >= k)) & (lab != self.ignore_index)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"{int(bad.sum())} label(s) outside the class range; first: point {i} has label {int(lab[i])}, "
                f"expected 0..{k - 1} or the ignore index {self.ignore_index}",
                path=path,
                field=self.key,
            )

    def collate(self, clouds):
        import torch

        return torch.from_numpy(
            np.concatenate([np.asarray(c.attrs[self.key]) for c in clouds]).astype(np.int64)
        )

    def loss_func(self):
        from torch import nn

        return nn.CrossEntropyLoss(ignore_index=self.ignore_index)

    def decode(self, pred):
        return pred.argmax(-1)


class Classification(TargetType):
    """One class per sample in ``cloud.target`` (int in [0, K)). Collates to int64 [B]."""

    name = "classification"
    per = "sample"
    metrics = ("accuracy", "mean-class-accuracy")

    def __init__(self, classes: Sequence[str] | int):
        self.classes = _classes(classes, "Classification")

    def __repr__(self) -> str:
        return f"Classification(classes={_short(self.classes)})"

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def check(self, cloud):
        t = cloud.target
        ok = isinstance(t, (int, np.integer)) or (
            isinstance(t, np.ndarray) and t.ndim == 0 and t.dtype.kind in "iu"
        )
        if not ok or isinstance(t, bool):
            raise DataFormatError(
                f"classification target must be an int class index, got {t!r}",
                path=_path(cloud),
                field="target",
            )
        if not 0 <= int(t) < len(self.classes):
            raise DataFormatError(
                f"class {int(t)} outside 0..{len(self.classes) - 1}", path=_path(cloud), field="target"
            )

    def collate(self, clouds):
        import torch

        return torch.tensor([int(c.target) for c in clouds], dtype=torch.int64)

    def loss_func(self):
        from torch import nn

        return nn.CrossEntropyLoss()

    def decode(self, pred):
        return pred.argmax(-1)


class Regression(TargetType):
    """A float vector per sample (``cloud.target``: float [D], or a :class:`VectorTarget` when
    ``vector=True``, D = 3). Collates to float32 [B, D]; loss MSE or L1."""

    name = "regression"
    per = "sample"
    metrics = ("mae", "rmse")

    def __init__(self, names: Sequence[str] | str, loss: str = "mse", vector: bool = False):
        self.names = (names,) if isinstance(names, str) else tuple(names)
        if loss not in ("mse", "l1"):
            raise ValueError(f"Regression: loss must be 'mse' or 'l1', got {loss!r}")
        self.loss, self.vector = loss, bool(vector)
        if self.vector and len(self.names) != 3:
            raise ValueError(f"Regression(vector=True) needs 3 names, got {self.names}")

    def _fields(self):
        return {"names": self.names, "loss": self.loss, "vector": self.vector}

    @property
    def num_outputs(self) -> int:
        return len(self.names)

    def _value(self, t) -> np.ndarray:
        from .spatial.targets import VectorTarget

        return np.asarray(t.value if isinstance(t, VectorTarget) else t, np.float32).reshape(-1)

    def check(self, cloud):
        from .spatial.targets import VectorTarget

        t = cloud.target
        if self.vector and not isinstance(t, VectorTarget):
            raise DataFormatError(
                f"Regression(vector=True) needs a VectorTarget (so it moves with the geometry), got "
                f"{type(t).__name__}",
                path=_path(cloud),
                field="target",
            )
        try:
            v = self._value(t)
        except (TypeError, ValueError) as e:
            raise DataFormatError(
                f"regression target {t!r} is not numeric: {e}", path=_path(cloud), field="target"
            ) from e
        if len(v) != len(self.names):
            raise DataFormatError(
                f"regression target has {len(v)} values, expected {len(self.names)} ({', '.join(self.names)})",
                path=_path(cloud),
                field="target",
            )
        if not np.isfinite(v).all():
            raise DataFormatError(
                f"regression target {v.tolist()} is not finite", path=_path(cloud), field="target"
            )

    def collate(self, clouds):
        import torch

        return torch.from_numpy(np.stack([self._value(c.target) for c in clouds]).astype(np.float32))

    def loss_func(self):
        from torch import nn

        return nn.MSELoss() if self.loss == "mse" else nn.L1Loss()


# The spatial target types live in fastai_sparse.spatial.targets; these names keep working.
_SPATIAL = ("BoundingBoxes", "KeypointTarget", "VectorTarget")


def __getattr__(name: str) -> Any:
    if name in _SPATIAL:
        from .spatial import targets as spatial_targets

        return getattr(spatial_targets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
