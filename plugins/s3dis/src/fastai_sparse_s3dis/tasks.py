"""The S3DIS task ``s3dis-seg``: the standard protocol (train on Areas 1-4 and 6, validate on
Area 5) and, with the option ``fold`` (``-O fold=k`` on the command line, ``fold=k`` to
``task.dataloaders``), 6-fold cross-validation: fold k validates on Area k and trains on the
other five.

Choices, for rooms in metres:

* **5 cm voxels** (``scale=20`` voxels per metre), as ScanNet's default task: thin objects
  (boards, windows in walls) stay separable from their wall and a 1 M-point office becomes
  some 30k-60k voxels, which a UNet m=16 trains on in batches of 8 on one GPU (or slowly on a
  CPU). Denser rooms do not cost more voxels: voxels follow the surface area, not the point
  count.
* **Training on random crops of 6 m x 6 m** (full height) of rooms larger than that
  (:class:`~.crop.RoomCrop`): hallways, lobbies and auditoriums reach tens of metres and millions of
  points; a crop keeps batches of similar size without losing the ceiling-to-floor context.
  Offices and conference rooms usually fit whole.
* **Validation and prediction on whole rooms**, every input point labelled: the validation
  transforms only place the room in the voxel grid (204.8 m wide at 5 cm) and normalise
  colours, so no point is dropped.
* Augmentation as the ScanNet recipe (small random affine noise, mirror in x, rotation about z,
  SparseConvNet's two elastic distortions, (0.1, 0.8) and (0.4, 3.2) m at 5 cm voxels, plus a
  scale 0.9-1.1 and a colour shift); rooms are axis-aligned in this version of S3DIS, so any
  rotation about z keeps them upright.
* Input features: colour (``rgb`` to [-1, 1]) and height above the lowest point of the sample
  (``height``, metres): ceiling, floor and beams are told apart by height first.
* UNet m=16 with SparseConvNet's 7 levels and no BN+ReLU after the UNet, one-cycle to a peak lr
  of 1e-2, 100 epochs of crops: ``scannet-seg``'s defaults, which learned a real ScanNet scan
  1.6-2.1x faster per step than the recipe's output stage and Adam 1e-3
  (``benchmarks/bench_real_scene.py``; no real S3DIS room is available here to measure S3DIS
  itself). The coarsest level sees 3.2 m cells, room-scale context for a 6 m crop. The metrics are
  mIoU, per-class IoU, overall accuracy and mean class accuracy over every point of every
  validation room (from the epoch's confusion matrix). Points no annotation covers are ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastai_sparse import Task, TaskOption
from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.registry import Factory

from .constants import CLASS_COLORS, CLASSES, IGNORE_INDEX, VALID_AREA
from .reader import BAD_LINES

__all__ = [
    "CROP",
    "FULL_SCALE",
    "OPTIONS",
    "SCALE",
    "fixture",
    "read_input",
    "s3dis_tasks",
    "seg_task",
    "train_transforms",
    "valid_transforms",
]

FULL_SCALE = 4096
#: Voxels per metre (5 cm voxels).
SCALE = 20.0
#: Horizontal size (metres) of the training crops of large rooms (:class:`~.crop.RoomCrop`).
CROP = 6.0

#: The dataset options a user may set from the command line (``-O name=value``).
OPTIONS = [
    TaskOption(
        "fold",
        "the area validated on, 1..6 (5: the standard protocol; run 1..6 for 6-fold cross-validation)",
        type=int,
        default=VALID_AREA,
        commands=("train",),
    ),
    TaskOption(
        "bad_lines",
        "damaged text lines: skip (left out and counted), repair (only a control character between "
        "two numbers; any other stops), error (any stops); the same for prepare and train",
        choices=BAD_LINES,
        default="skip",
    ),
]


def train_transforms(scale: float = SCALE, crop: float = CROP) -> list:
    """Training: crop large rooms, then the ScanNet-style augmentation (see the module doc)."""
    from fastai_sparse.transforms import (
        ColorShift,
        ElasticDistortion,
        FitToGrid,
        NormalizeColor,
        RandomAffineNoise,
        RandomFlip,
        RandomRotate,
        RandomScale,
    )

    from .crop import RoomCrop

    return [
        RoomCrop(crop),
        RandomAffineNoise(0.1),
        RandomFlip(("x",)),
        RandomRotate("z"),
        RandomScale((0.9, 1.1)),
        *ElasticDistortion.sparseconvnet_recipe(scale),
        FitToGrid(FULL_SCALE, scale=scale, random_offset=True),
        NormalizeColor(),
        ColorShift(0.1),
    ]


def valid_transforms(scale: float = SCALE) -> list:
    """Validation and prediction: the whole room, centred in the grid; colours to [-1, 1]."""
    from fastai_sparse.transforms import FitToGrid, NormalizeColor

    return [FitToGrid(FULL_SCALE, scale=scale, random_offset=False), NormalizeColor()]


def read_input(path: str | Path) -> PointCloud:
    """What ``fastai-sparse predict s3dis-seg`` reads: a room folder (its room file, found as
    :func:`~.reader.find_room_file` does) or a room ``.txt`` (``x y z r g b`` per line).

    A control character between two numbers is read as a separator (reported); any other
    damaged line is an error naming it, since every line must get a label.
    """
    from .reader import find_room_file, read_points

    p = Path(path).expanduser()
    if p.is_dir():
        p = find_room_file(p)
    elif p.suffix.lower() != ".txt":
        raise DataFormatError(
            "expected a room folder or a room .txt file (x y z r g b per line)", path=p, field="input"
        )
    pts = read_points(p, bad_lines="repair")
    return PointCloud(pts.xyz.astype(np.float32), {"rgb": pts.rgb}, meta={"path": str(p), "id": p.stem})


def fixture(directory: str | Path) -> Path:
    """A small S3DIS download (nine rooms in the six areas, both known defects) in the real format."""
    from .fixtures import make_fixture

    return make_fixture(Path(directory) / "s3dis", points=1500, hallway6_line=60)


def _prepare(root, out=None, jobs=2, skip_bad=False, **kwargs):
    from .prepare import prepare

    return prepare(root, out=out, jobs=jobs, skip_bad=skip_bad, **kwargs)


def seg_task(name: str = "s3dis-seg", fold: int = VALID_AREA, *, description: str | None = None) -> Task:
    """The segmentation task, validating on area ``fold`` unless given another ``fold`` (see the
    module docstring)."""
    from fastai_sparse.targets import Segmentation
    from fastai_sparse.voxelize import Voxelizer

    train = ", ".join(str(a) for a in range(1, 7) if a != fold)
    return Task(
        name=name,
        description=description
        or f"S3DIS rooms, 13 classes, train Areas {train}, validate Area {fold} (option fold); 5 cm voxels, UNet m=16, 7 levels",
        target=Segmentation(list(CLASSES), ignore_index=IGNORE_INDEX),
        dataset=Factory("s3dis", "fastai_sparse_s3dis.dataset:S3DISRooms", fold=fold),
        train_transforms=train_transforms(),
        valid_transforms=valid_transforms(),
        voxelizer=Voxelizer(scale=SCALE, features=("rgb", "height"), full_scale=FULL_SCALE, origin="none"),
        model="unet-m16",
        model_kwargs={"levels": 7, "output_bn_relu": False},
        head="seg-linear",
        metrics=["miou", "iou-per-class", "accuracy", "mean-class-accuracy"],
        needs_root=True,
        defaults={"bs": 8, "epochs": 100, "lr": 1e-2, "schedule": "one-cycle", "tta": 4},
        prepare=_prepare,
        fixture=fixture,
        class_colors=CLASS_COLORS.copy(),
        read_input=read_input,
        options=OPTIONS,
    )


def s3dis_tasks() -> list[Task]:
    """The tasks the plugin registers: ``s3dis-seg``."""
    return [seg_task("s3dis-seg", VALID_AREA)]
