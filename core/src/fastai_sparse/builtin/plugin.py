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
    # Factories: the engine (and torch) load only when a backend is asked for
    for name, cls in (("torch", "TorchBackend"), ("spconv", "SpconvBackend"), ("scn", "ScnBackend")):
        register(Factory(name, f"fastai_sparse.engine.backends:{cls}"))


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
            description="UNet m=32, 7 levels, two residual blocks per level (ScanNet large recipe)",
            m=32,
            levels=7,
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
    # spatial targets (issue 10)
    register(
        Factory(
            "det-center",
            f"{_MODELS}.detection:CenterHead",
            description="3D detection: center heatmap + box regression on a sparse BEV grid",
        )
    )
    register(
        Factory(
            "keypoint-vote",
            f"{_MODELS}.keypoints:VoteKeypointHead",
            description="keypoints (+ axes) by weighted offset voting",
        )
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
    # spatial targets (issue 10)
    for name, func, doc in [
        ("map-0.25", "map_025", "3D detection mAP at IoU 0.25 (per class, all-point interpolated)"),
        ("map-0.5", "map_05", "3D detection mAP at IoU 0.5"),
        ("mean-distance", "mean_distance", "mean keypoint distance error"),
        ("pck", "pck", "fraction of keypoints within the target's pck_threshold (default 0.1)"),
        ("pck-0.05", "pck_005", "fraction of keypoints within 0.05"),
        ("pck-0.2", "pck_02", "fraction of keypoints within 0.2"),
        ("axis-angle-error", "axis_angle_error", "mean angle (degrees) between predicted and true axes"),
    ]:
        register(Factory(name, f"fastai_sparse.spatial.metrics:{func}", description=doc))


@hookimpl
def register_target_types(register):
    from .. import targets
    from ..spatial import targets as spatial_targets

    for cls in (
        targets.Segmentation,
        targets.Classification,
        targets.Regression,
        spatial_targets.BoundingBoxes,
        spatial_targets.KeypointTarget,
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
    from .spatial_tasks import spatial_tasks
    from .tasks import builtin_tasks

    for task in builtin_tasks() + spatial_tasks():
        register(task)
