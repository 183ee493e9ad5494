"""Core's built-in tasks on the embedded synthetic datasets (no downloads).

Each is an ordinary :class:`~fastai_sparse.task.Task`; ``print(get_task(name))`` shows it.
"""

from __future__ import annotations

import math

from ..task import Task

__all__ = ["builtin_tasks", "parts_seg_task", "rooms_seg_task", "shapes_cls_task"]


def rooms_seg_task() -> Task:
    """Semantic segmentation of synthetic indoor rooms (ScanNet-like, 5 cm voxels)."""
    from .. import transforms as T
    from ..targets import Segmentation
    from ..voxelize import Voxelizer
    from .synthetic import SyntheticRooms

    return Task(
        name="synthetic-rooms-seg",
        description="segment synthetic indoor rooms (floor, walls, furniture) from points and colours",
        dataset="synthetic-rooms",
        target=Segmentation(SyntheticRooms.classes),
        train_transforms=[
            T.RandomAffineNoise(0.05),
            T.RandomFlip(("x",)),
            T.RandomRotate("z"),
            T.RandomScale((0.9, 1.1)),
            T.NormalizeColor(),
            T.ColorShift(0.1),
        ],
        valid_transforms=[T.NormalizeColor()],
        voxelizer=Voxelizer(scale=20, features=("rgb",)),
        model="unet-m16",
        defaults={"bs": 4, "epochs": 40, "lr": 1e-2, "tta": 4},
    )


def shapes_cls_task() -> Task:
    """Classification of synthetic primitive and composite shapes."""
    from .. import transforms as T
    from ..targets import Classification
    from ..voxelize import Voxelizer
    from .synthetic import SyntheticShapes

    return Task(
        name="synthetic-shapes-cls",
        description="classify synthetic shapes (cube, sphere, torus, table, ...) from surface points",
        dataset="synthetic-shapes",
        target=Classification(SyntheticShapes.default_classes),
        train_transforms=[T.RandomRotate("z"), T.RandomScale((0.85, 1.15), anisotropic=True), T.Ones()],
        valid_transforms=[T.Ones()],
        voxelizer=Voxelizer(scale=16, features=("ones",)),
        model="resnet-sparse-small",
        head="cls-pool",
        defaults={"bs": 16, "epochs": 10, "lr": 3e-3, "tta": 4},
    )


def parts_seg_task() -> Task:
    """ShapeNet-like part segmentation of synthetic multi-part objects, normals as features."""
    from .. import transforms as T
    from ..targets import Segmentation
    from ..voxelize import Voxelizer
    from .synthetic import SyntheticParts

    parts = SyntheticParts(n=1)
    return Task(
        name="synthetic-parts-seg",
        description="segment parts of synthetic objects (airplane, chair, lamp, mug, table) with normals",
        dataset="synthetic-parts",
        target=Segmentation(parts.part_names),
        train_transforms=[
            T.RandomRotate("z", (-math.pi / 12, math.pi / 12)),
            T.RandomScale((0.8, 1.2), anisotropic=True),
        ],
        voxelizer=Voxelizer(scale=24, features=("normals",)),
        model="unet-small",
        defaults={"bs": 16, "epochs": 10, "lr": 3e-3, "tta": 3},
    )


def builtin_tasks() -> list[Task]:
    return [rooms_seg_task(), shapes_cls_task(), parts_seg_task()]
