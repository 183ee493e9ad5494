"""Sparse samples, the per-sample pipeline and batch collation.

A :class:`SparseSample` is one voxelized cloud. :func:`collate` stacks samples into the batch
dict every model takes (a dict of tensors, which fastai moves to the device)::

    x = {"coords": int32 [M, 4] (batch, x, y, z), "feats": float32 [M, C],
         "inverse": int64 [N_total] (global voxel row of every point),
         "voxel_offsets": int64 [B + 1], "point_offsets": int64 [B + 1],
         "point_feats": float32 [N_total, C'] (only when every sample has them)}

and the target ``y = target_type.collate([s.cloud for s in samples])``. A target type may
also define ``collate_inputs(clouds) -> dict[str, Tensor]``: its entries join ``x`` (for
inputs the head needs per sample, e.g. the object category of a part-segmentation shape).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import ShapeError
from .geometry import PointCloud

__all__ = ["SamplePipeline", "SparseSample", "collate", "split_batch"]


@dataclass(eq=False)
class SparseSample:
    """One voxelized sample.

    coords: int32 [M, 3] voxel coordinates (>= 0); feats: float32 [M, C]; inverse: int64 [N]
    (row in coords of every point of ``cloud``); cloud: the transformed PointCloud the sample
    was made from (its attrs and target are aligned with ``inverse``); point_feats: float32
    [N, C'] or None.
    """

    coords: np.ndarray
    feats: np.ndarray
    inverse: np.ndarray
    cloud: PointCloud
    point_feats: np.ndarray | None = None

    def __post_init__(self):
        m, n = len(self.coords), len(self.cloud)
        if len(self.feats) != m:
            raise ShapeError(f"SparseSample: feats has {len(self.feats)} rows, coords has {m}")
        if len(self.inverse) != n:
            raise ShapeError(f"SparseSample: inverse has {len(self.inverse)} rows, the cloud has {n} points")
        if self.point_feats is not None and len(self.point_feats) != n:
            raise ShapeError(
                f"SparseSample: point_feats has {len(self.point_feats)} rows, the cloud has {n} points"
            )

    @property
    def num_voxels(self) -> int:
        return len(self.coords)

    @property
    def num_points(self) -> int:
        return len(self.inverse)

    def __repr__(self) -> str:
        pf = None if self.point_feats is None else list(self.point_feats.shape)
        return (
            f"SparseSample(voxels={self.num_voxels}, points={self.num_points}, feats={list(self.feats.shape)}, "
            f"point_feats={pf}, id={self.cloud.meta.get('id')!r})"
        )


class SamplePipeline:
    """``cloud -> transforms -> checks -> voxelizer -> SparseSample``.

    transforms: a callable ``(cloud, rng) -> cloud`` (e.g. a Compose) or None; voxelizer: a
    :class:`~fastai_sparse.voxelize.Voxelizer`; target_type: when given, its ``check`` runs on
    the transformed cloud (labels still aligned after crops, boxes valid, ...); point_features:
    attribute names gathered per point into ``SparseSample.point_feats``.
    """

    def __init__(
        self,
        transforms: Callable | None,
        voxelizer: Callable,
        target_type: Any = None,
        point_features: Sequence[str] | None = None,
    ):
        self.transforms, self.voxelizer, self.target_type = transforms, voxelizer, target_type
        self.point_features = None if point_features is None else tuple(point_features)

    def __repr__(self) -> str:
        return (
            f"SamplePipeline(transforms={self.transforms!r}, voxelizer={self.voxelizer!r}, "
            f"target_type={self.target_type!r}, point_features={self.point_features})"
        )

    def __call__(self, cloud: PointCloud, rng: np.random.Generator | None = None) -> SparseSample:
        from .voxelize import gather_features

        if self.transforms is not None:
            cloud = self.transforms(cloud, rng)
        cloud.check_finite()
        if self.target_type is not None:
            self.target_type.check(cloud)
        sample = self.voxelizer(cloud, rng)
        if self.point_features is not None:
            sample.point_feats = gather_features(sample.cloud, self.point_features)
        return sample


def _offsets(counts: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def collate(
    samples: Sequence[SparseSample], target_type: Any = None, labels: bool = True
) -> tuple[dict[str, torch.Tensor], Any]:
    """Stack samples into ``(x, y)`` (see the module docstring).

    y is None without a target type or with ``labels=False`` (inputs to predict on); the target
    type's ``collate_inputs`` join ``x`` in both cases.
    """
    samples = list(samples)
    if not samples:
        raise ValueError("collate: no samples")
    channels = {s.feats.shape[1] for s in samples}
    if len(channels) > 1:
        raise ShapeError(f"collate: samples have different feature widths {sorted(channels)}")
    vo = _offsets([s.num_voxels for s in samples])
    po = _offsets([s.num_points for s in samples])
    coords = np.empty((vo[-1], 4), np.int32)
    for b, s in enumerate(samples):
        coords[vo[b] : vo[b + 1], 0] = b
        coords[vo[b] : vo[b + 1], 1:] = s.coords
    inverse = np.concatenate([s.inverse.astype(np.int64) + vo[b] for b, s in enumerate(samples)])
    x = {
        "coords": torch.from_numpy(coords),
        "feats": torch.from_numpy(np.concatenate([s.feats for s in samples]).astype(np.float32, copy=False)),
        "inverse": torch.from_numpy(inverse),
        "voxel_offsets": torch.from_numpy(vo),
        "point_offsets": torch.from_numpy(po),
    }
    has_pf = [s.point_feats is not None for s in samples]
    if all(has_pf):
        x["point_feats"] = torch.from_numpy(
            np.concatenate([s.point_feats for s in samples]).astype(np.float32)
        )
    elif any(has_pf):
        raise ShapeError("collate: some samples have point_feats and some do not")
    clouds = [s.cloud for s in samples]
    extra = getattr(target_type, "collate_inputs", None)
    if extra is not None:
        for key, value in extra(clouds).items():
            if key in x:
                raise ShapeError(
                    f"collate: {type(target_type).__name__}.collate_inputs returned {key!r}, "
                    "which is already a batch field"
                )
            x[key] = value
    y = target_type.collate(clouds) if target_type is not None and labels else None
    return x, y


def split_batch(x: dict[str, Any], outputs, per: str | None = None) -> list:
    """Split batch rows back into one entry per sample.

    outputs: [R, ...] tensor or array with R = total points (``per="point"``), total voxels
    (``"voxel"``) or batch size (``"sample"``); ``per=None`` infers it from R (when totals
    coincide, every sample's counts coincide too, so the split is the same).
    """
    po = np.asarray(x["point_offsets"].cpu() if hasattr(x["point_offsets"], "cpu") else x["point_offsets"])
    vo = np.asarray(x["voxel_offsets"].cpu() if hasattr(x["voxel_offsets"], "cpu") else x["voxel_offsets"])
    r, b = len(outputs), len(po) - 1
    if per is None:
        per = "point" if r == po[-1] else "voxel" if r == vo[-1] else "sample" if r == b else None
        if per is None:
            raise ShapeError(
                f"split_batch: outputs have {r} rows; expected {po[-1]} (points), {vo[-1]} (voxels) or {b} (samples)"
            )
    if per == "sample":
        return [outputs[i] for i in range(b)]
    off = {"point": po, "voxel": vo}.get(per)
    if off is None:
        raise ValueError(f"split_batch: per must be 'point', 'voxel' or 'sample', got {per!r}")
    if r != off[-1]:
        raise ShapeError(f"split_batch: outputs have {r} rows, the batch has {off[-1]} {per}s")
    return [outputs[int(off[i]) : int(off[i + 1])] for i in range(b)]
