"""Predictions and test-time augmentation: :func:`load_input` (how every prediction path reads
its input), :class:`Prediction`, :func:`make_prediction`, the deterministic TTA views
(:class:`TTAView`, :func:`tta_views`, :func:`default_tta_offset`) and :func:`write_prediction`
(a labelled, coloured PLY).

One prediction path: ``learn.predict(path)``, :class:`fastai_sparse.prediction.Predictor` and
``fastai-sparse predict`` all read a user's file with :func:`load_input`, that is with the task's
``read_input`` when it has one (S3DIS rooms as ``x y z r g b`` text, ShapeNet shapes whose
category comes from their folder, ...) and :func:`fastai_sparse.io.load` otherwise.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PluginError, ShapeError
from ..geometry import Mesh, PointCloud

__all__ = [
    "Prediction",
    "TTAView",
    "default_tta_offset",
    "load_input",
    "make_prediction",
    "tta_views",
    "write_prediction",
]


def load_input(
    item: str | os.PathLike | PointCloud | Mesh, read_input: Callable | None = None
) -> tuple[PointCloud, PointCloud | Mesh]:
    """``(cloud to predict on, original object to write results onto)`` for one input.

    item: a file path, read with ``read_input`` (a task's :attr:`~fastai_sparse.Task.read_input`)
    or, when that is None, :func:`fastai_sparse.io.load` (by extension); or a PointCloud or Mesh,
    used as it is. A Mesh is predicted on its vertices (``mesh.to_points()``) and returned as
    the original, so a prediction can be written back onto the mesh.

    A ``read_input`` that returns something else than a PointCloud or Mesh raises
    :class:`~fastai_sparse.errors.PluginError` naming it.
    """
    if isinstance(item, (str, os.PathLike)):
        if read_input is None:
            from ..io import load

            obj = load(item)
        else:
            obj = read_input(item)
            if not isinstance(obj, (PointCloud, Mesh)):
                name = getattr(read_input, "__qualname__", None) or repr(read_input)
                raise PluginError(
                    f"read_input {name} returned {type(obj).__name__} for {os.fspath(item)!r}; "
                    "a task's read_input(path) must return a PointCloud or a Mesh"
                )
    else:
        obj = item
    if isinstance(obj, Mesh):
        return obj.to_points(), obj
    if isinstance(obj, PointCloud):
        return obj, obj
    raise TypeError(f"expected a file path, a Mesh or a PointCloud, got {type(obj).__name__}")


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
    from ..io import write_ply

    if result.per != "point":
        raise ValueError("write_prediction writes per-point predictions; this prediction is per sample")
    n = len(cloud_or_mesh.vertices) if isinstance(cloud_or_mesh, Mesh) else len(cloud_or_mesh)
    labels = np.asarray(result.labels, dtype=np.int64)
    if len(labels) != n:
        raise ShapeError(f"{len(labels)} predicted labels for {n} points/vertices")
    k = len(class_names or result.class_names or []) or (int(labels.max()) + 1 if len(labels) else 1)
    if colors is None:
        from ..viz.colors import class_colors

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
