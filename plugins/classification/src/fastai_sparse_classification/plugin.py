"""fastai-sparse plugin hooks of fastai-sparse-classification: every registration is here.

Factories are named by ``"module:attr"`` strings and tasks are built inside the hook, so
importing this module imports neither torch nor fastai.
"""

from __future__ import annotations

from fastai_sparse import hookimpl
from fastai_sparse.registry import Factory

_PKG = "fastai_sparse_classification"


@hookimpl
def register_datasets(register):
    register(
        Factory(
            "modelnet40",
            f"{_PKG}.readers:ModelNet",
            description="ModelNet40 (OFF meshes or normal_resampled)",
            variant="modelnet40",
        )
    )
    register(
        Factory(
            "modelnet10",
            f"{_PKG}.readers:ModelNet",
            description="ModelNet10 (OFF meshes or normal_resampled)",
            variant="modelnet10",
        )
    )
    register(
        Factory(
            "mesh-folder", f"{_PKG}.readers:MeshFolder", description="one sub-folder per class of shape files"
        )
    )
    register(
        Factory(
            "synthetic-up-axis",
            f"{_PKG}.regression:UpAxisShapes",
            description="tilted shapes, up vector target",
        )
    )


@hookimpl
def register_metrics(register):
    register(
        Factory(
            "angle-error", f"{_PKG}.metrics:angle_error", description="mean angle (degrees) between 3-vectors"
        )
    )


@hookimpl
def register_tasks(register):
    from .tasks import plugin_tasks

    for task in plugin_tasks():
        register(task)
