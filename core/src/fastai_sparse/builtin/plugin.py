"""The built-in plugin: core's own defaults, registered through the same hooks as any plugin.

Everything here is named by ``"module:attr"`` strings or built inside the hook, so importing
this module costs nothing; torch is imported only when a registry is first queried.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..registry import Factory

_MODELS = "fastai_sparse.models"
_METRICS = "fastai_sparse.metrics"
_SYNTH = "fastai_sparse.builtin.synthetic"


@hookimpl
def register_backends(register):
    from ..engine.backends import ScnBackend, SpconvBackend, TorchBackend

    register(TorchBackend())
    register(SpconvBackend())
    register(ScnBackend())


@hookimpl
def register_models(register):
    register(
        Factory("unet-m16", f"{_MODELS}:UNet", description="SparseConvNet-style UNet, m=16, 5 levels", m=16)
    )
    register(
        Factory("unet-m32", f"{_MODELS}:UNet", description="SparseConvNet-style UNet, m=32, 5 levels", m=32)
    )
    register(
        Factory(
            "unet-m32-r2",
            f"{_MODELS}:UNet",
            description="UNet m=32, two residual blocks per level (ScanNet large)",
            m=32,
            reps=2,
            residual=True,
        )
    )
    register(
        Factory(
            "unet-small",
            f"{_MODELS}:UNet",
            description="UNet m=8, 3 levels: tests and quick runs",
            m=8,
            levels=3,
        )
    )
    register(
        Factory("resnet-sparse-18", f"{_MODELS}:resnet_sparse_18", description="sparse ResNet-18 encoder")
    )
    register(
        Factory(
            "resnet-sparse-small",
            f"{_MODELS}:SparseResNet",
            description="small sparse ResNet encoder: tests and quick runs",
            widths=(16, 32, 64),
            blocks=(1, 1, 1),
        )
    )
    register(Factory("vfe", f"{_MODELS}:VFE", description="PointNet-like voxel feature encoding (VoxelNet)"))


@hookimpl
def register_heads(register):
    register(Factory("seg-linear", f"{_MODELS}:SegmentationHead", description="per-voxel linear classifier"))
    register(
        Factory("cls-pool", f"{_MODELS}:PoolHead", description="global average pool + linear", pool="avg")
    )
    register(
        Factory("cls-maxpool", f"{_MODELS}:PoolHead", description="global max pool + linear", pool="max")
    )


@hookimpl
def register_metrics(register):
    for name, func, doc in [
        ("miou", "miou", "mean IoU over classes, from the epoch's confusion matrix"),
        ("iou-per-class", "iou_per_class", "IoU of each class (table after validation)"),
        ("accuracy", "accuracy", "overall accuracy"),
        ("mean-class-accuracy", "mean_class_accuracy", "mean of per-class accuracies"),
        ("mae", "mae", "mean absolute error"),
        ("rmse", "rmse", "root mean squared error"),
    ]:
        register(Factory(name, f"{_METRICS}:{func}", description=doc))


@hookimpl
def register_target_types(register):
    from .. import targets

    for cls in (
        targets.Segmentation,
        targets.Classification,
        targets.Regression,
        targets.BoundingBoxes,
        targets.KeypointTarget,
    ):
        register(cls)


@hookimpl
def register_datasets(register):
    register(
        Factory(
            "synthetic-rooms", f"{_SYNTH}:SyntheticRooms", description="procedural indoor rooms, labelled"
        )
    )
    register(
        Factory("synthetic-shapes", f"{_SYNTH}:SyntheticShapes", description="primitive and composite shapes")
    )
    register(
        Factory("synthetic-parts", f"{_SYNTH}:SyntheticParts", description="multi-part objects with normals")
    )
    register(
        Factory(
            "synthetic-detection",
            f"{_SYNTH}:SyntheticDetectionRooms",
            description="rooms with oriented boxes",
        )
    )
    register(
        Factory("synthetic-keypoints", f"{_SYNTH}:SyntheticKeypoints", description="objects with keypoints")
    )


@hookimpl
def register_tasks(register):
    from .tasks import builtin_tasks

    for task in builtin_tasks():
        register(task)
