"""Built-in tasks with spatial targets on the embedded synthetic datasets (no downloads).

- ``synthetic-boxes-det``: 3D detection of oriented boxes (box, table, chair, cabinet) in
  synthetic rooms: sparse ResNet encoder + center-heatmap BEV head, mAP at IoU 0.25 / 0.5.
- ``synthetic-boxes-det-vfe``: the VoxelNet-style variant: a PointNet-like voxel feature
  encoding (``input_stage="vfe"``) on per-point colour and in-voxel position feeds the same
  encoder and head.
- ``synthetic-keypoints``: tip and tail (with the arrow's axis) of arrows in random poses:
  UNet + offset-voting head; mean distance, PCK@0.1 and mean axis angle error.
"""

from __future__ import annotations

from ..task import Task

__all__ = ["boxes_det_task", "boxes_det_vfe_task", "keypoints_task", "spatial_tasks"]

_DET_CLASSES = ("box", "table", "chair", "cabinet")
#: 10 cm voxels, two stages (stride 2): 20 cm BEV cells
_DET_ENCODER = {"widths": (32, 64), "blocks": (1, 2)}


def _det_transforms():
    from .. import transforms as T

    train = [
        T.RandomRotate("z"),
        T.RandomFlip(("x",)),
        T.RandomScale((0.9, 1.1)),
        T.NormalizeColor(),
        T.ColorShift(0.1),
    ]
    return train, [T.NormalizeColor()]


def boxes_det_task() -> Task:
    """3D detection of oriented boxes in synthetic rooms (10 cm voxels, 20 cm BEV cells)."""
    from ..spatial.targets import BoundingBoxes
    from ..voxelize import Voxelizer

    train, valid = _det_transforms()
    return Task(
        name="synthetic-boxes-det",
        description="detect oriented 3D boxes (box, table, chair, cabinet) in synthetic rooms",
        dataset="synthetic-detection",
        target=BoundingBoxes(_DET_CLASSES),
        train_transforms=train,
        valid_transforms=valid,
        voxelizer=Voxelizer(scale=10, features=("rgb",)),
        model="resnet-sparse-small",
        model_kwargs=_DET_ENCODER,
        head="det-center",
        head_kwargs={"down": 0, "hidden": 64, "bev_convs": 3},
        defaults={"bs": 4, "epochs": 12, "lr": 3e-3, "tta": 0},
    )


def boxes_det_vfe_task() -> Task:
    """The VoxelNet-style variant: VFE input stage on per-point features."""
    from ..spatial.targets import BoundingBoxes
    from ..voxelize import PointFeatureVoxelizer

    train, valid = _det_transforms()
    return Task(
        name="synthetic-boxes-det-vfe",
        description="detect oriented 3D boxes in synthetic rooms, VoxelNet-style VFE input stage",
        dataset="synthetic-detection",
        target=BoundingBoxes(_DET_CLASSES),
        train_transforms=train,
        valid_transforms=valid,
        voxelizer=PointFeatureVoxelizer(scale=10, features=("rgb", "xyz")),
        input_stage="vfe",
        model="resnet-sparse-small",
        model_kwargs=_DET_ENCODER,
        head="det-center",
        head_kwargs={"down": 0, "hidden": 64, "bev_convs": 3},
        defaults={"bs": 4, "epochs": 12, "lr": 3e-3, "tta": 0},
    )


def keypoints_task() -> Task:
    """Tip and tail keypoints (with the main axis) of synthetic arrows."""
    from .. import transforms as T
    from ..spatial.targets import KeypointTarget
    from ..voxelize import Voxelizer
    from .synthetic import SyntheticKeypoints

    names = SyntheticKeypoints(n=1).keypoint_names
    return Task(
        name="synthetic-keypoints",
        description="locate the tip and tail of synthetic arrows in random poses, with their axis",
        dataset="synthetic-keypoints",
        target=KeypointTarget(names, axes=True),
        train_transforms=[T.RandomRotate("z"), T.RandomScale((0.9, 1.1))],
        voxelizer=Voxelizer(scale=20, features=("normals",)),
        model="unet-small",
        head="keypoint-vote",
        head_kwargs={"axes": True},
        defaults={"bs": 8, "epochs": 10, "lr": 3e-3, "tta": 0},
    )


def spatial_tasks() -> list[Task]:
    return [boxes_det_task(), boxes_det_vfe_task(), keypoints_task()]
