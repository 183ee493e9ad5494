"""The plugin's tasks, as functions returning :class:`~fastai_sparse.task.Task` objects, so any
setting (voxel resolution, points per shape, backbone, augmentation) can be changed by calling
them with other arguments::

    from fastai_sparse_classification.tasks import modelnet_task
    task = modelnet_task("modelnet40", scale=32, points=4096)
    dls = task.dataloaders(root="~/data", bs=16)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastai_sparse import Task, TaskOption

__all__ = [
    "FolderClassification",
    "MeshFolderTask",
    "mesh_folder_task",
    "modelnet_task",
    "plugin_tasks",
    "up_axis_task",
]

_PKG = "fastai_sparse_classification"


_ALLOW_MISSING = TaskOption(
    "allow_missing_classes",
    "train even when some classes have no training files (no warning)",
    type=bool,
    default=False,
    commands=("train",),
)
_SKIP_BAD = TaskOption(
    "skip_bad",
    "read every file once first and leave out unreadable ones",
    type=bool,
    default=False,
    commands=("train",),
)
#: The dataset options of the ModelNet tasks (``-O name=value`` on ``prepare`` and ``train``).
MODELNET_OPTIONS = (
    TaskOption(
        "layout",
        "which files to read when both are there",
        choices=("auto", "mesh", "resampled"),
        default="auto",
    ),
    TaskOption(
        "points",
        "surface points per shape (prepare: stored, default 10000; train: sampled per item, default 2048)",
        type=int,
    ),
    TaskOption(
        "prepared",
        "read the prepared folder when there is one (false: the raw files)",
        type=bool,
        default=True,
        commands=("train",),
    ),
    _ALLOW_MISSING,
    _SKIP_BAD,
)
#: The dataset options of the mesh-folder task.
MESH_FOLDER_OPTIONS = (
    TaskOption(
        "valid_pct",
        "fraction of each class held out for validation (no split folders)",
        type=float,
        default=0.2,
        commands=("train",),
    ),
    _ALLOW_MISSING,
    _SKIP_BAD,
)


def _augment(rotate: bool, scale: tuple[float, float], tilt: float = 0.0) -> list:
    from fastai_sparse import transforms as T

    tfms: list = []
    if rotate:
        tfms.append(T.RandomRotate("z"))
    if tilt:
        tfms.append(T.RandomRotate("x", (-tilt, tilt)))
    if scale:
        tfms.append(T.RandomScale(scale, anisotropic=True))
    return tfms


def read_shape(path, points: int = 2048):
    """Prediction inputs: ``points`` surface samples of a mesh (or a point file's points), seeded so
    a file always gives the same prediction."""
    import numpy as np

    from .readers import load_shape

    return load_shape(path, points=points, rng=np.random.default_rng(0))


def _fixture(layout: str, **kw: Any):
    def fixture(directory: str | Path) -> Path:
        from .fixtures import make_fixture

        return make_fixture(Path(directory), layout, **kw)

    fixture.__qualname__ = f"make_fixture[{layout}]"
    return fixture


def modelnet_task(
    variant: str = "modelnet40",
    *,
    scale: float = 24.0,
    points: int = 2048,
    features: Sequence[str] = ("ones", "normals"),
    model: str = "resnet-sparse-small",
    head: str = "cls-pool",
    rotate: bool = True,
    random_scale: tuple[float, float] = (0.8, 1.2),
    name: str | None = None,
) -> Task:
    """ModelNet40 / ModelNet10 classification.

    Shapes are centred and scaled into the unit sphere, so ``scale`` is the voxel resolution per
    shape radius (24: a 48-voxel grid across). ``points`` surface samples per shape (dataset
    keyword, overridable in ``task.dataloaders(root, points=...)``). Training: rotation about the
    vertical axis, anisotropic scaling in ``random_scale``. Metrics: accuracy and mean class
    accuracy from the epoch's confusion matrix. Default peak lr 1e-2 (one-cycle): on the real
    ModelNet samples it reached 100% training accuracy in 30 steps, 1e-3 in 50
    (``benchmarks/bench_real_shapes.py``).
    """
    from fastai_sparse import transforms as T
    from fastai_sparse.registry import Factory
    from fastai_sparse.targets import Classification
    from fastai_sparse.voxelize import Voxelizer

    from .prepare import prepare_modelnet
    from .readers import MODELNET10_CLASSES, MODELNET40_CLASSES
    from .transforms import NormalizeShape

    classes = MODELNET40_CLASSES if variant == "modelnet40" else MODELNET10_CLASSES
    prep = [NormalizeShape(), T.AddNormals()]
    return Task(
        name=name or f"{variant}-cls",
        description=f"classify {variant.replace('modelnet', 'ModelNet')} shapes ({len(classes)} classes) "
        "from meshes or resampled points",
        target=Classification(classes),
        dataset=Factory(variant, f"{_PKG}.readers:ModelNet", variant=variant, points=points),
        train_transforms=[*prep, *_augment(rotate, random_scale)],
        valid_transforms=prep,
        voxelizer=Voxelizer(scale=scale, features=tuple(features)),
        model=model,
        head=head,
        needs_root=True,
        splits=("train", "test"),
        fixture=_fixture("modelnet-off", variant=variant),
        prepare=functools.partial(prepare_modelnet, variant=variant),
        defaults={"bs": 16, "epochs": 100, "lr": 1e-2, "tta": 4},
        read_input=functools.partial(read_shape, points=points),
        options=MODELNET_OPTIONS,
    )


class FolderClassification:
    """Placeholder target of :class:`MeshFolderTask` before a data root is given: the classes are
    the folder names found there. Any use other than ``repr`` says so."""

    name = "classification"
    per = "sample"
    metrics = ("accuracy", "mean-class-accuracy")
    classes = None

    def __repr__(self) -> str:
        return "Classification(classes=<the class folders of root>)"

    def _unbound(self, *a, **k):
        from fastai_sparse.errors import FastaiSparseError

        raise FastaiSparseError(
            "mesh-folder-cls takes its classes from the data root: call task.datasets(root) or "
            "task.dataloaders(root) first (or use mesh_folder_task(classes=[...]))"
        )

    num_outputs = property(_unbound)
    check = collate = loss_func = decode = _unbound


class MeshFolderTask(Task):
    """A classification Task whose classes are the class folders of its data root.

    Until ``datasets(root)`` (or ``dataloaders(root)``) is called the target is a
    :class:`FolderClassification` placeholder; after it, ``target`` is a ``Classification`` of
    the folder names (sorted), so ``learner``, ``class_names`` and saved weights name them.
    """

    def with_classes(self, classes: Sequence[str]) -> MeshFolderTask:
        """A copy whose target is ``Classification(classes)`` (e.g. the names in a weights file)."""
        import dataclasses

        from fastai_sparse.errors import FastaiSparseError
        from fastai_sparse.targets import Classification

        if not classes:
            raise FastaiSparseError(f"task {self.name!r}: no class names given (the weights file has none)")
        return dataclasses.replace(self, target=Classification(tuple(classes)))

    def datasets(self, root=None, registry=None, **kwargs):
        ds = super().datasets(root, registry=registry, **kwargs)
        from fastai_sparse.targets import Classification

        classes = tuple(ds["train"].classes)
        if getattr(self.target, "classes", None) != classes:
            self.target = Classification(classes)
        return ds


def mesh_folder_task(
    classes: Sequence[str] | None = None,
    *,
    scale: float = 24.0,
    points: int = 2048,
    features: Sequence[str] = ("ones", "normals"),
    model: str = "resnet-sparse-small",
    valid_pct: float = 0.2,
    rotate: bool = True,
    random_scale: tuple[float, float] = (0.8, 1.2),
    name: str = "mesh-folder-cls",
) -> Task:
    """Classification of a folder of meshes / point files with one sub-folder per class (see
    :func:`~fastai_sparse_classification.readers.mesh_folder_items` for layouts and splits).
    With ``classes`` given the task is an ordinary Task; without, a :class:`MeshFolderTask`
    reading them from the root."""
    from fastai_sparse import transforms as T
    from fastai_sparse.registry import Factory
    from fastai_sparse.targets import Classification
    from fastai_sparse.voxelize import Voxelizer

    from .transforms import NormalizeShape

    prep = [NormalizeShape(), T.AddNormals()]
    kw = {"points": points, "valid_pct": valid_pct}
    if classes is not None:
        kw["classes"] = tuple(classes)
    cls = Task if classes is not None else MeshFolderTask
    return cls(
        name=name,
        description="classify shapes in a folder with one sub-folder per class (PLY, OFF, OBJ, STL, text)",
        target=Classification(classes) if classes is not None else FolderClassification(),
        dataset=Factory("mesh-folder", f"{_PKG}.readers:MeshFolder", **kw),
        train_transforms=[*prep, *_augment(rotate, random_scale)],
        valid_transforms=prep,
        voxelizer=Voxelizer(scale=scale, features=tuple(features)),
        model=model,
        head="cls-pool",
        needs_root=True,
        fixture=_fixture("mesh-folder"),
        defaults={"bs": 16, "epochs": 50, "lr": 1e-2, "tta": 4},
        read_input=functools.partial(read_shape, points=points),
        options=MESH_FOLDER_OPTIONS,
    )


def up_axis_task(
    *,
    scale: float = 12.0,
    features: Sequence[str] = ("ones", "normals"),
    model: str = "resnet-sparse-small",
    tilt: float = math.radians(20),
    name: str = "synthetic-shapes-reg",
) -> Task:
    """Regression of a shape's up direction (a 3-vector) on synthetic tilted objects.

    The target is a ``VectorTarget`` (``Regression(vector=True)``): the training rotations about
    z and tilts about x rotate it with the points, so the augmented sample's target stays right.
    Metrics: MAE, RMSE (per component) and the mean angle error in degrees.
    """
    from fastai_sparse.registry import Factory
    from fastai_sparse.targets import Regression
    from fastai_sparse.voxelize import Voxelizer

    from .transforms import NormalizeShape

    return Task(
        name=name,
        description="regress the up direction (unit 3-vector) of tilted synthetic shapes",
        target=Regression(("up_x", "up_y", "up_z"), loss="mse", vector=True),
        dataset=Factory("synthetic-up-axis", f"{_PKG}.regression:UpAxisShapes"),
        train_transforms=[NormalizeShape(), *_augment(True, (0.85, 1.15), tilt)],
        valid_transforms=[NormalizeShape()],
        voxelizer=Voxelizer(scale=scale, features=tuple(features)),
        model=model,
        head="cls-pool",
        metrics=["mae", "rmse", "angle-error"],
        defaults={"bs": 16, "epochs": 10, "lr": 3e-3, "tta": 0},
    )


def plugin_tasks() -> list[Task]:
    """Every task the plugin registers."""
    return [modelnet_task("modelnet40"), modelnet_task("modelnet10"), mesh_folder_task(), up_axis_task()]
