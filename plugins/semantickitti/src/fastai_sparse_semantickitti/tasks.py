"""The SemanticKITTI task ``semantickitti-seg`` and :func:`seg_task` to build variants.

Choices, and why:

- **5 cm voxels** (``scale=20`` voxels per metre), the voxel size of the sparse-convolution
  baselines on SemanticKITTI (MinkUNet / SPVNAS configurations). A 120k-point scan gives about
  90k voxels: thin classes (poles, trunks, signs, people) keep several voxels across, and
  coarser voxels merge them with their surroundings.
- **A grid of 8192 voxels per axis** (410 m): a scan spans up to 160 m across (80 m range) and
  about 30 m in height, so no augmentation (rotation, 5 % scale) and no far outlier can leave
  the grid; validation and prediction keep every point. The voxelizer shifts each scan so its
  lowest voxel is 0 on every axis (``origin="min"``): sensor-frame coordinates are negative on
  every axis, and voxel boundaries stay at multiples of 5 cm in the sensor frame.
- **Features: remission and the position in the sensor frame** (x, y, z / 10 m; 4 channels):
  the input of the MinkUNet baselines. Remission separates lane markings, signs and vegetation;
  the absolute position gives height above the road and range, which a translation-invariant
  network cannot see otherwise.
- **Model ``unet-m32-r2``**: a residual UNet, 32 base channels, 7 levels, two residual blocks
  per level. At 5 cm the coarsest level has 3.2 m voxels, so the receptive field covers whole
  cars, trucks and building fronts; width and residual blocks are those of MinkUNet.
- **Augmentation** (training only): rotation about z by U[0, 2 pi), mirror x and y each with
  p 0.5, isotropic scale U[0.95, 1.05], per-point jitter N(0, 1 cm) clipped at 5 cm. All are
  about the sensor (the origin), so the position feature stays sensor-relative. Validation and
  prediction: no augmentation, every point kept.
- **Classes**: the 19 learning classes of ``semantic-kitti.yaml``; learning class 0
  (unlabelled, outlier, other-structure, other-object) is ignored in the loss and the metrics.
  Predictions are written as raw ids through ``learning_map_inv`` (``label_values``), by
  default in the submission layout (the ``label`` output format, see submission.py).
- **Defaults**: batch 4, 15 epochs, lr 2e-3 (Adam, one-cycle), no TTA by default (the TTA views
  rotate about the scan's centroid, which moves the sensor-relative position feature): starting
  points for a GPU, not tuned on the full dataset here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastai_sparse import Factory, Task, TaskOption

from .config import LabelConfig, default_config, find_config

__all__ = ["FULL_SCALE", "OPTIONS", "SCALE", "fixture", "seg_task", "train_transforms", "valid_transforms"]

SCALE = 20.0
FULL_SCALE = 8192
DATASET = "fastai_sparse_semantickitti.dataset:SemanticKittiScans"


def train_transforms() -> list:
    """Rotation about z, mirror x and y, scale 0.95-1.05, 1 cm jitter, then the position feature."""
    from fastai_sparse.transforms.points import Jitter, RandomFlip, RandomRotate, RandomScale

    from .transforms import AddPosition

    return [
        RandomRotate("z"),
        RandomFlip(("x", "y")),
        RandomScale((0.95, 1.05)),
        Jitter(0.01, 0.05),
        AddPosition(),
    ]


def valid_transforms() -> list:
    """No augmentation: the position feature only (every point kept)."""
    from .transforms import AddPosition

    return [AddPosition()]


def fixture(directory: str | Path) -> Path:
    """A tiny SemanticKITTI root (sequences 00-21, one 3000-point scan each) in the real formats."""
    from .fixtures import make_fixture

    return make_fixture(Path(directory) / "semantickitti", scans=1, points=3000)


#: The dataset options a user may set from the command line (``-O name=value``).
OPTIONS = (
    TaskOption(
        "config",
        "the label configuration, a semantic-kitti.yaml (default ROOT/semantic-kitti.yaml, else the plugin's "
        "copy of the official one)",
        type=Path,
    ),
    TaskOption(
        "splits",
        "the splits to check, e.g. train,valid (default train and valid, and test when its scans are there)",
        commands=("prepare",),
    ),
    TaskOption("sequences", "check these sequences instead, e.g. 00-10 or 08,11", commands=("prepare",)),
    TaskOption(
        "limit", "use only the first N scans of each split (quick runs)", type=int, commands=("train",)
    ),
)


def _prepare(root, out=None, jobs=2, skip_bad=False, **kwargs):
    from .prepare import prepare

    return prepare(root, out=out, jobs=jobs, skip_bad=skip_bad, **kwargs)


def _read_input(path):
    from .dataset import read_input

    return read_input(path)


def seg_task(
    name: str = "semantickitti-seg",
    config: str | Path | LabelConfig | None = None,
    *,
    scale: float = SCALE,
    model: str = "unet-m32-r2",
    model_kwargs: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> Task:
    """A SemanticKITTI segmentation task.

    config: the label configuration (a ``semantic-kitti.yaml`` path or LabelConfig) whose learning
    classes the task predicts; default the official 19 (then the data root's own
    ``semantic-kitti.yaml`` is used for the raw id mapping when it has the same classes).
    scale: voxels per metre. model / model_kwargs: registered backbone. defaults: over
    ``{"bs": 4, "epochs": 15, "lr": 2e-3, "tta": 0, "format": "label"}``.
    """
    from fastai_sparse.targets import Segmentation
    from fastai_sparse.voxelize import Voxelizer

    from .config import IGNORE_INDEX
    from .submission import LabelFormat

    cfg = default_config() if config is None else find_config(None, config)
    ds_kwargs: dict[str, Any] = {"classes": tuple(cfg.class_names)}
    if config is not None:
        ds_kwargs["config"] = cfg
    cm = 100 / scale
    return Task(
        name=name,
        description=description
        or f"SemanticKITTI LiDAR segmentation, {cfg.num_classes} classes, {cm:g} cm voxels, residual UNet",
        target=Segmentation(list(cfg.class_names), ignore_index=IGNORE_INDEX),
        dataset=Factory("semantickitti", DATASET, **ds_kwargs),
        train_transforms=train_transforms(),
        valid_transforms=valid_transforms(),
        voxelizer=Voxelizer(
            scale=scale, features=("remission", "position"), full_scale=FULL_SCALE, origin="min"
        ),
        model=model,
        model_kwargs=dict(model_kwargs or {}),
        head="seg-linear",
        metrics=["miou", "iou-per-class", "accuracy", "mean-class-accuracy"],
        needs_root=True,
        defaults={"bs": 4, "epochs": 15, "lr": 2e-3, "tta": 0, "format": "label", **dict(defaults or {})},
        prepare=_prepare,
        fixture=fixture,
        class_colors=cfg.class_colors.copy(),
        label_values=list(cfg.class_raw_ids),
        read_input=_read_input,
        output_formats={"label": LabelFormat()},
        options=OPTIONS,
    )
