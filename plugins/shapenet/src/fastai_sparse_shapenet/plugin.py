"""fastai-sparse hooks of the ShapeNet part plugin: every registration happens here.

Factories are named by ``"module:attr"`` strings and tasks are built inside the hook, so
importing this module imports neither torch nor fastai.
"""

from __future__ import annotations

from fastai_sparse import hookimpl
from fastai_sparse.registry import Factory

_PKG = "fastai_sparse_shapenet"


@hookimpl
def register_datasets(register):
    register(
        Factory(
            "shapenet-part",
            f"{_PKG}.readers:shapenet_part",
            description="ShapeNet part download (v0_normal, v0 or ICCV17 layout)",
        )
    )
    register(
        Factory(
            "shapenet-part-synthetic",
            f"{_PKG}.fixtures:synthetic_shapenet",
            description="synthetic multi-part shapes with ShapeNet part ids",
        )
    )


@hookimpl
def register_heads(register):
    register(
        Factory(
            "shapenet-part-masked",
            f"{_PKG}.parts:MaskedPartHead",
            description="per-voxel part logits masked to each shape's category",
        )
    )


@hookimpl
def register_metrics(register):
    register(
        Factory(
            "shapenet-instance-miou",
            f"{_PKG}.metrics:instance_miou",
            description="ShapeNet instance mIoU (mean over shapes; absent parts count 1)",
        )
    )
    register(
        Factory(
            "shapenet-class-miou",
            f"{_PKG}.metrics:class_miou",
            description="ShapeNet class mIoU (mean over categories of their shapes' mean)",
        )
    )


@hookimpl
def register_tasks(register):
    from .tasks import make_task

    register(make_task("shapenet-part", normals=True))
    register(make_task("shapenet-part-nonormals", normals=False))
    register(make_task("shapenet-part-synthetic", normals=True, synthetic=True))


@hookimpl
def register_commands(cli):
    from .cli import shapenet

    cli.add_command(shapenet)
